"""The paper's experiment: streaming against the stage-barrier baseline, SIMULATED engines.

The pipeline, its setting (each constant with its source), the engine pools and the
ideal latency are in :mod:`benchmarks.paper_model`; the stage-barrier baseline (FacTool's
own execution order) in :mod:`benchmarks.paper_barrier`; LangGraph's version in
:mod:`benchmarks.langgraph_apps`. This module runs them under open-loop load:

    python benchmarks/paper.py --quick --out /tmp/paper.json      # < 3 min
    python benchmarks/paper.py --out docs/paper.json               # the full sweep, run alone

Systems, on the same engines (fresh per run), the same router and the same requests at
the same arrival times, their reports checked identical:

* ``streaming``: ALTO, each partial output on at once;
* ``baseline``: ALTO with ``streaming=False`` (an expand holds its children until its
  generation ends; everything after it still runs per item);
* ``barrier``: FacTool's stage barriers per request (every claim before any query,
  every query before any search, every search before any verdict);
* ``langgraph``: LangGraph's map-reduce graph (full run only, or ``--langgraph``).

Statistics: each run is time-bounded (warm-up, measured window, cool-down: requests
arriving in the measured window count, and arrivals go on through the cool-down so they
finish under the same load); several arrival seeds; systems in a shuffled order per rate
and seed; 95% bootstrap intervals on means, tails and throughput at the target; the
tail is the P99 only where a rate has at least 1,000 measured requests, otherwise the
P90 (at least 100) or the maximum, and says which.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python benchmarks/paper.py): import the package beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from alto.testing import alto_system, throughput_at
from alto.testing._load import arrivals, drive
from benchmarks.paper_barrier import barrier_factory
from benchmarks.paper_model import (
    PaperEngine,
    Pools,
    Setting,
    build_pipeline,
    ideal_latency,
    make_pools,
    questions,
)
from benchmarks.stats import mean_ci, paired_ratio_ci, ratio_ci, resolved, tail, throughput_ci

__all__ = [
    "PaperEngine",
    "Setting",
    "Window",
    "build_pipeline",
    "experiment",
    "factory",
    "ideal_latency",
    "main",
    "questions",
]

TARGET_S = 4.0
SYSTEMS = ("streaming", "baseline", "barrier", "langgraph")
PLACEMENTS = ("shared", "dedicated")
# requests per simulated second: from light load to past every system's saturation
RATES = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
HEATMAP_RATES = (0.5, 1.0, 2.0, 4.0, 6.0)  # scaled by 3 / sentences: about the same tokens per second
QUICK_RATES = (1.0, 4.0)
SEEDS = (1, 2, 3)
HEATMAP_SENTENCES = (1, 3, 6, 10)
HEATMAP_TARGETS = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


@dataclass(frozen=True)
class Window:
    """A time-bounded run, in simulated seconds: requests arriving in
    ``[warmup, warmup + measure)`` are measured; arrivals continue ``cooldown`` longer."""

    warmup: float = 15.0
    measure: float = 40.0
    cooldown: float = 5.0

    @property
    def total(self) -> float:
        return self.warmup + self.measure + self.cooldown


QUICK_WINDOW = Window(warmup=5.0, measure=15.0, cooldown=2.0)


# -- systems -----------------------------------------------------------------------------


def factory(name: str, setting: Setting, placement: str, time_scale: float) -> Callable[[], Any]:
    """A fresh system on fresh engines: the context yields ``(system, pools)``."""

    def pools() -> Pools:
        return make_pools(setting, placement, time_scale)

    if name == "barrier":
        return barrier_factory(setting, pools)
    if name == "langgraph":
        from benchmarks.langgraph_apps import langgraph_factory

        return langgraph_factory(setting, pools)
    if name not in ("streaming", "baseline"):
        raise ValueError(f"unknown system {name!r}; choose from {SYSTEMS}")

    @asynccontextmanager
    async def start() -> AsyncIterator[Any]:
        import alto

        p = pools()
        async with alto.LocalRuntime(
            build_pipeline(setting, p), streaming=name == "streaming", max_requests=100_000
        ) as rt:
            yield alto_system(rt), p

    return start


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One system at one rate and seed: per measured request (by index), its latency and
    time to first output (simulated seconds), failures, the engines' clock, the reports."""

    system: str
    rate: float
    seed: int
    latency: dict[int, float] = field(default_factory=dict)
    first: dict[int, float] = field(default_factory=dict)
    errors: int = 0
    clock: dict[str, float] = field(default_factory=dict)
    finals: dict[int, Any] = field(default_factory=dict)
    wall_s: float = 0.0


