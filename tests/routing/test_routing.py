"""Routers (runtime-independent) and aggregation-aware routing in a running pipeline."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys

import pytest

import alto
from alto.routing import LLMCall, PowerOfTwo, PromptAware, Rendezvous, RoundRobin, make_router, stable_hash


def test_round_robin_cycles():
    r = RoundRobin()
    assert [r.choose((0,), None, 3, lambda i: 0) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_power_of_two_prefers_less_loaded():
    loads = [100, 0, 100, 100]
    r = PowerOfTwo(seed=1)
    picks = collections.Counter(r.choose((0,), None, 4, loads.__getitem__) for _ in range(2000))
    # replica 1 wins every comparison it takes part in: ~ 2/4 of all draws
    assert picks[1] > 800
    assert set(picks) <= {0, 1, 2, 3}
    even = PowerOfTwo(seed=2)
    spread = collections.Counter(even.choose((0,), None, 4, lambda i: 0) for _ in range(4000))
    assert min(spread.values()) > 700


def test_rendezvous_is_consistent_across_senders_and_spreads_groups():
    senders = [Rendezvous() for _ in range(3)]
    owners = collections.Counter()
    for g in range(3000):
        picks = {s.choose((7, g), None, 3, lambda i: 0) for s in senders}
        assert len(picks) == 1
        owners[picks.pop()] += 1
    assert all(800 < owners[i] < 1200 for i in range(3)), owners


def test_rendezvous_moves_few_keys_when_a_replica_is_added():
    r = Rendezvous()
    before = [r.choose((g,), None, 4, lambda i: 0) for g in range(2000)]
    after = [r.choose((g,), None, 5, lambda i: 0) for g in range(2000)]
    moved = sum(a != b for a, b in zip(before, after, strict=True))
    assert 250 < moved < 550  # ~1/5 of the keys move, all to the new replica
    assert all(b == 4 for a, b in zip(before, after, strict=True) if a != b)


def test_stable_hash_is_process_independent():
    """Ray senders live in other processes: they must all compute the same hash."""
    assert stable_hash((1, 2, 3)) != stable_hash((1, 2, 4))
    code = "from alto.routing import stable_hash; print(stable_hash((1, 2, 3)))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outs == {str(stable_hash((1, 2, 3)))}


def _kinds(value):
    return value.split(":", 1)[0]


def test_prompt_aware_affinity_holds_under_the_threshold_and_spills_above_it():
    r = PromptAware(prompt=str, prefix_chars=8, spill=5.0, output_hint=100)
    shared = "SYSTEM: " + "few-shot examples " * 200 + "question {}"  # ~1,000 prompt tokens
    homes = r.homes(shared.format(0), 8)
    assert len(homes) == 2
    # same prefix, homes within 5 mean items of the least loaded replica: it stays home
    picks = [r.choose((k,), shared.format(k), 8, lambda i: 0) for k in range(10)]
    assert set(picks) == set(homes) and r.spilled == 0
    # keep sending the shared prefix: once both homes are more than 5 mean items (plus the
    # prefill a replica without the prefix must do) above the least loaded one, items spill
    more = [r.choose((k,), shared.format(k), 8, lambda i: 0) for k in range(10, 40)]
    away = [i for i in more if i not in homes]
    assert r.spilled == len(away) > 0
    # and spilled items gather on a replica that already holds the prefix (no new prefill)
    assert len(set(away)) < len(away)
    # every sender agrees on the homes (rendezvous on the prefix hash)
    other = PromptAware(prompt=str, prefix_chars=8)
    assert other.homes(shared.format(99), 8) == homes
    assert other.choose((99,), shared.format(99), 8, lambda i: 0) == homes[0]


def test_prompt_aware_sends_to_the_replica_with_fewer_outstanding_tokens():
    r = PromptAware(prompt=str, kind=_kinds, prefix_chars=4, spill=0.0)
    for _ in range(20):  # learn: "long" items produce 1000 tokens, "short" ones 10
        r.estimator.observe("llm:long", 1000)
        r.estimator.observe("llm:short", 10)
    a = r.choose((1,), "long: write an essay", 2, lambda i: 0)
    # short items keep going to the other replica while the long one is outstanding
    others = [r.choose((k,), f"short: {k}", 2, lambda i: 0) for k in range(2, 12)]
    assert set(others) == {1 - a}
    r.completed(a, (1,), output_tokens=1000)  # the long one finished: a is free again
    assert r.choose((20,), "short: x", 2, lambda i: 0) == a


def test_prompt_aware_estimates_converge_on_a_stationary_workload():
    import random

    rng = random.Random(3)
    r = PromptAware(prompt=str, kind=_kinds, output_hint=5)
    for k in range(3000):
        kind = rng.choice(["answer", "list"])
        i = r.choose((k,), f"{kind}: {k}", 4, lambda i: 0)
        median = {"answer": 400, "list": 60}[kind]
        r.completed(i, (k,), output_tokens=round(rng.lognormvariate(0, 0.3) * median))
    mean = {"answer": 400 * 1.046, "list": 60 * 1.046}  # lognormal mean = median * e^(s^2/2)
    for kind, want in mean.items():
        got = r.estimator.predict(f"llm:{kind}")
        assert abs(got - want) / want < 0.25, (kind, got, want)
        assert r.estimator.high(f"llm:{kind}") > got  # the 0.9 quantile lies above the mean
    assert all(not keys for keys in r._mine.values())  # nothing believed outstanding


def test_prompt_aware_starves_no_replica():
    import collections

    r = PromptAware(prompt=str, prefix_chars=1)  # one shared prefix for everything
    queued = [0, 0, 0, 0]
    counts = collections.Counter()
    done: list = []
    for k in range(400):
        i = r.choose((k,), f"x {k}", 4, queued.__getitem__)
        counts[i] += 1
        done.append((i, (k,)))
        if len(done) > 8:  # items finish in order, 8 in flight
            j, key = done.pop(0)
            r.completed(j, key, output_tokens=100)
    assert set(counts) == {0, 1, 2, 3}, counts
    assert min(counts.values()) > 30


def test_llm_stages_default_to_prompt_aware_and_learn_from_finished_items():
    """A generate() stage with 3 replicas: prompt-aware by default; each replica's
    reports of finished items (with real token counts) reach the senders' routers."""
    from alto.llm import Simulated, generate

    llm = Simulated(time_scale=0, seed=2)
    p = alto.Pipeline("llm")
    p.output(p.input().map(generate(llm, "Describe {input}", max_tokens=30), replicas=3, name="gen"))

    async def main():
        async with alto.LocalRuntime(p) as rt:
            out = await rt.map([f"topic {i}" for i in range(30)])
            routers = rt._input.routers
            return out, routers

    out, routers = asyncio.run(main())
    assert len(out) == 30
    assert routers and all(isinstance(r, PromptAware) for r in routers)
    assert sum(sum(r.estimator.observed.values()) for r in routers) == 30  # every item reported
    assert all(not keys for r in routers for keys in r._mine.values())  # none left outstanding
    observed = {k: r.estimator.predict(k) for r in routers for k in r.estimator.observed}
    assert all(0 < v <= 30 for v in observed.values())  # learnt from real output counts


