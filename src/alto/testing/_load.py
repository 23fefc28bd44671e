"""Open-loop load: Poisson arrivals, per-request latency, summaries, throughput at a target.

A *system* is anything that takes one input and yields its partial outputs as they
happen, the final result last -- ``rt.stream`` of an ALTO runtime, a LangGraph graph's
``astream``, a hand-written coroutine. The driver sends inputs at Poisson arrival times
(open loop: arrivals never wait for answers), and records for every request its latency
(arrival to final result) and its time to first partial output.

**Common random numbers**: the arrival gaps are one fixed sequence of exponential draws
scaled by ``1 / rate``, so every rate and every system sees the same requests in the
same order, and only the spacing differs. Comparisons between systems are then paired,
not two independent samples.

>>> import asyncio
>>> async def echo(x):          # a system: yields partial outputs, the result last
...     yield x
>>> samples = asyncio.run(drive(echo, list(range(20)), rate=2000.0, warmup=0.1))
>>> len(samples), all(s.latency_s >= s.first_s >= 0 for s in samples)
(18, True)
>>> arrivals(3, 1.0, seed=1) == [t * 4 for t in arrivals(3, 4.0, seed=1)]
True
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Sample", "Summary", "System", "arrivals", "drive", "summarize", "throughput_at"]

System = Callable[[Any], AsyncIterator[Any]]


@dataclass(frozen=True, slots=True)
class Sample:
    """One request's outcome: seconds from its arrival to its first partial output and
    to its final result (``error``: why it failed, if it did)."""

    index: int
    first_s: float
    latency_s: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """Latency statistics of one run at one rate (seconds; failed requests excluded)."""

    rate: float
    requests: int
    errors: int
    mean_s: float
    p50_s: float
    p99_s: float
    first_mean_s: float
    first_p99_s: float

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__slots__}


def arrivals(n: int, rate: float, seed: int = 0) -> list[float]:
    """Arrival times (seconds from the start) of ``n`` Poisson arrivals at ``rate`` per
    second, from the same draws at every rate (common random numbers)."""
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(1.0)
        out.append(t / rate)
    return out


async def drive(
    system: System,
    inputs: Sequence[Any],
    rate: float,
    *,
    seed: int = 0,
    warmup: float = 0.1,
    max_duration_s: float | None = None,
    on_done: Callable[[Sample], None] | None = None,
    results: dict[int, Any] | None = None,
) -> list[Sample]:
    """Send ``inputs`` to ``system`` at Poisson times (``rate`` per real second) and
    measure each request; the first ``warmup`` fraction is run but not returned.

    ``max_duration_s`` bounds the run: inputs due after it are not sent. A request
    that raises is recorded with its error, never re-raised: one failure must not stop
    a load test. ``on_done`` is called as each request ends (progress bars);
    ``results``, if given, receives each request's last output by input index (to
    check that two systems computed the same thing).
    """
    due = arrivals(len(inputs), rate, seed)
    if max_duration_s is not None:
        due = [t for t in due if t <= max_duration_s]
    samples: list[Sample | None] = [None] * len(due)
    start = time.perf_counter()

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, start + due[i] - time.perf_counter()))
        t0 = time.perf_counter()
        first = None
        error = None
        try:
            async for out in system(inputs[i]):
                if first is None:
                    first = time.perf_counter() - t0
                if results is not None:
                    results[i] = out
        except Exception as exc:  # recorded: a load test reports failures, it does not stop
            error = f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - t0
        sample = Sample(i, latency if first is None else first, latency, error)
        samples[i] = sample
        if on_done is not None:
            on_done(sample)

    async with asyncio.TaskGroup() as tg:
        for i in range(len(due)):
            tg.create_task(one(i))
    skip = int(len(due) * warmup)
    return [s for s in samples[skip:] if s is not None]


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summarize(samples: Sequence[Sample], rate: float, time_scale: float = 1.0) -> Summary:
    """Mean, P50 and P99 of latency and of time to first output, divided by
    ``time_scale`` (a run with every time scaled down reports unscaled seconds)."""
    ok = [s for s in samples if s.error is None]
    lat = sorted(s.latency_s / time_scale for s in ok)
    first = sorted(s.first_s / time_scale for s in ok)
    return Summary(
        rate=rate,
        requests=len(samples),
        errors=len(samples) - len(ok),
        mean_s=statistics.fmean(lat) if lat else math.nan,
        p50_s=_quantile(lat, 0.5),
        p99_s=_quantile(lat, 0.99),
        first_mean_s=statistics.fmean(first) if first else math.nan,
        first_p99_s=_quantile(first, 0.99),
    )


def throughput_at(rates: Sequence[float], values: Sequence[float], target: float) -> tuple[float, str]:
    """The largest rate whose ``values`` (mean or P99 latency, one per rate, rates
    ascending) stay <= ``target``, interpolated linearly between the two swept rates
    around the crossing; with how it was found (``"interpolated"``, ``"not reached"``:
    every rate met it, so the figure is a lower bound, or ``"none"``: no rate did).

    >>> throughput_at([1, 2, 3], [1.0, 3.0, 5.0], 4.0)
    (2.5, 'interpolated')
    >>> throughput_at([1, 2], [1.0, 2.0], 4.0)
    (2, 'not reached')
    >>> throughput_at([1, 2], [5.0, 6.0], 4.0)
    (0.0, 'none')
    """
    best, how = 0.0, "none"
    for i, (r, v) in enumerate(zip(rates, values, strict=True)):
        if not v <= target:  # also NaN: a rate where every request failed
            break
        best, how = r, "not reached"
        if i + 1 < len(rates):
            r2, v2 = rates[i + 1], values[i + 1]
            if not v2 <= target:
                best = r + (r2 - r) * (target - v) / (v2 - v) if math.isfinite(v2) else r
                how = "interpolated"
                break
    return best, how