async def run_once(
    name: str, setting: Setting, placement: str, rate: float, seed: int, window: Window, time_scale: float
) -> Run:
    draws = arrivals(100_000, 1.0, seed)
    n = sum(1 for t in draws if t / rate <= window.total)
    due = [t / rate for t in draws[:n]]
    inputs = questions(n, seed)
    run = Run(name, rate, seed)
    t0 = time.perf_counter()
    async with factory(name, setting, placement, time_scale)() as (system, pools):
        samples = await drive(system, inputs, rate / time_scale, seed=seed, warmup=0.0, results=run.finals)
        run.clock = pools.clock()
    run.wall_s = time.perf_counter() - t0
    for s in samples:
        if not window.warmup <= due[s.index] < window.warmup + window.measure:
            continue
        if s.error is not None:
            run.errors += 1
            continue
        run.latency[s.index] = s.latency_s / time_scale
        run.first[s.index] = s.first_s / time_scale
    return run


async def unloaded(name: str, setting: Setting, placement: str, requests: int, time_scale: float) -> list[float]:
    """Latencies of ``requests`` requests sent one at a time (nothing else in flight)."""
    out = []
    async with factory(name, setting, placement, time_scale)() as (system, _):
        for q in questions(requests, seed=99):
            t0 = time.perf_counter()
            async for _ in system(q):
                pass
            out.append((time.perf_counter() - t0) / time_scale)
    return out


def _pooled(runs: Sequence[Run], what: str = "latency") -> dict[tuple[int, int], float]:
    return {(r.seed, i): v for r in runs for i, v in getattr(r, what).items()}


def summarize_system(
    runs_by_rate: dict[float, list[Run]], target: float, unloaded_s: Sequence[float]
) -> dict[str, Any]:
    """One system's JSON: per rate, pooled over seeds, with intervals."""
    rates = sorted(runs_by_rate)
    lat = [_pooled(runs_by_rate[r]) for r in rates]
    first = [_pooled(runs_by_rate[r], "first") for r in rates]
    means = [statistics.fmean(s.values()) if s else math.nan for s in lat]
    at, how = throughput_at(rates, means, target)
    tails = [tail(list(s.values())) for s in lat]
    clocks = [run.clock for r in rates for run in runs_by_rate[r]]
    return {
        "rates": rates,
        "n": [len(s) for s in lat],
        "errors": [sum(run.errors for run in runs_by_rate[r]) for r in rates],
        "mean_s": means,
        "mean_s_ci": [mean_ci(list(s.values())) for s in lat],
        "tail_s": [t["value"] for t in tails],
        "tail_s_ci": [t["ci"] for t in tails],
        "tail_label": [t["label"] for t in tails],
        "p99_s": [t["value"] if t["label"] == "p99" else None for t in tails],
        "first_mean_s": [statistics.fmean(s.values()) if s else math.nan for s in first],
        "throughput_at_slo": at,
        "throughput_at_slo_how": how,
        "throughput_at_slo_ci": throughput_ci(rates, lat, target),
        "throughput_at_slo_resolved": resolved(rates, lat, target),
        "unloaded_s": statistics.fmean(unloaded_s) if unloaded_s else math.nan,
        "unloaded_s_ci": mean_ci(unloaded_s),
        "clock_late_steps": sum(c.get("late_steps", 0) for c in clocks),
        "clock_steps": sum(c.get("steps", 0) for c in clocks),
        "clock_max_lag_s": max((c.get("max_lag_s", 0.0) for c in clocks), default=0.0),
    }


# -- the experiment ------------------------------------------------------------------------