def test_make_router_defaults():
    assert isinstance(make_router(None, keyed=True), Rendezvous)
    assert isinstance(make_router(None, keyed=False), PowerOfTwo)
    assert isinstance(make_router("round_robin", keyed=False), RoundRobin)
    custom = RoundRobin()
    assert make_router(custom, keyed=False) is not custom


def test_every_child_of_a_group_reaches_one_replica(runtime):
    """replicas=3 upstream and a stateful stage with replicas=3: aggregation-aware routing.

    Each replica instance stamps the children it handles, so the check works whichever
    process the replicas live in.
    """

    class PerGroup:
        def __init__(self):
            self.token = f"{os.getpid()}-{id(self)}"

        def __call__(self, item):
            return (self.token, item[1])

    async def scramble(item):
        await asyncio.sleep(0.0005 * (item[1] % 3))
        return item

    p = alto.Pipeline("p")
    kids = p.input().expand(lambda g: [(g, i) for i in range(12)], replicas=3)
    kids = kids.map(scramble, replicas=3, concurrency=2)
    tagged = kids.map(PerGroup, replicas=3, stateful=True)
    p.output(tagged.aggregate(lambda g, xs: ({t for t, _ in xs}, [i for _, i in xs]), replicas=3))
    results = alto.run(p, list(range(60)), runtime=runtime)
    assert all(indexes == list(range(12)) for _, indexes in results)
    assert all(len(tokens) == 1 for tokens, _ in results)  # one replica per group
    assert len(set().union(*(tokens for tokens, _ in results))) == 3  # groups spread over all replicas


def test_aggregate_groups_spread_over_replicas():
    make_runtime = alto.LocalRuntime  # reads per-replica counters of this process
    p = alto.Pipeline("p")
    p.output(p.input().expand(range, replicas=3).aggregate(lambda n, xs: sum(xs), replicas=3, name="agg"))

    async def main():
        async with make_runtime(p) as rt:
            out = await rt.map(range(90))
            return out, (await rt.stats())["agg"]["handled"]

    out, handled = asyncio.run(main())
    assert out == [n * (n - 1) // 2 for n in range(90)]
    assert len(handled) == 3 and min(handled) > 10, handled


@pytest.mark.parametrize("router", ["round_robin", "p2c"])
def test_stateless_routers_in_pipeline(router, runtime):
    p = alto.Pipeline("p")
    p.output(p.input().expand(range).map(lambda x: -x, replicas=3, router=router).aggregate(lambda n, xs: xs))
    assert alto.run(p, [5], runtime=runtime) == [[0, -1, -2, -3, -4]]


async def _settled_router_state(rt, runtime, stage, want, budget_s=20.0):
    """The router state of ``stage``'s first replica, once ``want(state)`` holds (on Ray,
    reports ride on acknowledgements and on idle links' polls) or the budget is spent."""
    from alto.engine._transport import router_state

    deadline = asyncio.get_running_loop().time() + budget_s
    while True:
        if runtime == "local":
            [state] = router_state(rt.replicas[stage][0].routers)
        else:
            [state] = (await rt.debug_state())["replicas"][f"{stage}[0]"]["routers"]
        if want(state) or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.05)


