"""Stage measurements: the histogram's buckets, the stats both runtimes give, and the
options that turn measuring on (off by default)."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import alto
from alto.engine import RuntimeOptions
from alto.engine._observe import BOUNDS_S, StageTimer, merge_snapshots


@given(st.floats(min_value=0, max_value=1e4, allow_nan=False))
def test_each_time_lands_in_the_one_bucket_whose_bounds_hold_it(seconds):
    t = StageTimer()
    t.observe(seconds, failed=False)
    (k,) = [i for i, n in enumerate(t.counts) if n]
    upper = BOUNDS_S[k] if k < len(BOUNDS_S) else float("inf")
    lower = BOUNDS_S[k - 1] if k > 0 else 0.0
    # microsecond resolution: a time within 1 µs of a bound may land on either side
    assert lower - 1e-6 <= seconds < upper + 1e-6


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=50), st.integers(1, 4))
def test_merging_replicas_keeps_every_count_and_the_sum(times, replicas):
    timers = [StageTimer() for _ in range(replicas)]
    for i, s in enumerate(times):
        timers[i % replicas].observe(s, failed=i % 3 == 0)
    merged = merge_snapshots([t.snapshot() for t in timers])
    assert merged["count"] == sum(merged["counts"]) == len(times)
    assert merged["errors"] == len(range(0, len(times), 3))
    assert merged["sum_s"] == pytest.approx(sum(times))


def test_measuring_options_must_be_booleans():
    with pytest.raises(ValueError, match="stage_metrics= must be True or False"):
        RuntimeOptions(stage_metrics="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tracing= must be True or False"):
        alto.LocalRuntime(_pipeline(), tracing=1)  # type: ignore[arg-type]


def _pipeline() -> alto.Pipeline:
    def half(x: int) -> int:  # blocking: timed with perf_counter (uvloop timers may fire early)
        time.sleep(0.002)
        return x // 2

    p = alto.Pipeline("measured")
    halves = p.input().expand(range, name="count").map(half, replicas=2, name="half")
    p.output(halves.filter(lambda x: x % 2 == 0, name="even").aggregate(lambda n, xs: sorted(xs), name="all"))
    return p


@pytest.mark.parametrize("measure", [False, True])
def test_stage_stats_count_items_in_and_out_on_both_runtimes(make_runtime, measure):
    async def main():
        async with make_runtime(_pipeline(), stage_metrics=measure) as rt:
            out = await rt.submit(10)
            stats = await rt.stage_stats()
            return out, stats

    out, stats = asyncio.run(main())
    assert out == [0, 0, 2, 2, 4, 4]
    assert stats["half"]["replicas"] == 2 and sum(stats["half"]["handled"]) == 10
    assert stats["even"]["failures"] == [0]
    if not measure:  # off by default: nothing timed
        assert stats["half"]["timing"] == [None, None]
        return
    half = merge_snapshots(stats["half"]["timing"])
    assert half["count"] == half["items_out"] == 10 and half["sum_s"] >= 10 * 0.002
    assert merge_snapshots(stats["count"]["timing"])["items_out"] == 10  # one expand, ten children
    assert merge_snapshots(stats["even"]["timing"])["items_out"] == 6  # the filter kept six