async def experiment(
    setting: Setting,
    placement: str,
    systems: Sequence[str],
    rates: Sequence[float],
    seeds: Sequence[int],
    window: Window,
    *,
    time_scale: float,
    unloaded_requests: int,
    target: float = TARGET_S,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every system at every rate and seed, one run at a time, in a shuffled order per
    (rate, seed); the JSON of one placement."""
    runs: dict[str, dict[float, list[Run]]] = {s: {r: [] for r in rates} for s in systems}
    mismatches: list[str] = []
    order_log = []
    for rate in rates:
        for seed in seeds:
            order = list(systems)
            random.Random(f"{placement}:{rate}:{seed}").shuffle(order)
            order_log.append(order)
            finals = {}
            for name in order:
                run = await run_once(name, setting, placement, rate, seed, window, time_scale)
                runs[name][rate].append(run)
                finals[name] = run.finals
                if progress:
                    late = run.clock.get("late_steps", 0) / max(1, run.clock.get("steps", 1))
                    progress(
                        f"{placement:>9} {name:>9} {rate:g}/s seed {seed}: n={len(run.latency)} "
                        f"mean {statistics.fmean(run.latency.values()) if run.latency else math.nan:.2f} s, "
                        f"errors {run.errors}, late steps {late:.1%}, {run.wall_s:.0f} s"
                    )
            mismatches += _mismatches(finals, rate, seed)
    unloaded_s = {s: await unloaded(s, setting, placement, unloaded_requests, time_scale) for s in systems}
    out: dict[str, Any] = {
        name: summarize_system(runs[name], target, unloaded_s[name]) for name in systems if runs[name][rates[0]]
    }
    ideal = [ideal_latency(setting, q) for seed in seeds for q in questions(50, seed)]
    out["streaming"]["ideal_mean_s"] = statistics.fmean(ideal)
    out["ideal_mean_s"] = statistics.fmean(ideal)
    # the ideal of the very requests the unloaded figures are measured on
    out["ideal_unloaded_s"] = statistics.fmean(ideal_latency(setting, q) for q in questions(unloaded_requests, 99))
    out["identical_outputs"] = not mismatches
    out["mismatches"] = mismatches[:10]
    out["system_order"] = order_log
    for base in (s for s in ("barrier", "baseline", "langgraph") if s in out):
        out[f"streaming_vs_{base}"] = _ratios(runs["streaming"], runs[base], out["streaming"], out[base], target)
    for name in systems:
        if name in out:
            i = out.get("streaming_vs_barrier", {}).get("equal_load_index", 0)
            out[name]["p99_s_at_equal_load"] = out[name]["p99_s"][i]
            out[name]["tail_s_at_equal_load"] = out[name]["tail_s"][i]
            out[name]["tail_s_at_equal_load_ci"] = out[name]["tail_s_ci"][i]
            out[name]["tail_label_at_equal_load"] = out[name]["tail_label"][i]
            out[name]["mean_s_at_equal_load"] = out[name]["mean_s"][i]
            out[name]["mean_s_at_equal_load_ci"] = out[name]["mean_s_ci"][i]
    return out


def _ratios(
    ours_runs: dict[float, list[Run]],
    base_runs: dict[float, list[Run]],
    ours: dict[str, Any],
    base: dict[str, Any],
    target: float,
) -> dict[str, Any]:
    """Streaming against one baseline: throughput ratio at the target with its paired
    interval; the tail and mean ratios at *equal load* (the highest rate at which the
    baseline's mean meets the target; the lowest rate, said so, if it never does)."""
    rates = ours["rates"]
    lat_o = [_pooled(ours_runs[r]) for r in rates]
    lat_b = [_pooled(base_runs[r]) for r in rates]
    ok = [i for i, m in enumerate(base["mean_s"]) if m <= target]
    i = max(ok) if ok else 0
    t_o, t_b = ours["throughput_at_slo"], base["throughput_at_slo"]
    return {
        "throughput_ratio": t_o / t_b if t_b > 0 else (math.inf if t_o > 0 else math.nan),
        "throughput_ratio_ci": ratio_ci(rates, lat_o, lat_b, target),
        "equal_load_rate": rates[i],
        "equal_load_index": i,
        "equal_load_how": "highest rate where the baseline meets the target" if ok else "lowest rate (never met)",
        "tail_label": f"{base['tail_label'][i]} / {ours['tail_label'][i]}",
        "tail_ratio_at_equal_load": base["tail_s"][i] / ours["tail_s"][i],
        "tail_ratio_at_equal_load_ci": paired_ratio_ci(lat_b[i], lat_o[i], base["tail_label"][i]),
        "mean_ratio_at_equal_load": base["mean_s"][i] / ours["mean_s"][i],
        "mean_ratio_at_equal_load_ci": paired_ratio_ci(lat_b[i], lat_o[i], "mean"),
        "tail_ratio_by_rate": [b / o for b, o in zip(base["tail_s"], ours["tail_s"], strict=True)],
    }


def _mismatches(finals: dict[str, dict[int, Any]], rate: float, seed: int) -> list[str]:
    import json

    names = list(finals)
    found = []
    for name in names[1:]:
        for i, value in finals[names[0]].items():
            other = finals[name].get(i)
            if other is not None and json.dumps(other, sort_keys=True) != json.dumps(value, sort_keys=True):
                found.append(f"request {i} (seed {seed}) at {rate:g}/s: {names[0]} and {name} differ")
    return found


def heatmap(
    setting: Setting,
    placement: str,
    window: Window,
    time_scale: float,
    main_run: dict[str, Any],
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    """Throughput ratio streaming / barrier per answer length (rows) and mean-latency
    target (columns), one seed. A cell is ``None`` (unresolved) where either system's
    throughput at that target rests on a mean within one standard error of the target,
    or where neither system reaches it inside the swept rates."""
    rows, curves = [], {}
    for sentences in HEATMAP_SENTENCES:
        s = setting.with_sentences(sentences)
        # fewer requests per second for longer answers, over a longer window: about the
        # same number of measured requests per cell
        stretch = sentences / setting.sentences
        scaled = [r / stretch for r in HEATMAP_RATES]
        w = Window(window.warmup * stretch, window.measure * stretch, window.cooldown * stretch)
        if sentences == setting.sentences:
            runs = main_run
        else:
            if progress:
                progress(f"heat map: {sentences} sentences per answer")
            runs = asyncio.run(
                experiment(
                    s, placement, ("streaming", "barrier"), scaled, SEEDS[:1], w,
                    time_scale=time_scale, unloaded_requests=2, progress=progress,
                )
            )  # fmt: skip
        curves[str(sentences)] = {k: runs[k] for k in ("streaming", "barrier")}
        row: list[float | None] = []
        for target in HEATMAP_TARGETS:
            cell: float | None = None
            a = runs["streaming"]
            b = runs["barrier"]
            ta, how_a = throughput_at(a["rates"], a["mean_s"], target)
            tb, how_b = throughput_at(b["rates"], b["mean_s"], target)
            clear = all(_clear(x, target) for x in (a, b))
            if clear and not (how_a == how_b == "not reached"):
                cell = ta / tb if tb > 0 else (math.inf if ta > 0 else math.nan)
            row.append(cell)
        rows.append(row)
    return {
        "sentences": list(HEATMAP_SENTENCES),
        "targets_s": list(HEATMAP_TARGETS),
        "throughput_ratio": rows,
        "curves": curves,
        "note": "one seed; None: unresolved (a mean within one standard error of the target decides the cell, "
        "or both systems meet the target at every swept rate)",
    }


def _clear(curve: dict[str, Any], target: float) -> bool:
    """No mean of the curve lies within one standard error of ``target`` (the standard
    error taken from the 95% interval's half-width / 1.96)."""
    for m, (lo, hi) in zip(curve["mean_s"], curve["mean_s_ci"], strict=True):
        if math.isnan(lo) or abs(m - target) <= (hi - lo) / (2 * 1.96):
            return False
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python benchmarks/paper.py [--quick] [--heatmap] [--placement P] --out FILE``."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description="The paper's fact-check experiment (SIMULATED engines).")
    ap.add_argument("--quick", action="store_true", help="2 rates, 1 seed, short windows (under 3 minutes)")
    ap.add_argument("--heatmap", action="store_true", help="also sweep answer length x latency target")
    ap.add_argument("--placement", choices=[*PLACEMENTS, "both"], default=None)
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")])
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--measure", type=float, help="measured window per run (simulated seconds)")
    ap.add_argument("--langgraph", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--unloaded", type=int, help="requests sent one at a time per system (default 3 quick, 10 full)")
    ap.add_argument("--time-scale", type=float, default=0.25, help="real seconds per simulated second (default 0.25)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    quick = args.quick
    window = QUICK_WINDOW if quick else Window()
    if args.measure:
        window = Window(window.warmup, args.measure, window.cooldown)
    with_langgraph = (not quick) if args.langgraph is None else args.langgraph
    systems = [s for s in SYSTEMS if s != "langgraph" or with_langgraph]
    chosen = args.placement or ("shared" if quick else "both")
    placements = list(PLACEMENTS) if chosen == "both" else [chosen]
    rates = args.rates or list(QUICK_RATES if quick else RATES)
    seeds = args.seeds or list(SEEDS[:1] if quick else SEEDS)
    # every simulated time x 0.25: a 10 ms decode step is 2.5 ms of real time, long
    # enough for asyncio's timers; the engines' late steps are recorded per run, so a
    # clock that did not hold shows in the JSON
    scale = args.time_scale
    setting = Setting()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result: dict[str, Any] = {
        "simulated": True,
        "time_scale": scale,
        "slo_s": TARGET_S,
        "setting": {**setting.describe(), "placement": placements},
        "window_s": {"warmup": window.warmup, "measure": window.measure, "cooldown": window.cooldown},
        "seeds": seeds,
        "systems": systems,
        "note": "SIMULATED engines (7B on A100-80GB constants, sources in benchmarks/paper_model.py); latencies in "
        "simulated seconds; throughput at the target interpolated linearly between swept rates; intervals are "
        "95% bootstrap",
    }
    for placement in placements:
        progress(f"placement {placement}: {len(systems)} systems x {len(rates)} rates x {len(seeds)} seeds")
        res = asyncio.run(
            experiment(
                setting, placement, systems, rates, seeds, window,
                time_scale=scale, unloaded_requests=args.unloaded or (3 if quick else 10), progress=progress,
            )
        )  # fmt: skip
        if args.heatmap and placement == "shared":
            res["heatmap"] = heatmap(setting, placement, window, scale, res, progress)
        result[placement] = res
    # the top-level per-system figures are the first placement's (shared unless chosen)
    first = result[placements[0]]
    for name in systems:
        result[name] = first[name]
    result["ideal_mean_s"] = first["ideal_mean_s"]
    result["identical_outputs"] = all(result[p]["identical_outputs"] for p in placements)
    text = json.dumps(result, indent=2, default=_json_default)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    _print_table(result, placements, sys.stderr)
    return result


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return str(x)


def _print_table(result: dict[str, Any], placements: Sequence[str], file: Any) -> None:
    def ci(pair: Sequence[float]) -> str:
        return f"[{pair[0]:.2f}, {pair[1]:.2f}]"

    for placement in placements:
        res = result[placement]
        print(f"\n{placement} placement (SIMULATED), target {result['slo_s']:g} s mean:", file=file)
        for name in result["systems"]:
            s = res[name]
            print(
                f"  {name:>9}: throughput at target {s['throughput_at_slo']:.2f}/s {ci(s['throughput_at_slo_ci'])}"
                f"{'' if s['throughput_at_slo_resolved'] else ' (unresolved)'}; unloaded {s['unloaded_s']:.2f} s; "
                f"at {res['streaming_vs_barrier']['equal_load_rate']:g}/s mean {s['mean_s_at_equal_load']:.2f} s, "
                f"{s['tail_label_at_equal_load']} {s['tail_s_at_equal_load']:.2f} s; late steps "
                f"{s['clock_late_steps'] / max(1, s['clock_steps']):.1%}",
                file=file,
            )
        for key in (k for k in res if k.startswith("streaming_vs_")):
            r = res[key]
            print(
                f"  {key}: throughput {r['throughput_ratio']:.2f}x {ci(r['throughput_ratio_ci'])}; at "
                f"{r['equal_load_rate']:g}/s ({r['equal_load_how']}) {r['tail_label']} "
                f"{r['tail_ratio_at_equal_load']:.2f}x {ci(r['tail_ratio_at_equal_load_ci'])} lower, mean "
                f"{r['mean_ratio_at_equal_load']:.2f}x {ci(r['mean_ratio_at_equal_load_ci'])}",
                file=file,
            )
        print(f"  ideal mean {res['ideal_mean_s']:.2f} s; identical outputs: {res['identical_outputs']}", file=file)


if __name__ == "__main__":
    main()
