"""Statistics the benchmarks share: bootstrap intervals, tails a sample can resolve,
throughput at a latency target with its interval, and whether it is resolved.

Samples are dicts keyed by request identity ``(seed, index)``, so two systems measured
on the same arrivals (common random numbers) can be resampled *paired*.

>>> tail([1.0] * 50)["label"]
'max'
>>> lo, hi = mean_ci([1.0, 2.0, 3.0, 4.0])
>>> lo <= 2.5 <= hi
True
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from alto.testing import throughput_at

__all__ = ["BOOTSTRAP", "mean_ci", "paired_ratio_ci", "ratio_ci", "resolved", "tail", "throughput_ci"]

BOOTSTRAP = 1000


def _rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def mean_ci(values: Sequence[float], boot: int = BOOTSTRAP) -> list[float]:
    """95% percentile-bootstrap interval of the mean."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return [math.nan, math.nan]
    means = a[_rng().integers(0, len(a), (boot, len(a)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def tail(values: Sequence[float], boot: int = BOOTSTRAP) -> dict[str, Any]:
    """The tail a sample can resolve: P99 (n >= 1,000), else P90 (n >= 100), else the
    maximum; with a 95% bootstrap interval (none for the maximum)."""
    a = np.sort(np.asarray(values, dtype=float))
    n = len(a)
    if n == 0:
        return {"label": "none", "value": math.nan, "ci": [math.nan, math.nan], "n": 0}
    if n < 100:
        return {"label": "max", "value": float(a[-1]), "ci": [math.nan, math.nan], "n": n}
    q = 0.99 if n >= 1000 else 0.90
    boots = np.quantile(a[_rng().integers(0, n, (boot, n))], q, axis=1)
    return {
        "label": "p99" if q == 0.99 else "p90",
        "value": float(np.quantile(a, q)),
        "ci": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "n": n,
    }


def throughput_ci(
    rates: Sequence[float], samples: Sequence[dict[tuple[int, int], float]], target: float, boot: int = BOOTSTRAP
) -> list[float]:
    """95% bootstrap interval of the throughput at the target (each rate's requests
    resampled, the mean curve interpolated as for the point estimate)."""
    rng = _rng()
    arrays = [np.asarray(list(s.values()), dtype=float) for s in samples]
    out = []
    for _ in range(boot):
        means = [float(a[rng.integers(0, len(a), len(a))].mean()) if len(a) else math.nan for a in arrays]
        out.append(throughput_at(rates, means, target)[0])
    return [float(np.percentile(out, 2.5)), float(np.percentile(out, 97.5))]


def ratio_ci(
    rates: Sequence[float],
    ours: Sequence[dict[tuple[int, int], float]],
    base: Sequence[dict[tuple[int, int], float]],
    target: float,
    boot: int = BOOTSTRAP,
) -> list[float]:
    """95% paired-bootstrap interval of the throughput ratio ``ours / base`` at the
    target: the same requests (seed, index) resampled for both systems at each rate."""
    rng = _rng()
    keys = [sorted(set(o) & set(b)) for o, b in zip(ours, base, strict=True)]
    out = []
    for _ in range(boot):
        mo, mb = [], []
        for o, b, k in zip(ours, base, keys, strict=True):
            if not k:
                mo.append(math.nan)
                mb.append(math.nan)
                continue
            pick = [k[j] for j in rng.integers(0, len(k), len(k))]
            mo.append(statistics.fmean(o[x] for x in pick))
            mb.append(statistics.fmean(b[x] for x in pick))
        t_o, t_b = throughput_at(rates, mo, target)[0], throughput_at(rates, mb, target)[0]
        out.append(t_o / t_b if t_b > 0 else (math.inf if t_o > 0 else math.nan))
    return _interval(out)


def _interval(values: Sequence[float]) -> list[float]:
    """The 2.5th and 97.5th percentiles, nearest rank (an infinite ratio stays infinite)."""
    return [float(np.percentile(values, 2.5, method="nearest")), float(np.percentile(values, 97.5, method="nearest"))]


def resolved(rates: Sequence[float], samples: Sequence[dict[tuple[int, int], float]], target: float) -> bool:
    """Whether a throughput at the target is decided by means clear of it: no rate on
    either side of the crossing has a mean within one standard error of the target."""
    for s in samples:
        v = list(s.values())
        if len(v) < 2:
            return False
        m, se = statistics.fmean(v), statistics.stdev(v) / math.sqrt(len(v))
        if abs(m - target) <= se:
            return False
    return True


def paired_ratio_ci(base: dict[Any, float], ours: dict[Any, float], stat: str) -> list[float]:
    keys = sorted(set(base) & set(ours))
    if len(keys) < 2:
        return [math.nan, math.nan]
    b = np.asarray([base[k] for k in keys])
    o = np.asarray([ours[k] for k in keys])
    idx = _rng().integers(0, len(keys), (BOOTSTRAP, len(keys)))

    def f(a: np.ndarray) -> np.ndarray:
        if stat == "mean":
            return a.mean(axis=1)
        if stat == "max":
            return a.max(axis=1)
        return np.quantile(a, 0.99 if stat == "p99" else 0.90, axis=1)

    return _interval(list(f(b[idx]) / f(o[idx])))
