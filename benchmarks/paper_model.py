"""The paper's fact-check pipeline on SIMULATED engines: setting, engines, three systems' parts.

The pipeline is FacTool's knowledge-based QA check of a chatbot answer (Chern et al.,
2023, github.com/GAIR-NLP/factool, ``factool/knowledge_qa``), the pipeline the ALTO
paper serves:

    answer LLM -> claim-extraction LLM -> query-generation LLM -> search -> verifier LLM -> report

Every constant of :class:`Setting` carries its source in the comment beside it (see also
``docs/benchmarks.md``, "The setting and its sources"). The setting was committed before
any result was measured on it, and is not changed after.

**How the claim extractor consumes a growing answer.** FacTool extracts claims with one
LLM call on the whole response. A call cannot read input that does not exist yet, so the
streaming pipeline calls the extractor once per answer *sentence*, as each sentence is
complete, with FacTool's extraction instructions, the answer so far as context (so
pronouns resolve as in the one-call version) and the new sentence; the extractor writes
the sentence's claims as a JSON array, and each claim goes on the moment its object
closes. The extractor is a *stateful* stage (``stateful=True``): it keeps the answer so
far per request, so every sentence of one request must reach the same replica --
ALTO's aggregation-aware routing. This costs prefill (the context is re-read once per
sentence) that the one-call extraction does not pay; the SIMULATED engines charge it.
The claims of a sentence depend only on that sentence, so the one-call extraction of
the barrier baseline produces exactly the same claims.

**Engines and placement.** Every LLM call goes to an :class:`EnginePool`: ``engines``
SIMULATED continuous-batching engines (one GPU each) behind one router (least
outstanding requests), the way a client reaches a vLLM deployment behind a load
balancer. Two placements (:func:`make_pools`):

* ``dedicated``: one pool per LLM stage, ``engines_per_stage`` GPUs each;
* ``shared``: one pool of ``shared_engines`` GPUs serving every LLM stage (one
  deployment of one model), the same GPU count in all.

All systems call the same pools with the same router, so only *when* work is issued
differs between them.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import alto
from alto.llm import LLM, JsonArrayItems, Sentences, Simulated, split_stream

__all__ = [
    "EnginePool",
    "PaperEngine",
    "Pools",
    "Search",
    "Setting",
    "answer_prompt",
    "build_pipeline",
    "extract_prompt",
    "extract_prompt_full",
    "ideal_latency",
    "make_pools",
    "queries_prompt",
    "questions",
    "verify_prompt",
]

_VOCAB_TEXT = (
    "the protocol server client mail message network packet address host data system memory program "
    "language compiler kernel process file stream query index model cache request response layer route "
    "node graph token vector database transfer channel"
)
_VOCAB = tuple(_VOCAB_TEXT.split())

# Characters per token, for the prompt lengths: the SIMULATED engine counts a prompt's
# tokens as len(text) // 4 (OpenAI's rule of thumb for English, ~4 characters a token).
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Setting:
    """The paper-like setting; each constant's source is in the comment beside it."""

    # -- the workload: FacTool's knowledge-based QA (GAIR-NLP/factool @ 3f3914b) -------
    # The answer: FacTool's KB-QA responses (datasets/knowledge_qa/knowledge_qa.jsonl,
    # 50 ChatGPT answers) average 249 characters, 42 words: 3 sentences of 14-22 tokens
    # (~1.3 tokens a word) is ~54 tokens.
    sentences: int = 3
    sentence_tokens: tuple[int, int] = (14, 22)
    # Claims: the same file has 4.7 claims per response (median 4, range 1-11), 9.5 words
    # (55.6 characters) each: 1-2 claims per sentence (1.5 x 3 = 4.5), 9-16 tokens each.
    claims_per_sentence: tuple[int, int] = (1, 2)
    claim_tokens: tuple[int, int] = (9, 16)
    # Queries: the query-generation prompt asks for "a Python list of two ... queries"
    # (factool/utils/prompts/query_generation.yaml); its examples are 25-40 characters,
    # 6-10 tokens.
    queries: int = 2
    query_tokens: tuple[int, int] = (6, 10)
    # Search: Serper (Google); google_serper.py keeps int(10 / 2) = 5 snippets per query,
    # ~155 characters each (the README example: 10 snippets, 1,005 characters). A live
    # Google SERP API call takes "typically ~1 second" (docs.serplify.io, live search;
    # serpbase's sample response: elapsed_ms 1234); Serper serves up to 300 queries/s,
    # so searches are not queued here.
    snippets: int = 5
    snippet_chars: int = 155
    search_s: float = 1.0
    # Verifier: JSON with reasoning, error, correction, factuality
    # (agreement_verification.yaml); FacTool's published outputs average 500 characters
    # (datasets/chinese/factool_output.jsonl, 551 English records; README example 401):
    # ~125 tokens.
    verdict_tokens: int = 125
    # Prompt templates' fixed text in characters (system + user, inputs excluded):
    # claim_extraction.yaml 2,277; query_generation.yaml 1,201;
    # agreement_verification.yaml 1,345. The answer: a chat system prompt and the
    # question; FacTool does not publish one, ~100 characters assumed.
    extract_template_chars: int = 2277
    queries_template_chars: int = 1201
    verify_template_chars: int = 1345
    answer_template_chars: int = 100
    # -- the engine: a 7B model (fp16) on one A100-80GB with vLLM ----------------------
    # Decode step at batch 1: 13.5 GB of weights read from 2 TB/s HBM per step is 6.6 ms;
    # NVIDIA's NeMo figures give ~11 ms per token for Llama-2-7B on one A100-80GB at
    # batch 1 (TensorRT-LLM), vLLM ~13 ms for an 8B model: 10 ms.
    step_s: float = 0.010
    # Per running sequence per step: its KV-cache read. At 256 sequences this gives
    # 61 ms a step; LambdaLabsML/vllm-benchmark (benchmark_v0.md) measures 56.5 ms
    # between tokens for Mistral-7B on one A100-80GB under 320 concurrent prompts.
    step_s_per_seq: float = 0.0002
    # Prefill: 13.5 GFLOP per token at ~45% of the A100's 312 TFLOPS is ~0.1 ms per token
    # (an estimate: no published prefill rate for this pair was found).
    prefill_s_per_token: float = 0.0001
    # Batch: vLLM's default max_num_seqs = 256 on an A100. KV capacity: (80 GB x 0.9,
    # vLLM's gpu_memory_utilization, - 13.5 GB of weights) / 0.5 MiB per token
    # (Llama-2-7B: 2 x 32 layers x 4096 x 2 bytes) ~ 110,000 tokens.
    max_batch: int = 256
    kv_tokens: int = 110_000
    # -- the cluster ---------------------------------------------------------------------
    # 12 GPUs either way: dedicated, 4 LLM stages x 3; shared, one pool of 12.
    engines_per_stage: int = 3
    shared_engines: int = 12
    extract_replicas: int = 2  # ALTO replicas of the stateful extractor stage (clients of the pool)

    def with_sentences(self, n: int) -> Setting:
        return replace(self, sentences=n)

    def describe(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "claim_extraction": "llm",
            "claim_extraction_streaming": "one call per answer sentence, answer so far as context",
        }


