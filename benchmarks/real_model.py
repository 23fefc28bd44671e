"""Streaming against not with the REAL embedded model: fact-check and RAG on SmolLM2.

    python benchmarks/real_model.py --out docs/real_model.json     # ~10 min on 2 cores

The embedded default of `alto demo`: SmolLM2-135M-Instruct in llama.cpp (one engine
per core, one thread each), FOLDOC with hybrid BM25 + MiniLM retrieval. Each question is
asked once with ``streaming=True`` and once with ``streaming=False``, one request at a
time (latency without queueing); which mode goes first alternates, because the second
run of a prompt finds its prefix in llama.cpp's KV cache. Figures: mean latency and, for
fact-check, time to the first verdict.
Generated text differs between builds; only timings are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import alto
from alto_apps import rag
from alto_apps.factcheck import FactCheckConfig, build_pipeline, embedded_components

QUESTIONS = [
    "How does e-mail get from one computer to another?",
    "What is SQL used for?",
    "What does a compiler do?",
    "How does Ethernet work?",
    "What is the difference between TCP and UDP?",
    "What is a kernel in an operating system?",
    "What is HTML?",
    "How does DNS resolve a name?",
    "What is a cache?",
    "What is Unix?",
    "What does a router do?",
    "What is an interpreter?",
]


async def once(rt: alto.LocalRuntime, question: str, first_stage: str | None) -> tuple[float, float | None]:
    t0 = time.perf_counter()
    first = None
    async for ev in rt.stream(question):
        if first is None and ev.stage == first_stage:
            first = time.perf_counter() - t0
    return time.perf_counter() - t0, first


async def measure(pipeline: alto.Pipeline, questions: list[str], first_stage: str | None) -> dict[str, Any]:
    runs: dict[str, dict[str, list[float]]] = {m: {"latency_s": [], "first_s": []} for m in ("streaming", "baseline")}
    async with alto.LocalRuntime(pipeline) as streaming, alto.LocalRuntime(pipeline, streaming=False) as baseline:
        await once(streaming, "warm-up: what is a byte?", first_stage)
        for i, q in enumerate(questions):
            # the second run of a question finds its prompt's prefix in llama.cpp's KV
            # cache: alternate which mode goes first, so neither always gets the warm cache
            order = [("streaming", streaming), ("baseline", baseline)]
            for mode, rt in order if i % 2 == 0 else order[::-1]:
                latency, first = await once(rt, q, first_stage)
                runs[mode]["latency_s"].append(latency)
                if first is not None:
                    runs[mode]["first_s"].append(first)
                print(f"[{i + 1}/{len(questions)}] {mode:>9} {latency:6.2f}s  {q}", file=sys.stderr)
    out: dict[str, Any] = {}
    for mode, r in runs.items():
        out[mode] = {
            **r,
            "mean_latency_s": statistics.fmean(r["latency_s"]),
            "mean_first_s": statistics.fmean(r["first_s"]) if r["first_s"] else None,
        }
    out["latency_ratio"] = out["baseline"]["mean_latency_s"] / out["streaming"]["mean_latency_s"]
    if out["streaming"]["mean_first_s"] and out["baseline"]["mean_first_s"]:
        out["first_ratio"] = out["baseline"]["mean_first_s"] / out["streaming"]["mean_first_s"]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=len(QUESTIONS))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    questions = QUESTIONS[: args.questions]
    llm, retriever, dense = embedded_components()
    result: dict[str, Any] = {
        "model": "SmolLM2-135M-Instruct Q4_1 (llama.cpp, embedded)",
        "engines": getattr(llm, "engines", None),
        "threads_per_engine": getattr(llm, "n_threads", None),
        "questions": questions,
    }
    factcheck = build_pipeline(llm, retriever, scorer=dense, config=FactCheckConfig(max_claims=5))
    result["factcheck"] = asyncio.run(measure(factcheck, questions, "verdicts"))
    result["rag"] = asyncio.run(measure(rag.build_pipeline(llm, retriever), questions, None))
    llm.close()
    for app in ("factcheck", "rag"):
        r = result[app]
        first = (
            f", first verdict {r['streaming']['mean_first_s']:.2f} vs {r['baseline']['mean_first_s']:.2f} s"
            if r.get("first_ratio")
            else ""
        )
        print(
            f"{app}: mean latency streaming {r['streaming']['mean_latency_s']:.2f} s vs baseline "
            f"{r['baseline']['mean_latency_s']:.2f} s ({r['latency_ratio']:.2f}x){first}",
            file=sys.stderr,
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
