"""RAG, document analysis and map-reduce summarisation: ALTO streaming, ALTO with
``streaming=False`` and LangGraph, on the same components and requests.

    python benchmarks/apps.py --out docs/apps_bench.json      # ~4 min

Components: a SIMULATED engine (``alto.llm.Simulated`` defaults: a 7B model on one
A100, continuous batching) for the LLM calls, BM25 over FOLDOC (real) for retrieval,
all-MiniLM-L6-v2 (real, on this CPU) for the document analysis's embeddings. Every
system gets the same requests at the same Poisson arrival times (``alto.testing``),
and the final results are checked to be identical across the three. "Unloaded" is
the mean latency of ALTO streaming with one request at a time (no queueing).
Latencies of the LLM applications are in simulated seconds (``time_scale`` 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python benchmarks/apps.py): import the package beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alto.llm import Simulated
from alto.retrieval import BM25, load_foldoc
from alto.testing import compare, cpu_ms_per_request, curve, runtime_factory, sweep
from alto_apps import analysis, rag, summarize
from benchmarks.langgraph_apps import analysis_graph, app_system, rag_graph, summarize_graph

TIME_SCALE = 0.5
TARGET_S = 4.0


def alto_factory(build: Any, streaming: bool) -> Any:
    return runtime_factory(build, streaming=streaming)


def graph_factory(make_graph: Any, partial: str, final: str) -> Any:
    @asynccontextmanager
    async def start() -> Any:
        yield app_system(make_graph(), partial, final)

    return start


async def unloaded(factory: Any, inputs: list[Any], scale: float) -> float:
    async with factory() as system:
        times = []
        for x in inputs:
            t0 = time.perf_counter()
            async for _ in system(x):
                pass
            times.append((time.perf_counter() - t0) / scale)
    return statistics.fmean(times)


def apps(docs: list[Any], retriever: Any, llm_scale: float = TIME_SCALE) -> dict[str, dict[str, Any]]:
    """Each application: its three systems, inputs, rates and time scale."""
    long_docs = [d for d in docs if 400 < len(d.text) < 1500]
    questions = [f"What is {d.title} and what is it used for?" for d in docs[1000:1040]]
    texts = [d.text for d in long_docs[:40]]
    documents = [{"id": d.id, "text": d.text} for d in long_docs[40:80]]

    def llm() -> Simulated:
        return Simulated(time_scale=llm_scale, seed=1)

    out: dict[str, dict[str, Any]] = {}
    out["rag"] = {
        "inputs": questions,
        "rates": [2.0, 8.0, 16.0],
        "scale": llm_scale,
        "systems": {
            "streaming": alto_factory(lambda: rag.build_pipeline(llm(), retriever), True),
            "baseline": alto_factory(lambda: rag.build_pipeline(llm(), retriever), False),
            "langgraph": graph_factory(lambda: rag_graph(llm(), retriever), "retrieve", "answer"),
        },
    }
    out["summarize"] = {
        "inputs": texts,
        "rates": [1.0, 4.0, 8.0],
        "scale": llm_scale,
        "systems": {
            "streaming": alto_factory(lambda: summarize.build_pipeline(llm()), True),
            "baseline": alto_factory(lambda: summarize.build_pipeline(llm()), False),
            "langgraph": graph_factory(lambda: summarize_graph(llm()), "section", "combine"),
        },
    }
    out["analysis"] = {  # real embeddings on this CPU: real seconds, time_scale 1
        "inputs": documents,
        "rates": [2.0, 5.0, 10.0],
        "scale": 1.0,
        "systems": {
            "streaming": alto_factory(lambda: analysis.build_pipeline(), True),
            "baseline": alto_factory(lambda: analysis.build_pipeline(), False),
            "langgraph": graph_factory(lambda: analysis_graph(), "classify", "report"),
        },
    }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", type=lambda s: s.split(","), help="only these (merged into an existing --out)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"simulated_llm": True, "slo_s": TARGET_S}
    if args.apps and args.out and args.out.exists():
        result = json.loads(args.out.read_text())
    docs = load_foldoc()
    retriever = BM25(docs)
    instant = apps(docs, retriever, 0.0)
    for name, app in apps(docs, retriever).items():
        if args.apps and name not in args.apps:
            continue
        print(f"{name} ...", file=sys.stderr)
        runs, mismatches = asyncio.run(sweep(app["systems"], app["inputs"], app["rates"], time_scale=app["scale"]))
        r: dict[str, Any] = {s: curve(v, TARGET_S) for s, v in runs.items()}
        r["unloaded_mean_s"] = asyncio.run(unloaded(app["systems"]["streaming"], app["inputs"][:8], app["scale"]))
        r["identical_outputs"] = not mismatches
        r["cpu_ms_per_request"] = {
            s: asyncio.run(cpu_ms_per_request(f, instant[name]["inputs"][:20]))
            for s, f in instant[name]["systems"].items()
        }
        r["time_scale"] = app["scale"]
        r["vs_baseline"] = compare(r["streaming"], r["baseline"], TARGET_S)
        r["vs_langgraph"] = compare(r["streaming"], r["langgraph"], TARGET_S)
        r["mean_ratio_vs_langgraph_by_rate"] = [
            g / s for g, s in zip(r["langgraph"]["mean_s"], r["streaming"]["mean_s"], strict=True)
        ]
        result[name] = r
        print(
            f"{name}: mean s by rate {app['rates']}: streaming {[round(x, 2) for x in r['streaming']['mean_s']]}, "
            f"baseline {[round(x, 2) for x in r['baseline']['mean_s']]}, "
            f"langgraph {[round(x, 2) for x in r['langgraph']['mean_s']]}; unloaded {r['unloaded_mean_s']:.2f}; "
            f"identical {r['identical_outputs']}",
            file=sys.stderr,
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    main()
