"""Routers (runtime-independent) and aggregation-aware routing in a running pipeline."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys

import pytest

import alto
from alto.routing import PowerOfTwo, PromptAware, Rendezvous, RoundRobin, make_router, stable_hash


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


def test_prompt_aware_balances_tokens_and_keeps_prefix_affinity():
    r = PromptAware(slack=1e9)
    queued = [0, 0]  # what each replica reports: nothing completes until we say so

    def send(key, prompt):
        i = r.choose(key, prompt, 2, queued.__getitem__)
        queued[i] += 1
        return i

    long_prompt, short = "x" * 4000, "y"
    first = send((0,), long_prompt)
    # the long prompt's replica is busier in tokens: short prompts go elsewhere
    assert send((1,), short) != first
    assert send((2,), short) != first
    # same prefix returns to the same replica while within slack
    assert send((3,), long_prompt + " more") == first
    r.completed(first, long_prompt, output_tokens=10)
    assert r.output_estimate < 128


def test_prompt_aware_learns_when_work_completes():
    r = PromptAware(slack=0)
    queued = [0, 0]
    for k in range(3):  # three long prompts pile up on one replica
        i = r.choose((k,), "z" * 4000 + str(k), 2, queued.__getitem__)
        queued[i] += 1
    busy = max(range(2), key=queued.__getitem__)
    assert r.choose((9,), "q", 2, queued.__getitem__) != busy
    queued[busy] = 0  # its load report says it finished everything
    assert r.choose((10,), "w", 2, lambda i: 0 if i == busy else 5) == busy


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
            return out, rt.stats()["agg"]["handled"]

    out, handled = asyncio.run(main())
    assert out == [n * (n - 1) // 2 for n in range(90)]
    assert len(handled) == 3 and min(handled) > 10, handled


@pytest.mark.parametrize("router", ["round_robin", "p2c"])
def test_stateless_routers_in_pipeline(router, runtime):
    p = alto.Pipeline("p")
    p.output(p.input().expand(range).map(lambda x: -x, replicas=3, router=router).aggregate(lambda n, xs: xs))
    assert alto.run(p, [5], runtime=runtime) == [[0, -1, -2, -3, -4]]
