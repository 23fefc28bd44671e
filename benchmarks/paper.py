"""The paper's experiment: fact-check, streaming against not (and LangGraph), SIMULATED.

The pipeline, its setting (each constant with its source) and the ideal-latency
calculation are in :mod:`benchmarks.paper_model`; this module runs them under load:

    python benchmarks/paper.py --quick --out /tmp/paper.json      # < 1 min
    alto bench paper --heatmap --out docs/paper.json               # the full sweep

Both ALTO systems (``streaming`` and ``baseline``, i.e. ``streaming=False``) and the
LangGraph version run the same components on the same requests at the same arrival
times; their reports are checked to be identical.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python benchmarks/paper.py): import the package beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alto.testing import alto_system, cpu_ms_per_request, runtime_factory
from benchmarks.paper_model import (
    PaperEngine,
    Setting,
    answer_prompt,
    build_pipeline,
    ideal_latency,
    merge,
    queries_prompt,
    questions,
    search,
    verdict_prompt,
)

__all__ = [
    "PaperEngine",
    "Setting",
    "alto_system",
    "answer_prompt",
    "build_pipeline",
    "experiment",
    "ideal_latency",
    "main",
    "merge",
    "queries_prompt",
    "questions",
    "search",
    "verdict_prompt",
]

# -- the experiment -----------------------------------------------------------------------

TARGET_S = 4.0
RAY_SETTLE_S = 8.0
# requests per simulated second at 10 claims per answer: from light load to past the
# point where both systems miss the target (verdict prefill saturates near 8/s)
RATES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
QUICK_RATES = (2.0, 5.0, 8.0)
HEATMAP_CLAIMS = (2, 4, 8, 10, 16)
HEATMAP_RATES = (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)  # scaled by 10 / claims: about the same tokens per second
HEATMAP_TARGETS = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)


def factories(setting: Setting, time_scale: float, runtime: str, langgraph: bool = False) -> dict[str, Any]:
    """``streaming`` and ``baseline`` (and ``langgraph``): the same components, a fresh
    runtime or graph (fresh engines) per run."""
    # on Ray each LLM replica takes one of the simulated cluster's GPUs (4 per node), and
    # the ~20 new actor processes finish starting before the measurement
    resources = {"sim_gpu": 1} if runtime == "ray" else None
    opts: dict[str, Any] = {"runtime": runtime, "settle_s": RAY_SETTLE_S if runtime == "ray" else 0.0}
    out = {
        name: runtime_factory(
            lambda: build_pipeline(setting, time_scale, resources), streaming=streaming, timeout_s=3600, **opts
        )
        for name, streaming in (("streaming", True), ("baseline", False))
    }
    if langgraph:
        from benchmarks.langgraph_apps import langgraph_factory

        out["langgraph"] = langgraph_factory(setting, time_scale)
    return out


def cpu_per_request(setting: Setting, requests: int = 40, langgraph: bool = True) -> dict[str, float]:
    """CPU milliseconds per request of each system, engines at zero delay (what is left
    is orchestration and the components' own code), all requests in flight at once."""
    systems = factories(setting, 0.0, "local", langgraph)
    return {name: asyncio.run(cpu_ms_per_request(f, questions(requests))) for name, f in systems.items()}


async def experiment(
    setting: Setting,
    rates: Sequence[float],
    requests: int,
    *,
    time_scale: float,
    runtime: str = "local",
    quiet: bool = False,
    langgraph: bool = False,
) -> dict[str, Any]:
    """Both systems (and LangGraph) over ``rates`` on one setting: curves, ideal latency, ratios."""
    from alto.testing import compare, curve, sweep

    inputs = questions(requests)
    runs, mismatches = await sweep(
        factories(setting, time_scale, runtime, langgraph), inputs, rates, time_scale=time_scale, quiet=quiet
    )
    ideal = statistics.fmean(ideal_latency(setting, q) for q in inputs[int(0.1 * len(inputs)) :])
    out: dict[str, Any] = {}
    for name, summaries in runs.items():
        out[name] = curve(summaries, TARGET_S)
        out[name]["ideal_mean_s"] = ideal
    ratios = compare(out["streaming"], out["baseline"], TARGET_S)
    i = out["baseline"]["rates"].index(ratios["equal_load_rate"])
    for name in runs:
        out[name]["p99_s_at_equal_load"] = out[name]["p99_s"][i]
        out[name]["mean_s_at_equal_load"] = out[name]["mean_s"][i]
        out[name]["first_mean_s_at_equal_load"] = out[name]["first_mean_s"][i]
    out["ratios"] = ratios
    if "langgraph" in out:
        out["ratios_vs_langgraph"] = compare(out["streaming"], out["langgraph"], TARGET_S)
    out["ideal_mean_s"] = ideal
    out["streaming_low_load_vs_ideal"] = out["streaming"]["mean_s"][0] / ideal
    out["identical_outputs"] = not mismatches
    out["mismatches"] = mismatches[:10]
    return out


def heatmap(curves: dict[int, dict[str, Any]], targets: Sequence[float]) -> list[list[float | None]]:
    """Throughput ratio (streaming / baseline) per claims count (rows) and target
    (columns), from each claims count's two curves. ``inf``: only streaming meets the
    target at any swept rate; ``nan``: neither does; ``None``: both meet it at every
    swept rate (the sweep says nothing about the ratio there). A ratio where streaming
    met it at every rate and the baseline did not is a lower bound."""
    from alto.testing import throughput_at

    rows: list[list[float | None]] = []
    for _claims, run in sorted(curves.items()):
        row: list[float | None] = []
        for target in targets:
            s, s_how = throughput_at(run["streaming"]["rates"], run["streaming"]["mean_s"], target)
            b, b_how = throughput_at(run["baseline"]["rates"], run["baseline"]["mean_s"], target)
            if s_how == b_how == "not reached":
                row.append(None)
            else:
                row.append(s / b if b > 0 else (math.inf if s > 0 else math.nan))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python benchmarks/paper.py [--quick] [--heatmap] [--runtime ray] --out FILE``."""
    import argparse
    import json
    import sys
    from pathlib import Path

    ap = argparse.ArgumentParser(description="The paper's fact-check experiment, streaming vs not (SIMULATED).")
    ap.add_argument("--quick", action="store_true", help="fewer requests and rates (about a minute)")
    ap.add_argument("--heatmap", action="store_true", help="also sweep claims per answer x latency target")
    ap.add_argument("--runtime", choices=["local", "ray"], default="local")
    ap.add_argument("--requests", type=int, help="requests per rate")
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")])
    ap.add_argument(
        "--langgraph",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run the LangGraph version (default: yes, but not with --quick)",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    with_langgraph = (not args.quick if args.langgraph is None else args.langgraph) and args.runtime == "local"
    # every simulated time x 0.5: a 10 ms decode step is 5 ms of real time, long enough
    # for asyncio's timers; on Ray x 1 (some 20 actor processes share the 2 cores)
    scale = 1.0 if args.runtime == "ray" else 0.5
    n = args.requests or (30 if args.quick else 60)
    rates = args.rates or list(QUICK_RATES if args.quick else RATES)
    setting = Setting()
    if args.runtime == "ray":
        _start_ray_cluster()
    result: dict[str, Any] = {
        "simulated": True,
        "runtime": args.runtime,
        "time_scale": scale,
        "slo_s": TARGET_S,
        "requests_per_rate": n,
        "setting": setting.describe(),
        "note": "SIMULATED engines (7B on A100 constants, see benchmarks.paper); latencies in simulated "
        "seconds; throughput at the target interpolated linearly between swept rates",
    }
    main_run = asyncio.run(
        experiment(setting, rates, n, time_scale=scale, runtime=args.runtime, langgraph=with_langgraph)
    )
    result.update(main_run)
    result["cpu_ms_per_request"] = cpu_per_request(setting, langgraph=with_langgraph)
    if args.heatmap:
        curves = {}
        for claims in HEATMAP_CLAIMS:
            if claims == setting.claims:  # the main run is this row
                curves[claims] = main_run
                continue
            scaled = [r * 10 / claims for r in HEATMAP_RATES]
            print(f"heat map: {claims} claims per answer", file=sys.stderr)
            curves[claims] = asyncio.run(
                experiment(setting.with_claims(claims), scaled, max(20, n // 2), time_scale=scale, runtime=args.runtime)
            )
        result["heatmap"] = {
            "claims": list(HEATMAP_CLAIMS),
            "targets_s": list(HEATMAP_TARGETS),
            "throughput_ratio": heatmap(curves, HEATMAP_TARGETS),
            "curves": {str(k): {s: v[s] for s in ("streaming", "baseline")} for k, v in curves.items()},
        }
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    _print_table(result, sys.stderr)
    return result


def _start_ray_cluster() -> None:
    """Three simulated nodes on this machine (``ray.cluster_utils.Cluster``), each with 4
    simulated GPUs: the 12 LLM replicas spread over the three."""
    import os

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 8, "resources": {"sim_gpu": 4}, "include_dashboard": False}
    )
    for _ in range(2):
        cluster.add_node(num_cpus=8, resources={"sim_gpu": 4})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)


def _print_table(result: dict[str, Any], file: Any) -> None:
    s, b, r = result["streaming"], result["baseline"], result["ratios"]
    print(
        f"throughput at {result['slo_s']:g} s: streaming {s['throughput_at_slo']:.2f}/s, baseline "
        f"{b['throughput_at_slo']:.2f}/s ({r['throughput_ratio']:.2f}x)\n"
        f"at {r['equal_load_rate']:g}/s: P99 {s['p99_s_at_equal_load']:.2f} s vs {b['p99_s_at_equal_load']:.2f} s "
        f"({r['p99_ratio_at_equal_load']:.2f}x lower); mean {s['mean_s_at_equal_load']:.2f} vs "
        f"{b['mean_s_at_equal_load']:.2f} s; first verdict {s['first_mean_s_at_equal_load']:.2f} vs "
        f"{b['first_mean_s_at_equal_load']:.2f} s\n"
        f"ideal mean {result['ideal_mean_s']:.2f} s; streaming at the lowest rate "
        f"{result['streaming_low_load_vs_ideal']:.2f}x ideal; identical outputs: {result['identical_outputs']}",
        file=file,
    )
    if "langgraph" in result:
        g, rg = result["langgraph"], result["ratios_vs_langgraph"]
        mean_g = g["mean_s"][g["rates"].index(rg["equal_load_rate"])]
        print(
            f"LangGraph: throughput at the target {g['throughput_at_slo']:.2f}/s (ALTO {rg['throughput_ratio']:.2f}x); "
            f"at {rg['equal_load_rate']:g}/s mean {mean_g:.2f} s (ALTO {rg['mean_ratio_at_equal_load']:.2f}x lower)",
            file=file,
        )
    print(f"CPU ms per request: {result.get('cpu_ms_per_request')}", file=file)


if __name__ == "__main__":
    main()
