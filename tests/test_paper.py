"""The paper experiment compares like with like, and its baselines are what they claim.

No speed is asserted (``benchmarks/paper.py`` measures it); what is checked: the four
systems compute identical reports on both engine placements, the stage-barrier baseline
really waits at every stage, streaming really overlaps, the extractor keeps one
request's answer as context, and the statistics label what a sample can resolve.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math

import pytest

import benchmarks.paper as paper
import benchmarks.stats as stats
from alto.llm import JsonArrayItems, Sentences
from benchmarks.paper_model import (
    Setting,
    answer_prompt,
    claims_of,
    ideal_latency,
    make_pools,
    questions,
    script,
)

# Fast engines for structure tests: orderings are causal, so they hold at any speed.
SCALE = 0.02


def _collect(name: str, setting: Setting, placement: str, inputs: list[str], scale: float = SCALE):
    async def go():
        async with paper.factory(name, setting, placement, scale)() as (system, pools):
            outs = await asyncio.gather(*(_all(system, q) for q in inputs))
            return outs, pools

    return asyncio.run(go())


async def _all(system, q):
    return [e async for e in system(q)]


def _answer_sentences(setting: Setting, question: str) -> list[str]:
    return Sentences().split("".join(script(setting, answer_prompt(setting, question))))


@pytest.mark.parametrize("placement", ["shared", "dedicated"])
def test_the_four_systems_compute_identical_reports(placement):
    setting = Setting(sentences=3)
    inputs = questions(3, seed=5)
    finals = {}
    for name in paper.SYSTEMS:
        outs, _ = _collect(name, setting, placement, inputs)
        finals[name] = [o[-1] for o in outs]
        # every claim's verdict is a partial output before the report
        assert all(len(o) == len(o[-1]["claims"]) + 1 for o in outs), name
    reference = json.dumps(finals["streaming"], sort_keys=True)
    assert all(json.dumps(v, sort_keys=True) == reference for v in finals.values())
    for q, report in zip(inputs, finals["streaming"], strict=True):
        expected = [c for s in _answer_sentences(setting, q) for c in claims_of(setting, s)]
        assert [c for c, _ in report["claims"]] == expected  # every claim, in answer order
        assert all(isinstance(v, bool) for _, v in report["claims"])


def _log(name: str, setting: Setting, question: str, scale: float = SCALE):
    """One request through one system on traced engines: (outputs, every call)."""
    pools = make_pools(setting, "shared", scale, trace=True)

    async def run():
        if name == "barrier":
            from benchmarks.paper_barrier import barrier_check

            return [e async for e in barrier_check(setting, pools, question)]
        import alto
        from benchmarks.paper_model import build_pipeline

        async with alto.LocalRuntime(build_pipeline(setting, pools), streaming=name == "streaming") as rt:
            return [e.value async for e in rt.stream(question)]

    out = asyncio.run(run())
    return out, pools.log


def test_the_barrier_baseline_waits_for_every_item_of_a_stage():
    """FacTool's order: no query before the last claim exists, no search before the
    last query list, no verdict before the last search ends."""
    setting = Setting(sentences=4)
    [q] = questions(1, seed=2)
    out, log = _log("barrier", setting, q)
    by_kind = {k: [c for c in log if c.kind == k] for k in ("answer", "extractall", "queries", "search", "verify")}
    assert len(by_kind["extractall"]) == 1 and not [c for c in log if c.kind == "extract"]
    n_claims = len(out) - 1
    assert len(by_kind["queries"]) == len(by_kind["verify"]) == n_claims >= 4
    assert len(by_kind["search"]) == setting.queries * n_claims
    stages = ["answer", "extractall", "queries", "search", "verify"]
    for before, after in itertools.pairwise(stages):
        assert min(c.start for c in by_kind[after]) >= max(c.end for c in by_kind[before]), (before, after)


def test_streaming_checks_claims_while_the_answer_is_generated():
    """ALTO streaming: a claim's queries are written (and searched) before the answer
    ends; with streaming=False none is, but claims still go on one by one."""
    setting = Setting(sentences=6)
    [q] = questions(1, seed=3)
    _, log = _log("streaming", setting, q, scale=0.1)
    answer_end = next(c.end for c in log if c.kind == "answer")
    assert min(c.start for c in log if c.kind == "queries") < answer_end
    assert min(c.start for c in log if c.kind == "search") < answer_end
    _, log = _log("baseline", setting, q, scale=0.1)
    answer_end = next(c.end for c in log if c.kind == "answer")
    assert min(c.start for c in log if c.kind == "extract") >= answer_end
    # per item, not barriers: some verdict starts before the last search ends
    assert min(c.start for c in log if c.kind == "verify") < max(c.end for c in log if c.kind == "search")


def test_the_extractor_sees_its_own_requests_answer_so_far():
    """The stateful extractor (two replicas, several requests at once): every sentence's
    prompt holds exactly the sentences of *its* answer that came before it."""
    setting = Setting(sentences=4, extract_replicas=2)
    inputs = questions(4, seed=9)
    pools = make_pools(setting, "shared", SCALE, trace=True)

    async def run():
        import alto
        from benchmarks.paper_model import build_pipeline

        async with alto.LocalRuntime(build_pipeline(setting, pools)) as rt:
            return await asyncio.gather(*(rt.submit(q) for q in inputs))

    asyncio.run(run())
    answers = {q: _answer_sentences(setting, q) for q in inputs}
    calls = [c for c in pools.log if c.kind == "extract"]
    assert len(calls) == 4 * 4
    for call in calls:
        context = call.prompt.partition("\nText so far: ")[2].partition("\nSentence: ")[0]
        sentence = call.prompt.rpartition("\nSentence: ")[2]
        owners = [s for s in answers.values() if sentence in s]
        assert len(owners) == 1
        k = owners[0].index(sentence)
        assert context == " ".join(owners[0][:k])


def test_claims_stream_as_json_items_and_the_verdict_is_facttool_length():
    setting = Setting()
    [q] = questions(1)
    sentences = _answer_sentences(setting, q)
    assert len(sentences) == setting.sentences
    tokens = script(setting, f"EXTRACT x\nText so far: \nSentence: {sentences[0]}")
    assert [o["claim"] for o in JsonArrayItems().split("".join(tokens))] == claims_of(setting, sentences[0])
    verdict = script(setting, "VERIFY x\nClaim: c\nEvidence: a | b")
    assert len(verdict) == setting.verdict_tokens
    assert set(json.loads("".join(verdict))) == {"reasoning", "error", "correction", "factuality"}


def test_ideal_latency_follows_the_answer_length():
    short = ideal_latency(Setting(sentences=1), "q")
    long = ideal_latency(Setting(sentences=8), "q")
    step = 0.010 + 0.0002
    assert long - short > 7 * 14 * step * 0.9  # seven more sentences of >= 14 tokens


def test_tail_is_labelled_by_what_the_sample_resolves():
    assert stats.tail([1.0] * 50)["label"] == "max"
    t90 = stats.tail([float(i) for i in range(500)])
    assert t90["label"] == "p90" and t90["ci"][0] <= t90["value"] <= t90["ci"][1]
    t99 = stats.tail([float(i) for i in range(2000)])
    assert t99["label"] == "p99" and 1950 <= t99["value"] <= 1990


def test_throughput_interval_and_resolution():
    rates = [1.0, 2.0, 3.0]
    far = [
        {(0, i): 1.0 + 0.01 * (i % 3) for i in range(60)},
        {(0, i): 3.0 for i in range(60)},
        {(0, i): 9.0 for i in range(60)},
    ]
    assert stats.resolved(rates, far, 4.0)
    lo, hi = stats.throughput_ci(rates, far, 4.0, boot=200)
    assert lo - 1e-9 <= 2 + 1 / 6 <= hi + 1e-9  # the interpolated crossing: 2 + (4 - 3) / (9 - 3)
    near = [far[0], {(0, i): 4.0 + (0.5 if i % 2 else -0.5) for i in range(60)}, far[2]]
    assert not stats.resolved(rates, near, 4.0)  # a mean within its standard error of the target


def test_quick_run_writes_the_documented_json(tmp_path):
    out = tmp_path / "paper.json"
    result = paper.main(
        ["--quick", "--rates", "2", "--measure", "3", "--unloaded", "1", "--time-scale", "0.1", "--out", str(out)]
    )
    data = json.loads(out.read_text())
    assert data["setting"]["claim_extraction"] == "llm" and data["setting"]["verdict_tokens"] == 125
    assert data["setting"]["placement"] == ["shared"] and data["simulated"] is True
    for name in ("streaming", "baseline", "barrier"):
        for key in ("throughput_at_slo", "throughput_at_slo_ci", "p99_s_at_equal_load", "mean_s_at_equal_load"):
            assert key in data[name], (name, key)
        assert data[name]["n"][0] > 0 and math.isfinite(data[name]["unloaded_s"])
    assert "ideal_mean_s" in data["streaming"]
    assert result["identical_outputs"] is True
