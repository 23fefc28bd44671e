"""CPU per request of a fact-check-shaped pipeline: ALTO against hand-written asyncio.

The pipeline has the fact-check application's shape (an answer streamed and split into
claims, per claim a streamed list of queries, a search per query, evidence merged per
claim, a verdict per claim, a report per request) over a **zero-delay simulated
engine**: every LLM call yields its (SIMULATED) tokens at once, retrieval is instant.
What is left is orchestration: ALTO's executor, ancestry and routing against the same
stage functions chained by hand with ``async for`` and one task per claim -- the
leanest streaming program a careful engineer would write. Both run in one process, on
the same requests, and both are checked to give identical reports. A second variant makes search, merge
and report plain (blocking) functions, as most users write them.

Used by ``benchmarks/overhead.py`` (JSON keys ``cpu_ms_per_request_alto`` and
``cpu_ms_per_request_handwritten``); runnable alone::

    python benchmarks/cpu_per_request.py --requests 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import alto
from alto.llm import Simulated, generate_split


class Instant(Simulated):
    """SIMULATED engine with zero delay: a call yields its whole script at once."""

    async def _stream(self, messages: list[dict[str, str]], *, max_tokens: int, **extra: Any) -> AsyncIterator[str]:
        for token in self.script("\n".join(m["content"] for m in messages), max_tokens):
            yield token


class Stages:
    """The stage functions, shared by both implementations."""

    def __init__(self, llm: Simulated) -> None:
        self.answer = generate_split(
            llm, "Answer: {input}", "sentences", max_tokens=160, max_parts=5, name="answer", transform=self._claim
        )
        self.llm_queries = generate_split(llm, "List queries for: {input}", "list", max_tokens=32, max_parts=2)
        self.judge = llm

    @staticmethod
    def _claim(sentence: str, question: str) -> dict[str, str]:
        return {"question": question, "claim": sentence.strip()}

    async def queries(self, item: dict[str, str]) -> AsyncIterator[dict[str, str]]:
        yield {"claim": item["claim"], "query": item["claim"]}
        async for q in self.llm_queries(item["claim"]):
            yield {"claim": item["claim"], "query": q}

    async def search(self, item: dict[str, str]) -> list[str]:
        return [f"{item['query'][:12]}#{i}" for i in range(3)]

    async def merge(self, claim: dict[str, str], hit_lists: list[list[str]]) -> dict[str, Any]:
        hits = sorted({h for hits in hit_lists for h in hits})[:3]
        return {"claim": claim["claim"], "evidence": hits}

    async def verdict(self, item: dict[str, Any]) -> dict[str, Any]:
        prompt = f"Verdict: supported or refuted? {item['claim']} {item['evidence']}"
        text = await self.judge.complete(prompt, max_tokens=12)
        return {"claim": item["claim"], "label": text.strip()}

    async def report(self, question: str, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"question": question, "verdicts": verdicts}


class BlockingStages(Stages):
    """The same stages with plain (blocking) search, merge and report functions, as a
    user wraps a blocking retrieval client: ALTO runs them in worker threads, so the
    hand-written version runs them with ``asyncio.to_thread`` (the same semantics)."""

    def search(self, item: dict[str, str]) -> list[str]:  # type: ignore[override]
        return [f"{item['query'][:12]}#{i}" for i in range(3)]

    def merge(self, claim: dict[str, str], hit_lists: list[list[str]]) -> dict[str, Any]:  # type: ignore[override]
        hits = sorted({h for hits in hit_lists for h in hits})[:3]
        return {"claim": claim["claim"], "evidence": hits}

    def report(self, question: str, verdicts: list[dict[str, Any]]) -> dict[str, Any]:  # type: ignore[override]
        return {"question": question, "verdicts": verdicts}


async def call(fn: Any, *args: Any) -> Any:
    """What a careful asyncio programmer writes: await a coroutine, thread a blocking call."""
    if asyncio.iscoroutinefunction(fn):
        return await fn(*args)
    return await asyncio.to_thread(fn, *args)


def alto_pipeline(stages: Stages) -> alto.Pipeline:
    p = alto.Pipeline("factcheck_shape")
    claims = p.input().expand(stages.answer, name="claims")
    hits = claims.expand(stages.queries, name="queries").map(stages.search, name="search")
    verdicts = hits.aggregate(stages.merge, name="evidence").map(stages.verdict, name="verdicts")
    p.output(verdicts.aggregate(stages.report, name="report"))
    return p


async def handwritten(stages: Stages, question: str) -> dict[str, Any]:
    """One request, streamed by hand: each claim is checked while the answer goes on."""

    async def check(claim: dict[str, str]) -> dict[str, Any]:
        hit_lists = [await call(stages.search, q) async for q in stages.queries(claim)]
        return await stages.verdict(await call(stages.merge, claim, hit_lists))

    checks = [asyncio.create_task(check(claim)) async for claim in stages.answer(question)]
    return await call(stages.report, question, list(await asyncio.gather(*checks)))


def questions(n: int) -> list[str]:
    return [f"question {i} about mail protocols" for i in range(n)]


async def cpu_alto(n: int, *, streaming: bool = True, kind: type[Stages] = Stages) -> tuple[float, list[Any]]:
    stages = kind(Instant(seed=1))
    async with alto.LocalRuntime(alto_pipeline(stages), streaming=streaming) as rt:
        await rt.map(questions(8))  # warm-up: threads, first operator calls
        t0 = time.process_time()
        results = await rt.map(questions(n))
        return time.process_time() - t0, results


async def cpu_handwritten(n: int, *, kind: type[Stages] = Stages) -> tuple[float, list[Any]]:
    stages = kind(Instant(seed=1))
    await asyncio.gather(*(handwritten(stages, q) for q in questions(8)))
    t0 = time.process_time()
    # the same admission limit as the runtime's map (max_requests=128 in flight)
    limit = asyncio.Semaphore(128)

    async def one(q: str) -> dict[str, Any]:
        async with limit:
            return await handwritten(stages, q)

    results = await asyncio.gather(*(one(q) for q in questions(n)))
    return time.process_time() - t0, list(results)


def measure(requests: int, repeat: int) -> dict[str, Any]:
    """Best of ``repeat`` runs of each, in ms of CPU per request."""

    def best(run: Any, *args: Any, **kwargs: Any) -> tuple[float, list[Any]]:
        return min((asyncio.run(run(*args, **kwargs)) for _ in range(repeat)), key=lambda r: r[0])

    a = best(cpu_alto, requests)
    b = best(cpu_alto, requests, streaming=False)
    h = best(cpu_handwritten, requests)
    ab = best(cpu_alto, requests, kind=BlockingStages)
    hb = best(cpu_handwritten, requests, kind=BlockingStages)
    if any(r[1] != h[1] for r in (a, b, ab, hb)):
        raise AssertionError("ALTO and the hand-written pipeline disagree on the reports")
    claims = sum(len(r["verdicts"]) for r in h[1])
    ms = 1e3 / requests
    return {
        "cpu_ms_per_request_alto": a[0] * ms,
        "cpu_ms_per_request_handwritten": h[0] * ms,
        "cpu_ratio": a[0] / h[0],
        "cpu_ms_per_request_alto_not_streaming": b[0] * ms,
        "cpu_per_request": {
            "blocking_functions": {
                "note": "search, merge and report as plain functions: worker threads in ALTO, "
                "asyncio.to_thread by hand",
                "alto_ms": ab[0] * ms,
                "handwritten_ms": hb[0] * ms,
                "ratio": ab[0] / hb[0],
            },
            "requests": requests,
            "claims_per_request": claims / requests,
            "note": "fact-check-shaped pipeline over a zero-delay SIMULATED engine; process CPU "
            "time per request, best of --repeat runs; identical reports checked",
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    result = measure(args.requests, args.repeat)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
