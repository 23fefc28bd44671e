"""The paper's fact-check pipeline on SIMULATED engines: setting, components, ideal latency.

The pipeline is the paper's chatbot verification: an LLM answers a question, the answer
is split into claims *as it is generated*, an LLM writes search queries per claim, a
retriever searches each query, the evidence of a claim is merged, an LLM gives the
claim's verdict, and the verdicts make the report. Every LLM stage has
``Setting.llm_replicas`` replicas, each its own SIMULATED continuous-batching engine
(one GPU each); retrieval is a service with a fixed latency.

The setting (fixed before any result was seen; each constant with its source):

* **Engine: a 7B model on one A100-80GB** (fp16, vLLM-style continuous batching).
  Decode step ``step_s`` = 10 ms at batch 1: each step reads the 14 GB of weights
  from 2 TB/s HBM (7 ms) plus overheads. ``step_s_per_seq`` = 0.2 ms per running
  sequence: its KV cache read per step (Kwon et al., SOSP 2023, report this roughly
  linear growth). Prefill ``prefill_s_per_token`` = 0.1 ms: 14 GFLOP per token at
  ~45% of the A100's 312 TFLOPS. Up to 64 sequences per batch.
* **The answer: about 10 claims, several hundred tokens** -- a chatbot's paragraph:
  10 sentences of 20-32 tokens (English sentences average ~20 words, ~1.3 tokens a
  word), ~260 tokens.
* **Queries**: 2-3 per claim, 6-12 tokens each. **Verdict**: a label and a short
  reason, 16 tokens, from a prompt with the claim and 3 evidence passages of ~150
  tokens each.
* **Retrieval**: 50 ms per query (late-interaction retrieval with PLAID answers in
  tens of milliseconds on a GPU, Santhanam et al., CIKM 2022).
* **Cluster**: 4 replicas (GPUs) per LLM stage, 12 in all, and 4 retrieval replicas.

*Ideal latency* of a request: its critical path with zero orchestration overhead and no
queueing -- every LLM call running alone at batch 1, each claim checked as soon as its
sentence is complete (:func:`ideal_latency`, computed from the engines' scripts and the
real splitters, not measured).

The baseline is the same pipeline on the same components with ``streaming=False``:
every stage waits for the whole output of the call before it (the answer before any
claim is checked, a claim's full query list before any search).
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import alto
from alto.llm import SPLITTERS, Simulated, generate, generate_split
from alto.routing import LLMCall

__all__ = ["PaperEngine", "Setting", "build_pipeline", "ideal_latency", "questions"]

_VOCAB_TEXT = (
    "the protocol server client mail message network packet address host data system memory program "
    "language compiler kernel process file stream query index model cache request response layer route "
    "node graph token vector database transfer channel"
)
_VOCAB = tuple(_VOCAB_TEXT.split())


@dataclass(frozen=True)
class Setting:
    """The paper-like setting (see the module docstring for the source of each number)."""

    claims: int = 10
    claim_tokens: tuple[int, int] = (20, 32)
    queries: tuple[int, int] = (2, 3)
    query_tokens: tuple[int, int] = (6, 12)
    verdict_tokens: int = 16
    passages: int = 3
    passage_chars: int = 600  # ~150 tokens
    search_s: float = 0.05
    llm_replicas: int = 4
    search_replicas: int = 4
    step_s: float = 0.010
    step_s_per_seq: float = 0.0002
    prefill_s_per_token: float = 0.0001
    max_batch: int = 64

    def with_claims(self, n: int) -> Setting:
        return replace(self, claims=n)

    def describe(self) -> dict[str, Any]:
        return asdict(self)


# -- prompts (shared by the stages and the ideal-latency calculation) ------------------


def answer_prompt(question: str) -> str:
    return f"Answer the question in a short paragraph.\nQuestion: {question}"


def queries_prompt(claim: str) -> str:
    return f"Write search queries, one per line, to check this claim: {claim}"


def search(setting: Setting, query: str) -> list[int]:
    """Passage ids for a query (deterministic: the same in every system)."""
    return [zlib.crc32(f"{query}#{i}".encode()) % 100_000 for i in range(setting.passages)]


def merge(setting: Setting, claim: str, hit_lists: list[list[int]]) -> dict[str, Any]:
    """The evidence of a claim: its most often retrieved passages."""
    counts: dict[int, int] = {}
    for hits in hit_lists:
        for h in hits:
            counts[h] = counts.get(h, 0) + 1
    best = sorted(counts, key=lambda h: (-counts[h], h))[: setting.passages]
    return {"claim": claim, "evidence": best}


def verdict_prompt(setting: Setting, item: dict[str, Any]) -> str:
    filler = "passage text " * (setting.passage_chars // 13)
    passages = "\n".join(f"[{pid}] {filler}" for pid in item["evidence"])
    return f"Verdict (SUPPORTED or REFUTED) and one reason.\nClaim: {item['claim']}\nEvidence:\n{passages}"


class PaperEngine(Simulated):
    """SIMULATED engine whose outputs have the setting's shape: an answer of
    ``claims`` sentences, a list of queries, a short verdict (deterministic per prompt)."""

    def __init__(self, setting: Setting, time_scale: float = 1.0) -> None:
        super().__init__(
            step_s=setting.step_s,
            step_s_per_seq=setting.step_s_per_seq,
            prefill_s_per_token=setting.prefill_s_per_token,
            max_batch=setting.max_batch,
            time_scale=time_scale,
        )
        self.setting = setting

    def script(self, prompt_text: str, max_tokens: int) -> list[str]:
        s = self.setting
        rng = random.Random(prompt_text)

        def words(n: int, end: str) -> list[str]:
            out = [rng.choice(_VOCAB) + " " for _ in range(n)]
            out[0] = out[0].capitalize()
            out[-1] = out[-1].rstrip() + end
            return out

        if prompt_text.startswith("Answer"):
            return [t for _ in range(s.claims) for t in words(rng.randint(*s.claim_tokens), ". ")]
        if prompt_text.startswith("Write search queries"):
            return [t for _ in range(rng.randint(*s.queries)) for t in words(rng.randint(*s.query_tokens), "\n")]
        label = rng.choice(["SUPPORTED ", "REFUTED "])
        return [label, *words(s.verdict_tokens - 1, ".")]


def build_pipeline(
    setting: Setting, time_scale: float = 1.0, llm_resources: dict[str, float] | None = None
) -> alto.Pipeline:
    """The fact-check pipeline of the setting; each LLM replica builds its own engine
    (``llm_resources``: what each LLM replica needs on Ray, e.g. one simulated GPU)."""
    res: dict[str, Any] = {"resources": llm_resources} if llm_resources else {}

    def engine() -> PaperEngine:
        return PaperEngine(setting, time_scale)

    def split_stage(prompt: Callable[[str], str], kind: str, splitter: str, max_tokens: int) -> type:
        """A class stage (one engine per replica) streaming the parts of one LLM call."""

        class SplitStage:
            __alto_llm__ = LLMCall(prompt=prompt, kind=lambda x: kind)

            def __init__(self) -> None:
                self.gen = generate_split(engine(), prompt, splitter, max_tokens=max_tokens, dedupe=False)

            async def __call__(self, text: str) -> AsyncIterator[str]:
                async for part in self.gen(text):
                    yield part

        return SplitStage

    Answer = split_stage(answer_prompt, "answer", "sentences", 2048)
    Queries = split_stage(queries_prompt, "queries", "lines", 256)

    class Verdict:
        __alto_llm__ = LLMCall(prompt=lambda item: verdict_prompt(setting, item), kind=lambda item: "verdict")

        def __init__(self) -> None:
            self.gen = generate(engine(), lambda item: verdict_prompt(setting, item), max_tokens=64)

        async def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
            text = await self.gen(item)
            return {"claim": item["claim"], "verdict": text.split()[0]}

    async def retrieve(query: str) -> list[int]:
        await asyncio.sleep(setting.search_s * time_scale)
        return search(setting, query)

    async def evidence(claim: str, hit_lists: list[list[int]]) -> dict[str, Any]:
        return merge(setting, claim, hit_lists)

    async def report(question: str, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"question": question, "verdicts": [(v["claim"], v["verdict"]) for v in verdicts]}

    n = setting.llm_replicas
    p = alto.Pipeline(f"factcheck_paper_{setting.claims}")
    claims = p.input().expand(Answer, replicas=n, name="claims", **res)
    hits = claims.expand(Queries, replicas=n, name="queries", **res).map(
        retrieve, replicas=setting.search_replicas, name="search"
    )
    verdicts = hits.aggregate(evidence, name="evidence").map(Verdict, replicas=n, name="verdicts", **res)
    p.output(verdicts)  # partial outputs: each claim's verdict as it is ready
    p.output(verdicts.aggregate(report, name="report"))
    return p


def questions(n: int, seed: int = 7) -> list[str]:
    """The requests, the same for every system and rate (common random numbers)."""
    rng = random.Random(seed)
    return [f"q{i}: how does {rng.choice(_VOCAB)} relate to {rng.choice(_VOCAB)}?" for i in range(n)]


# -- ideal latency ----------------------------------------------------------------------


def _emissions(setting: Setting, prompt: str, splitter: str) -> tuple[float, list[tuple[str, float]]]:
    """(time the call ends, [(part, time it is complete)]) for one LLM call running
    alone at batch 1, from its prompt's prefill and its script's tokens."""
    engine = PaperEngine(setting)
    tokens = engine.script(prompt, 10**6)
    prefill = max(1, len(prompt) // 4) * setting.prefill_s_per_token
    step = setting.step_s + setting.step_s_per_seq
    split = SPLITTERS[splitter]()
    parts: list[tuple[str, float]] = []
    for k, tok in enumerate(tokens, start=1):
        parts += [(part, prefill + k * step) for part in split.feed(tok)]
    end = prefill + len(tokens) * step
    parts += [(part, end) for part in split.flush()]
    return end, parts


def ideal_latency(setting: Setting, question: str) -> float:
    """The request's critical path with zero orchestration overhead and no queueing
    (seconds): each claim goes on the moment its sentence is complete, each query the
    moment its line is, and every LLM call runs alone at batch 1."""
    _, claims = _emissions(setting, answer_prompt(question), "sentences")
    done = []
    for claim, t_claim in claims:
        _, queries = _emissions(setting, queries_prompt(claim), "lines")
        hit_lists = [search(setting, q) for q, _ in queries]
        t_evidence = max((t + setting.search_s for _, t in queries), default=0.0)
        end, _ = _emissions(setting, verdict_prompt(setting, merge(setting, claim, hit_lists)), "lines")
        done.append(t_claim + t_evidence + end)
    return max(done)
