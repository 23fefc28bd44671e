"""Workloads of the scheduling benchmark, fixed before any further policy tuning.

Three workloads, each a list of LLM calls with arrival times (simulated seconds), a
prompt and an output *kind* (what a deployment knows of a call before it runs: the
application or pipeline stage that sent it). Every generator is deterministic in its
seed; arrivals are open loop (a call never waits for another's answer), with common
random numbers across rates: at rate ``r`` every arrival time is the rate-1 time / ``r``.

* ``apps`` -- the original workload (kept unchanged, :mod:`benchmarks.scheduling`):
  16 applications, each with its own ~1,500-token system prompt and one of 4 output
  kinds; independent Poisson calls.
* ``chat`` -- multi-turn chat: conversations whose prompts grow turn by turn, so each
  turn shares an ever longer prefix with the previous one (the shape SGLang's router
  benchmark and vLLM's multi-turn benchmark use). Sources: vLLM (Kwon et al., SOSP
  2023, Table 1) reports ShareGPT's mean input 161 and output 338 tokens per turn;
  LMSYS-Chat-1M (Zheng et al., 2023) has 2.0 turns per conversation on average and a
  long tail; 2-8 turns (mean 5) is assumed here so histories grow to a few thousand
  tokens; system prompts of ~400 tokens, one per application (8 applications); think
  time between turns exponential with mean 10 s (assumed: reading a ~300-token
  answer). Conversations start as a Poisson process; the offered call rate is the
  conversation rate times 5.
* ``pipelines`` -- the LLM calls of this project's own pipelines sharing one engine
  pool: the fact-check of :mod:`benchmarks.paper_model` (answer, per-sentence claim
  extraction with the answer so far as context, per-claim queries, per-claim
  verification with 10 evidence snippets) and multi-query RAG
  (:mod:`alto_apps.rag`'s prompts: 3 queries, an answer from 4 passages). Requests
  (half fact-check, half RAG) arrive as a Poisson process; each request's calls arrive
  at the offsets of its critical path as ALTO streams it (computed from the paper
  setting, as its ideal latency is). Kinds are the stages.

**Held out: ``pipelines``.** The prompt-aware policy is measured on it only after the
tuning on ``apps`` and ``chat`` is done, and its first measurement is the one reported.

A prompt starts with ``[kind]|``, which the SIMULATED engine reads to draw the output
length of that kind (:data:`MEDIAN_TOKENS`: log-normal around the median).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["MEDIAN_TOKENS", "WORKLOADS", "Call", "apps", "chat", "kind_of", "pipelines"]


@dataclass(frozen=True)
class Call:
    """One LLM call: arrival (simulated seconds at rate 1), prompt, kind."""

    at: float
    prompt: str
    kind: str


# Median output tokens per kind. apps: as in benchmarks.scheduling. chat: ShareGPT's
# mean output (338 tokens, vLLM Table 1) as the median. pipelines: the paper setting's
# outputs (answer ~54, extraction ~27 per sentence, queries ~24, verifier ~125) and
# RAG's (3 queries of ~10 tokens; an answer of up to 160 tokens, ~100).
MEDIAN_TOKENS: dict[str, float] = {
    "short": 2,
    "list": 6,
    "answer": 16,
    "essay": 40,
    "chat": 338,
    "fc_answer": 54,
    "fc_extract": 27,
    "fc_queries": 24,
    "fc_verify": 125,
    "rag_queries": 30,
    "rag_answer": 100,
}

_WORDS = [
    "the",
    "protocol",
    "server",
    "client",
    "mail",
    "message",
    "network",
    "packet",
    "address",
    "host",
    "data",
    "system",
    "memory",
]


def kind_of(prompt: str) -> str:
    """The kind a prompt was written for (its ``[kind]|`` header)."""
    return prompt[1 : prompt.index("]")]


def _text(rng: random.Random, tokens: int) -> str:
    """~``tokens`` tokens of text (4 characters a token, the engine's rule)."""
    out, n = [], 0
    while n < tokens * 4:
        w = rng.choice(_WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)


def apps(n: int, seed: int = 11) -> list[Call]:
    """The original workload: 16 apps, ~1,500-token system prompts, 4 kinds, Poisson."""
    kinds = ["short", "list", "answer", "essay"]
    rng = random.Random(seed)
    t, out = 0.0, []
    for i in range(n):
        t += rng.expovariate(1.0)
        app = rng.randrange(16)
        kind = kinds[app % 4]
        head = f"[{kind}]|[app {app:02d}]|"
        body = f"You are a careful assistant for app {app}; follow the examples below. " * 100
        out.append(Call(t, f"{head}{body[: 6000 - len(head)]}\nQuestion {i}: {rng.random():.6f}", kind))
    return out


def chat(n: int, seed: int = 12) -> list[Call]:
    """Multi-turn conversations (see the module docstring); ``n`` calls in all."""
    rng = random.Random(seed)
    systems = [f"[chat]|[app {a}] " + _text(random.Random(f"sys{a}"), 400) for a in range(8)]
    calls: list[Call] = []
    start = 0.0
    conv = 0
    while len(calls) < n:
        start += rng.expovariate(1.0 / 5)  # conversations at rate / 5: calls at about ``rate``
        history = systems[rng.randrange(8)]
        t = start
        for _turn in range(rng.randint(2, 8)):
            user = _text(rng, max(8, int(rng.lognormvariate(4.6, 0.6))))  # median ~100, mean ~161 tokens
            history += f"\nUser ({conv}): {user}"
            calls.append(Call(t, history + "\nAssistant:", "chat"))
            # the answer becomes history; its length is drawn like the engine's outputs
            history += " " + _text(rng, max(8, int(rng.lognormvariate(5.8, 0.5))))  # ~338 tokens
            t += rng.expovariate(1 / 10.0)  # think time
        conv += 1
    calls.sort(key=lambda c: c.at)
    return calls[:n]


def _factcheck_calls(rng: random.Random, t0: float, i: int) -> list[Call]:
    """One fact-check request's calls at the offsets of its streamed critical path."""
    from alto.llm import JsonArrayItems, Sentences
    from benchmarks.paper_model import (
        Setting,
        _parts,
        answer_prompt,
        extract_prompt,
        queries_prompt,
        search_snippets,
        verify_prompt,
    )

    s = Setting()
    question = f"q{i}: how does {rng.choice(_WORDS)} relate to {rng.choice(_WORDS)}?"
    out = [Call(t0, "[fc_answer]|" + answer_prompt(s, question), "fc_answer")]
    _, sentences = _parts(s, answer_prompt(s, question), Sentences())
    for k, (sentence, t_s) in enumerate(sentences):
        context = [x for x, _ in sentences[:k]]
        prompt = extract_prompt(s, context, sentence)
        out.append(Call(t0 + t_s, "[fc_extract]|" + prompt, "fc_extract"))
        _, claims = _parts(s, prompt, JsonArrayItems())
        for obj, t_c in claims:
            claim = obj["claim"]
            out.append(Call(t0 + t_s + t_c, "[fc_queries]|" + queries_prompt(s, claim), "fc_queries"))
            _, queries = _parts(s, queries_prompt(s, claim), JsonArrayItems())
            evidence = [x for q, _ in queries for x in search_snippets(s, q)]
            t_v = t_s + t_c + max(t for _, t in queries) + s.search_s
            out.append(Call(t0 + t_v, "[fc_verify]|" + verify_prompt(s, claim, evidence), "fc_verify"))
    return out


def _rag_calls(rng: random.Random, t0: float, i: int) -> list[Call]:
    """One RAG request's calls: the queries at once, the answer ~0.5 s later (queries
    written and searched)."""
    from alto_apps import rag

    question = f"How does the {rng.choice(_WORDS)} reach the {rng.choice(_WORDS)} ({i})?"
    passages = [(f"doc{rng.randrange(10_000)}", _text(rng, 150)) for _ in range(4)]
    item = {"question": question, "queries": [], "passages": passages}
    return [
        Call(t0, "[rag_queries]|" + rag.queries_prompt(question, 3), "rag_queries"),
        Call(t0 + 0.5, "[rag_answer]|" + rag.answer_prompt(item), "rag_answer"),
    ]


def pipelines(n: int, seed: int = 13) -> list[Call]:
    """Fact-check and RAG requests' calls on one pool (see the module docstring)."""
    rng = random.Random(seed)
    calls: list[Call] = []
    t = 0.0
    i = 0
    # one fact-check request is ~13 calls, one RAG request 2: requests at rate / 7.5
    # give calls at about ``rate``
    while len(calls) < n:
        t += rng.expovariate(1.0 / 7.5)
        make = _factcheck_calls if rng.random() < 0.5 else _rag_calls
        calls += make(rng, t, i)
        i += 1
    calls.sort(key=lambda c: c.at)
    return calls[:n]


WORKLOADS = {"apps": apps, "chat": chat, "pipelines": pipelines}