def test_finished_items_reach_the_senders_prompt_aware_router(make_runtime, runtime):
    """On both runtimes: an LLM stage's replicas report every finished item (with its
    output tokens) to the router of the replica that sent it -- on Ray, on the acks
    (and on polls of links that went idle)."""
    from alto.llm import Simulated, generate

    llm = Simulated(time_scale=0, seed=5)

    async def relay(x):
        return x

    p = alto.Pipeline("llm_reports")
    sent = p.input().map(relay, name="relay")
    p.output(sent.map(generate(llm, "Describe {input}", max_tokens=20), replicas=2, name="gen"))

    async def main():
        async with make_runtime(p) as rt:
            out = await rt.map([f"topic {i}" for i in range(24)])
            out += await rt.map([f"subject {i}" for i in range(24)])
            state = await _settled_router_state(rt, runtime, "relay", lambda s: s["learnt"] == 48)
            return out, state

    out, state = asyncio.run(main())
    assert len(out) == 48
    assert state["router"] == "PromptAware"
    assert state["learnt"] == 48 and state["outstanding"] == 0  # every item reported, once


class _Tokens:
    """An LLM stage (marked with LLMCall) that fails on "bad:0" and is slow otherwise,
    so the other items of a failing request are still queued when it ends."""

    __alto_llm__ = LLMCall(prompt=str)

    async def __call__(self, x):
        from alto.engine import count_tokens

        if x == "bad:0":
            raise ValueError("boom")
        await asyncio.sleep(0.01)
        count_tokens(3)
        return x


def test_items_of_ended_requests_are_reported_to_the_router(make_runtime, runtime):
    """LLM items skipped because their request failed are reported too (with no token
    count), so a sender stops counting them as outstanding: its estimates do not drift
    up and its bookkeeping does not grow, on both runtimes."""
    p = alto.Pipeline("skips")
    parts = p.input().expand(lambda name: [f"{name}:{i}" for i in range(20)], name="split")
    p.output(parts.map(_Tokens, replicas=2, concurrency=1, name="gen").aggregate(lambda n, xs: len(xs)))

    async def main():
        async with make_runtime(p) as rt:
            with pytest.raises(alto.StageError):
                await rt.submit("bad")
            after_failure = await _settled_router_state(rt, runtime, "split", lambda s: s["outstanding"] == 0)
            rounds = [await rt.map([f"good{k}"]) for k in range(3)]
            state = await _settled_router_state(rt, runtime, "split", lambda s: s["outstanding"] == 0)
            return after_failure, rounds, state

    after_failure, rounds, state = asyncio.run(main())
    assert rounds == [[20]] * 3
    assert state["router"] == "PromptAware"
    assert after_failure["outstanding"] == 0  # the failed request's skipped items were reported
    assert after_failure["learnt"] < 20  # ... as skipped: they teach the estimator nothing
    assert state["outstanding"] == 0
    assert state["learnt"] >= after_failure["learnt"] + 60  # the good items, each with its tokens


def test_a_custom_router_that_implements_completed_gets_the_reports():
    """``reports`` defaults to whether a policy overrides ``completed``: a user's router
    that learns from finished items hears of them without declaring anything else."""

    class Learning(alto.Router):
        def choose(self, key, value, n, load):
            return 0

        def completed(self, replica, key, output_tokens):
            pass

    class Plain(alto.Router):
        def choose(self, key, value, n, load):
            return 0

    assert Learning.reports and not Plain.reports and PromptAware.reports and not RoundRobin.reports


def test_something_that_is_not_a_router_is_refused_when_the_pipeline_is_built():
    class Lookalike:  # a choose method and a keyed flag, but none of Router's other hooks
        keyed = False

        def choose(self, key, value, n, load):
            return 0

    p = alto.Pipeline("bad_router")
    with pytest.raises(alto.PipelineError, match="router= must be one of"):
        p.input().map(abs, replicas=2, router=Lookalike())


def test_every_senders_router_names_the_stage_it_routes_to():
    from alto.engine import build_emit

    p = alto.Pipeline("named")
    _ = p.output(p.input().map(abs, replicas=2, name="twice").map(str, replicas=3, router="round_robin", name="thrice"))

    class Nowhere:  # a Transport that only wires
        def send_to(self, stage, replica):
            return lambda msg: None

        def load(self, stage, replica):
            return 0.0

        def sink(self, output):
            return None

        def watch(self, stage, report):
            pass

    from alto.engine._transport import router_state

    state = router_state(build_emit(p, "twice", Nowhere()).routers)
    assert state == [{"router": "RoundRobin", "stage": "thrice"}]
