"""The benchmark scripts' own checks: they compare like with like.

Figures are not asserted here (speed is measured by the scripts, not by tests); what is
checked is that ALTO and the hand-written baseline compute the same reports, so a
benchmark can never compare a broken pipeline with a working one.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import cpu_per_request


def test_cpu_per_request_compares_identical_reports():
    result = cpu_per_request.measure(requests=12, repeat=1)
    assert result["cpu_ms_per_request_alto"] > 0 and result["cpu_ms_per_request_handwritten"] > 0
    # the fact-check shape: several claims per request, each checked
    assert result["cpu_per_request"]["claims_per_request"] >= 2


def test_handwritten_baseline_streams_claims_before_the_answer_ends():
    """The baseline is a streaming program: a claim's check starts while later claims
    are still being generated (else the comparison would flatter ALTO)."""
    events: list[str] = []
    stages = cpu_per_request.Stages(cpu_per_request.Instant(seed=1))
    answer, verdict = stages.answer, stages.verdict

    async def traced_answer(question):
        async for claim in answer(question):
            events.append("claim")
            yield claim
            await asyncio.sleep(0)  # let started checks run, as a real engine's wait would

    async def traced_verdict(item):
        events.append("verdict")
        return await verdict(item)

    stages.answer, stages.verdict = traced_answer, traced_verdict
    report = asyncio.run(cpu_per_request.handwritten(stages, "question 0 about mail protocols"))
    assert len(report["verdicts"]) == events.count("claim") >= 2
    last_claim = len(events) - 1 - events[::-1].index("claim")
    assert events.index("verdict") < last_claim


def test_scheduling_benchmark_runs_every_policy_on_the_same_requests(tmp_path):
    """A short run of the scheduling benchmark: the JSON has every policy with a figure
    per rate, and prompt-aware routing keeps prefixes where they are cached (its
    prefix hit rate is above round robin's, which spreads 16 prefixes over 8 caches)."""
    import json

    import scheduling

    out = tmp_path / "s.json"
    result = scheduling.main(["--quick", "--requests", "60", "--rates", "8", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["simulated"] is True and result["time_scale"] == 0.05
    for policy in ("round_robin", "pow2_count", "prompt_aware"):
        d = result[policy]
        assert d["rates"] == [8.0] and len(d["mean_s"]) == len(d["p99_s"]) == 1
        assert 0 < d["mean_s"][0] <= d["p99_s"][0]
    assert result["prompt_aware"]["prefix_hit_rate"][0] > result["round_robin"]["prefix_hit_rate"][0]
    # the same requests for every policy: common random numbers
    assert scheduling.requests(60) == scheduling.requests(60)