# -- prompts -------------------------------------------------------------------------------
# Each template starts with a fixed header the SIMULATED engine reads to know what to
# write; the rest of the fixed text is filler of the template's length.


def _filler(chars: int) -> str:
    words = " ".join(_VOCAB)
    return (words * (chars // len(words) + 1))[:chars]


def answer_prompt(setting: Setting, question: str) -> str:
    return f"ANSWER {_filler(setting.answer_template_chars)}\nQuestion: {question}"


def extract_prompt(setting: Setting, context: Sequence[str], sentence: str) -> str:
    """Streaming extraction: the answer so far as context, then the new sentence."""
    return f"EXTRACT {_filler(setting.extract_template_chars)}\nText so far: {' '.join(context)}\nSentence: {sentence}"


def extract_prompt_full(setting: Setting, answer: str) -> str:
    """FacTool's one-call extraction: the whole response."""
    return f"EXTRACTALL {_filler(setting.extract_template_chars)}\nResponse: {answer}"


def queries_prompt(setting: Setting, claim: str) -> str:
    return f"QUERIES {_filler(setting.queries_template_chars)}\nClaim: {claim}"


def verify_prompt(setting: Setting, claim: str, evidence: Sequence[str]) -> str:
    return f"VERIFY {_filler(setting.verify_template_chars)}\nClaim: {claim}\nEvidence: {' | '.join(evidence)}"


# -- the SIMULATED engine's outputs --------------------------------------------------------


def _words(rng: random.Random, n: int) -> list[str]:
    out = [rng.choice(_VOCAB) for _ in range(n)]
    out[0] = out[0].capitalize()
    return out


def _answer_tokens(setting: Setting, question: str) -> list[str]:
    rng = random.Random(f"answer:{question}")
    tokens: list[str] = []
    for _ in range(setting.sentences):
        words = _words(rng, rng.randint(*setting.sentence_tokens))
        tokens += [w + " " for w in words[:-1]] + [words[-1] + ". "]
    return tokens


def claims_of(setting: Setting, sentence: str) -> list[str]:
    """The claims the extractor finds in one answer sentence (deterministic)."""
    rng = random.Random(f"claims:{sentence.strip()}")
    return [
        " ".join(_words(rng, rng.randint(*setting.claim_tokens))) + "."
        for _ in range(rng.randint(*setting.claims_per_sentence))
    ]


def _json_claims_tokens(claims: Sequence[str]) -> list[str]:
    tokens = ["["]
    for k, claim in enumerate(claims):
        tokens += ['{"claim": "', *(w + " " for w in claim.split()[:-1]), claim.split()[-1] + '"}']
        tokens.append(", " if k + 1 < len(claims) else "]")
    return tokens if claims else ["[", "]"]


def _queries_tokens(setting: Setting, claim: str) -> list[str]:
    rng = random.Random(f"queries:{claim}")
    tokens = ["["]
    for k in range(setting.queries):
        words = _words(rng, rng.randint(*setting.query_tokens))
        tokens += ['"', *(w + " " for w in words[:-1]), words[-1] + '"', ", " if k + 1 < setting.queries else "]"]
    return tokens


def _verdict_tokens(setting: Setting, claim: str, evidence: Sequence[str]) -> list[str]:
    rng = random.Random(f"verify:{claim}|{'|'.join(evidence)}")
    factual = rng.random() < 0.7
    head = ['{"reasoning": "']
    tail = ['", "error": "', "none" if factual else "mismatch", '", "correction": "', "none", '", "factuality": ']
    tail.append("true}" if factual else "false}")
    n = max(1, setting.verdict_tokens - len(head) - len(tail))
    return head + [w + " " for w in _words(rng, n)] + tail


def parse_verdict(text: str) -> bool:
    """The ``factuality`` field of the verifier's JSON."""
    import json

    return bool(json.loads(text)["factuality"])


def search_snippets(setting: Setting, query: str) -> list[str]:
    """The top snippets a query retrieves (deterministic: the same in every system)."""
    rng = random.Random(f"search:{query}")
    return [f"[{rng.randrange(100_000)}] {_filler(setting.snippet_chars - 8)}" for _ in range(setting.snippets)]


class PaperEngine(Simulated):
    """A SIMULATED engine (see :mod:`alto.llm`) that writes what the setting's prompts ask
    for: the answer's sentences, the claims as a JSON array, the queries as a JSON list,
    the verifier's JSON -- deterministic per prompt, so every system gets the same text."""

    def __init__(self, setting: Setting, time_scale: float = 1.0) -> None:
        super().__init__(
            step_s=setting.step_s,
            step_s_per_seq=setting.step_s_per_seq,
            prefill_s_per_token=setting.prefill_s_per_token,
            max_batch=setting.max_batch,
            kv_tokens=setting.kv_tokens,
            time_scale=time_scale,
        )
        self.setting = setting

    def script(self, prompt_text: str, max_tokens: int) -> list[str]:
        return script(self.setting, prompt_text)


def script(setting: Setting, prompt_text: str) -> list[str]:
    """The tokens the SIMULATED model writes for a prompt of the setting."""
    head, _, rest = prompt_text.partition(" ")
    body = rest.rsplit("\n", 2)
    if head == "ANSWER":
        return _answer_tokens(setting, rest.rpartition("Question: ")[2])
    if head == "EXTRACT":
        return _json_claims_tokens(claims_of(setting, rest.rpartition("\nSentence: ")[2]))
    if head == "EXTRACTALL":
        answer = rest.rpartition("\nResponse: ")[2]
        return _json_claims_tokens([c for s in Sentences().split(answer) for c in claims_of(setting, s)])
    if head == "QUERIES":
        return _queries_tokens(setting, rest.rpartition("\nClaim: ")[2])
    if head == "VERIFY":
        claim = body[-2].removeprefix("Claim: ")
        return _verdict_tokens(setting, claim, body[-1].removeprefix("Evidence: ").split(" | "))
    raise ValueError(f"the paper engine has no script for a prompt starting {prompt_text[:20]!r}")


# -- engine pools and the search service ----------------------------------------------------


@dataclass
class Call:
    """One LLM call or search, for tests and traces (seconds on the event loop's clock)."""

    kind: str
    prompt: str
    start: float
    end: float = math.nan


class EnginePool(LLM):
    """``n`` SIMULATED engines behind one router: least outstanding requests (ties to the
    lowest index), the policy of a load balancer in front of vLLM replicas. Every system
    reaches the engines through this, so routing is the same for all of them.

    ``log``: when a list, every call is appended as a :class:`Call`."""

    name = "pool"

    def __init__(self, setting: Setting, n: int, time_scale: float, log: list[Call] | None = None) -> None:
        super().__init__()
        self.engines = [PaperEngine(setting, time_scale) for _ in range(n)]
        self.outstanding = [0] * n
        self.log = log

    def _stream(self, messages: list[dict[str, str]], **options: Any) -> AsyncIterator[str]:
        return self._call(messages, **options)

    async def _call(self, messages: list[dict[str, str]], **options: Any) -> AsyncIterator[str]:
        i = min(range(len(self.engines)), key=self.outstanding.__getitem__)
        self.outstanding[i] += 1
        text = messages[-1]["content"]
        call = Call(text.partition(" ")[0].lower(), text, time.perf_counter())
        if self.log is not None:
            self.log.append(call)
        try:
            async for tok in self.engines[i]._stream(messages, **options):
                yield tok
        finally:
            self.outstanding[i] -= 1
            call.end = time.perf_counter()

    def clock(self) -> dict[str, float]:
        """The engines' clock lag: steps that woke more than a step late, and the worst lag."""
        return {
            "steps": sum(e.steps for e in self.engines),
            "late_steps": sum(e.late_steps for e in self.engines),
            "max_lag_s": max(e.max_lag_s for e in self.engines),
        }


class Search:
    """The search service: ``search_s`` per query, any number at once."""

    def __init__(self, setting: Setting, time_scale: float, log: list[Call] | None = None) -> None:
        self.setting = setting
        self.time_scale = time_scale
        self.log = log

    async def __call__(self, query: str) -> list[str]:
        call = Call("search", query, time.perf_counter())
        if self.log is not None:
            self.log.append(call)
        await asyncio.sleep(self.setting.search_s * self.time_scale)
        call.end = time.perf_counter()
        return search_snippets(self.setting, query)


@dataclass
class Pools:
    """The LLM pool of each stage (one object four times when shared) and the search."""

    answer: EnginePool
    extract: EnginePool
    queries: EnginePool
    verify: EnginePool
    search: Search
    placement: str
    log: list[Call] | None = field(default=None)

    def clock(self) -> dict[str, float]:
        pools = {id(p): p for p in (self.answer, self.extract, self.queries, self.verify)}.values()
        clocks = [p.clock() for p in pools]
        return {
            "steps": sum(c["steps"] for c in clocks),
            "late_steps": sum(c["late_steps"] for c in clocks),
            "max_lag_s": max(c["max_lag_s"] for c in clocks),
        }


def make_pools(setting: Setting, placement: str, time_scale: float = 1.0, *, trace: bool = False) -> Pools:
    """Fresh engines for one run: ``dedicated`` (a pool per LLM stage) or ``shared`` (one
    pool for all); ``trace``: log every call (tests)."""
    log: list[Call] | None = [] if trace else None
    search = Search(setting, time_scale, log)
    if placement == "shared":
        pool = EnginePool(setting, setting.shared_engines, time_scale, log)
        return Pools(pool, pool, pool, pool, search, placement, log)
    if placement == "dedicated":
        a, e, q, v = (EnginePool(setting, setting.engines_per_stage, time_scale, log) for _ in range(4))
        return Pools(a, e, q, v, search, placement, log)
    raise ValueError(f"placement must be 'dedicated' or 'shared', got {placement!r}")


# -- the ALTO pipeline -----------------------------------------------------------------------


def report_of(question: str, verdicts: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """The request's report: every claim with its factuality, in answer order."""
    return {"question": question, "claims": [[c, v] for c, v in verdicts]}


def build_pipeline(setting: Setting, pools: Pools) -> alto.Pipeline:
    """The fact-check pipeline on ``pools``: each claim's verdict is a partial output,
    the report the final one."""

    async def answer(question: str) -> AsyncIterator[str]:
        async for sentence in split_stream(
            pools.answer.stream(answer_prompt(setting, question), max_tokens=4096), "sentences"
        ):
            yield sentence

    class Extract:
        """Stateful across one request's sentences: keeps the answer so far as context."""

        def __init__(self) -> None:
            self.seen: OrderedDict[tuple[int, ...], dict[int, str]] = OrderedDict()

        async def __call__(self, sentence: str) -> AsyncIterator[str]:
            path = alto.current().path
            parent, index = path[:-1], path[-1]
            so_far = self.seen.setdefault(parent, {})
            self.seen.move_to_end(parent)
            while len(self.seen) > 10_000:  # requests long finished
                self.seen.popitem(last=False)
            so_far[index] = sentence
            context = [so_far[i] for i in sorted(so_far) if i < index]
            prompt = extract_prompt(setting, context, sentence)
            async for obj in split_stream(pools.extract.stream(prompt, max_tokens=1024), JsonArrayItems()):
                yield obj["claim"]

    async def queries(claim: str) -> AsyncIterator[str]:
        prompt = queries_prompt(setting, claim)
        async for query in split_stream(pools.queries.stream(prompt, max_tokens=256), JsonArrayItems()):
            yield query

    async def evidence(claim: str, snippet_lists: list[list[str]]) -> dict[str, Any]:
        return {"claim": claim, "evidence": [s for snippets in snippet_lists for s in snippets]}

    async def verify(item: dict[str, Any]) -> tuple[str, bool]:
        text = await pools.verify.complete(verify_prompt(setting, item["claim"], item["evidence"]), max_tokens=512)
        return (item["claim"], parse_verdict(text))

    async def sentence_verdicts(sentence: str, verdicts: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
        return verdicts

    async def report(question: str, per_sentence: list[list[tuple[str, bool]]]) -> dict[str, Any]:
        return report_of(question, [v for vs in per_sentence for v in vs])

    free: dict[str, Any] = {"concurrency": None}  # the stages are clients of the pools
    p = alto.Pipeline(f"factcheck_paper_{setting.sentences}")
    sentences = p.input().expand(answer, name="answer", **free)
    claims = sentences.expand(Extract, name="extract", stateful=True, replicas=setting.extract_replicas, **free)
    hits = claims.expand(queries, name="queries", **free).map(pools.search, name="search", **free)
    verdicts = hits.aggregate(evidence, name="evidence").map(verify, name="verify", **free)
    p.output(verdicts)  # partial outputs: each claim's verdict as it is ready
    p.output(verdicts.aggregate(sentence_verdicts, name="sentence").aggregate(report, name="report"))
    return p


def questions(n: int, seed: int = 7) -> list[str]:
    """The requests of one arrival seed, the same for every system and rate."""
    rng = random.Random(seed)
    return [f"q{seed}.{i}: how does {rng.choice(_VOCAB)} relate to {rng.choice(_VOCAB)}?" for i in range(n)]


# -- ideal latency ---------------------------------------------------------------------------


def _call(setting: Setting, prompt: str) -> tuple[float, list[tuple[str, float]]]:
    """One LLM call alone at batch 1: (time it ends, [(text so far, time) per token])."""
    prefill = max(1, len(prompt) // CHARS_PER_TOKEN) * setting.prefill_s_per_token
    step = setting.step_s + setting.step_s_per_seq
    tokens = script(setting, prompt)
    out, text = [], ""
    for k, tok in enumerate(tokens, start=1):
        text += tok
        out.append((tok, prefill + k * step))
    return prefill + len(tokens) * step, out


def _parts(setting: Setting, prompt: str, splitter: Any) -> tuple[float, list[tuple[Any, float]]]:
    end, tokens = _call(setting, prompt)
    parts = [(part, t) for tok, t in tokens for part in splitter.feed(tok)]
    return end, parts + [(part, end) for part in splitter.flush()]


def ideal_latency(setting: Setting, question: str) -> float:
    """The request's critical path with zero orchestration overhead and no queueing
    (seconds): each sentence is extracted the moment it is complete, each claim and
    query goes on the moment its JSON item closes, and every LLM call runs alone at
    batch 1 on its own engine."""
    _, sentences = _parts(setting, answer_prompt(setting, question), Sentences())
    done = []
    for i, (sentence, t_sentence) in enumerate(sentences):
        context = [s for s, _ in sentences[:i]]
        _, claims = _parts(setting, extract_prompt(setting, context, sentence), JsonArrayItems())
        for obj, t_claim in claims:
            claim = obj["claim"]
            _, queries = _parts(setting, queries_prompt(setting, claim), JsonArrayItems())
            evidence = [s for q, _ in queries for s in search_snippets(setting, q)]
            t_evidence = max(t for _, t in queries) + setting.search_s
            end, _ = _call(setting, verify_prompt(setting, claim, evidence))
            done.append(t_sentence + t_claim + t_evidence + end)
    return max(done)
