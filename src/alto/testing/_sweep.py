"""Sweep several systems over a list of rates, with a progress bar, and compare them.

A *system factory* is an async context manager factory: entering it starts a fresh
system (so no run inherits another's queues or caches), and it yields a
:data:`~alto.testing.System`. Every system gets the same inputs at the same arrival
times (common random numbers), and the final outputs of every request are compared
across systems: a benchmark must never compare a broken system with a working one.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from alto.testing._load import Summary, System, drive, summarize, throughput_at

__all__ = ["alto_system", "compare", "cpu_ms_per_request", "curve", "runtime_factory", "sweep"]

Factory = Callable[[], AbstractAsyncContextManager[System]]


def alto_system(rt: Any) -> System:
    """An ALTO runtime as a load-generator system: yields each partial output's value."""

    async def system(x: Any) -> AsyncIterator[Any]:
        async for ev in rt.stream(x):
            yield ev.value

    return system


def runtime_factory(
    build: Callable[[], Any], *, streaming: bool = True, runtime: str = "local", settle_s: float = 0.0, **options: Any
) -> Factory:
    """A factory of fresh ALTO runtimes over ``build()`` (a new pipeline, so new engines,
    each time), as systems; ``settle_s``: wait after starting before measuring (Ray's
    actor processes are still starting up when the runtime is ready)."""

    @asynccontextmanager
    async def start() -> AsyncIterator[System]:
        import alto

        opts: dict[str, Any] = {"max_requests": 100_000, **options}
        if runtime == "ray":
            from alto.runtime.ray._runtime import RayRuntime

            rt: Any = RayRuntime(build(), streaming=streaming, **opts)
        else:
            rt = alto.LocalRuntime(build(), streaming=streaming, **opts)
        async with rt:
            if settle_s:
                await asyncio.sleep(settle_s)
            yield alto_system(rt)

    return start


async def cpu_ms_per_request(factory: Factory, inputs: Sequence[Any]) -> float:
    """CPU milliseconds per request of one system, all ``inputs`` in flight at once,
    after one warm-up request (first-call costs are not per request)."""
    async with factory() as system:

        async def one(x: Any) -> None:
            async for _ in system(x):
                pass

        await one(inputs[0])
        t0 = time.process_time()
        await asyncio.gather(*(one(x) for x in inputs))
        return (time.process_time() - t0) * 1000 / len(inputs)


def _progress(total: int, quiet: bool) -> Any:
    if quiet:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    )


async def sweep(
    factories: dict[str, Factory],
    inputs: Sequence[Any],
    rates: Sequence[float],
    *,
    time_scale: float = 1.0,
    seed: int = 0,
    warmup: float = 0.1,
    quiet: bool = False,
) -> tuple[dict[str, list[Summary]], list[str]]:
    """Run every system at every rate (rates in requests per *simulated* second; the
    real rate is ``rate / time_scale``). Returns the summaries per system and the
    mismatches: requests whose final output differed between systems."""
    out: dict[str, list[Summary]] = {name: [] for name in factories}
    mismatches: list[str] = []
    total = len(factories) * len(rates) * len(inputs)
    with _progress(total, quiet) as bar:
        task = bar.add_task("requests", total=total) if bar is not None else None
        for rate in rates:
            finals: dict[str, dict[int, Any]] = {}
            for name, factory in factories.items():
                if bar is not None:
                    bar.update(task, description=f"{name:>10} at {rate:g}/s")
                finals[name] = {}
                async with factory() as system:
                    samples = await drive(
                        system,
                        inputs,
                        rate / time_scale,
                        seed=seed,
                        warmup=warmup,
                        results=finals[name],
                        on_done=(lambda _s: bar.advance(task)) if bar is not None else None,
                    )
                out[name].append(summarize(samples, rate, time_scale))
            mismatches += _mismatches(finals, rate)
    return out, mismatches


def _mismatches(finals: dict[str, dict[int, Any]], rate: float) -> list[str]:
    names = list(finals)
    found = []
    for name in names[1:]:
        for i, value in finals[names[0]].items():
            other = finals[name].get(i)
            if other is not None and json.dumps(other, sort_keys=True) != json.dumps(value, sort_keys=True):
                found.append(f"request {i} at {rate:g}/s: {names[0]} and {name} differ")
    return found


def curve(summaries: Sequence[Summary], target_s: float) -> dict[str, Any]:
    """The JSON of one system's sweep: figures per rate and its throughput at the target
    (for the mean and for the P99; interpolated between swept rates, and said so)."""
    rates = [s.rate for s in summaries]
    mean = [s.mean_s for s in summaries]
    p99 = [s.p99_s for s in summaries]
    at_mean, how_mean = throughput_at(rates, mean, target_s)
    at_p99, how_p99 = throughput_at(rates, p99, target_s)
    return {
        "rates": rates,
        "mean_s": mean,
        "p50_s": [s.p50_s for s in summaries],
        "p99_s": p99,
        "first_mean_s": [s.first_mean_s for s in summaries],
        "first_p99_s": [s.first_p99_s for s in summaries],
        "errors": [s.errors for s in summaries],
        "throughput_at_slo": at_mean,
        "throughput_at_slo_how": how_mean,
        "throughput_at_slo_p99": at_p99,
        "throughput_at_slo_p99_how": how_p99,
    }


def compare(ours: dict[str, Any], base: dict[str, Any], target_s: float) -> dict[str, float]:
    """Ratios of two curves: throughput at the target (ours / base) and, at the highest
    rate where the base meets the target (its *equal load*), P99 and mean (base / ours)."""
    rates = base["rates"]
    ok = [i for i, m in enumerate(base["mean_s"]) if m <= target_s] or [0]
    i = max(ok)
    t_ours, t_base = ours["throughput_at_slo"], base["throughput_at_slo"]
    return {
        "throughput_ratio": (t_ours / t_base) if t_base > 0 else (math.inf if t_ours > 0 else math.nan),
        "equal_load_rate": rates[i],
        "p99_ratio_at_equal_load": base["p99_s"][i] / ours["p99_s"][i],
        "mean_ratio_at_equal_load": base["mean_s"][i] / ours["mean_s"][i],
        "first_output_ratio_at_equal_load": base["first_mean_s"][i] / ours["first_mean_s"][i],
    }
