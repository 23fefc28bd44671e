"""Ray-only behaviour: placement on a multi-node cluster, lost replicas and lost nodes."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

import alto
from conftest import arun

ray = pytest.importorskip("ray")
from alto.runtime.ray import RayRuntime  # noqa: E402


def node_id(node) -> str:
    return node.node_id


def wait_until_dead(*node_ids: str, timeout: float = 90) -> None:
    """Let Ray notice removed nodes before other tests schedule actors."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        if not alive & set(node_ids):
            return
        time.sleep(0.5)
    raise AssertionError(f"Ray still reports nodes {node_ids} alive after {timeout}s")


def test_replicas_land_where_their_resources_say(ray_cluster):
    p = alto.Pipeline("placed")
    a = p.input().expand(range).map(lambda x: x + 1, replicas=2, resources={"zone_a": 1}, name="in_a")
    b = a.map(lambda x: x * 2, replicas=3, resources={"zone_b": 1}, name="in_b")
    p.output(b.aggregate(lambda n, xs: sum(xs)))

    async def main():
        async with RayRuntime(p) as rt:
            return rt.placement, await rt.submit(4)

    placement, result = arun(main())
    assert result == 20
    assert set(placement["in_a"]) == {node_id(ray_cluster.named_nodes["zone_a"])}
    assert set(placement["in_b"]) == {node_id(ray_cluster.named_nodes["zone_b"])}


def test_unplaceable_stage_times_out_with_a_clear_message(ray_cluster):
    p = alto.Pipeline("nowhere")
    p.output(p.input().map(str, resources={"tpu_pod": 1}, name="needs_tpu"))

    async def main():
        async with RayRuntime(p, start_timeout_s=3):
            pass

    with pytest.raises(Exception, match=r"starting stage 'needs_tpu' did not finish within 3s.*tpu_pod"):
        arun(main())


def load_pipeline(resources=None, delay: float = 0.01) -> alto.Pipeline:
    """20 children per request through a slow map and an aggregate (state to lose)."""

    async def slow(x):
        await asyncio.sleep(delay)
        return x * x

    p = alto.Pipeline("load")
    kids = p.input().expand(lambda n: range(n, n + 20), replicas=2)
    sq = kids.map(slow, replicas=2, concurrency=4, name="square", resources=resources or {})
    p.output(sq.aggregate(lambda n, xs: (n, sum(xs), len(xs)), replicas=2, name="total"))
    return p


EXPECTED = [(n, sum(x * x for x in range(n, n + 20)), 20) for n in range(40)]


async def run_with_fault(p: alto.Pipeline, fault, **options):
    async with RayRuntime(p, timeout_s=300, **options) as rt:
        results = asyncio.ensure_future(rt.map(range(40)))
        seen = collections.Counter()

        async def watch():  # a streamed request alongside, to check exactly-once events
            async for ev in rt.stream(100):
                seen[(ev.stage, ev.path)] += 1

        watcher = asyncio.ensure_future(watch())
        await asyncio.sleep(0.4)  # mid-stream: requests are in flight
        await fault(rt)
        assert not results.done(), "the fault came too late: no request was in flight"
        try:
            out = await asyncio.wait_for(asyncio.shield(results), 240)
            await asyncio.wait_for(watcher, 20)
        except TimeoutError:
            import pprint

            pytest.fail("stalled after the fault:\n" + pprint.pformat(await rt.debug_state(), width=150))
        return out, seen, await rt.stats()


@pytest.mark.faults
@pytest.mark.parametrize(
    ("stage", "transport"),
    [("total", "tcp"), ("square", "tcp"), ("square", "ray")],
    ids=["total", "square", "ray-calls"],
)
def test_killing_a_replica_mid_stream(ray_cluster, stage, transport):
    async def kill(rt):
        ray.kill(await rt.replica(stage, 0), no_restart=True)

    results, seen, stats = arun(run_with_fault(load_pipeline(), kill, transport=transport))
    assert results == EXPECTED
    assert all(n == 1 for n in seen.values())  # each event exactly once
    assert stats["replays"] >= 1 and stats["restarts"] == {f"{stage}[0]": 1}


@pytest.mark.faults
def test_only_requests_that_reached_the_lost_replica_are_replayed(ray_cluster):
    async def slow(x):
        await asyncio.sleep(0.3)
        return -x

    p = alto.Pipeline("spread")
    p.output(p.input().map(slow, replicas=4, concurrency=4, name="work"))

    async def main():
        async with RayRuntime(p, timeout_s=120) as rt:
            results = asyncio.ensure_future(rt.map(range(40)))
            await asyncio.sleep(0.4)
            ray.kill(await rt.replica("work", 0), no_restart=True)
            return await asyncio.wait_for(results, 120), await rt.stats()

    results, stats = arun(main())
    assert results == [-x for x in range(40)]
    assert stats["restarts"] == {"work[0]": 1}
    # about a quarter of the requests went to replica 0; the rest lost nothing
    assert 1 <= stats["replayed_requests"] <= 25, stats


@pytest.mark.faults
@pytest.mark.timeout(420)  # Ray may take tens of seconds to declare a node dead
def test_removing_a_node_mid_stream(ray_cluster):
    doomed = ray_cluster.add_node(num_cpus=2, resources={"drill": 2})
    ray_cluster.wait_for_nodes()
    spare = None

    async def remove(rt):
        nonlocal spare
        assert set(rt.placement["square"]) == {node_id(doomed)}
        spare = ray_cluster.add_node(num_cpus=2, resources={"drill": 2})
        ray_cluster.wait_for_nodes()
        ray_cluster.remove_node(doomed, allow_graceful=False)

    try:
        # slower items: the requests must still be in flight after adding the spare node
        results, seen, stats = arun(run_with_fault(load_pipeline({"drill": 1}, delay=0.05), remove))
    finally:
        if spare is not None:
            ray_cluster.remove_node(spare)
        wait_until_dead(*(node_id(n) for n in (doomed, spare) if n is not None))
    assert results == EXPECTED
    assert all(n == 1 for n in seen.values())
    assert {"square[0]", "square[1]"} <= set(stats["restarts"])  # and whatever else lived there


@pytest.mark.faults
def test_a_stage_that_keeps_failing_gives_stage_error(ray_cluster):
    def always(x):
        raise ConnectionError("backend down")

    p = alto.Pipeline("broken")
    p.output(p.input().map(always, retries=2))
    out = alto.run(p, [1, 2], runtime="ray", return_exceptions=True)
    assert all(isinstance(e, alto.StageError) and isinstance(e.__cause__, ConnectionError) for e in out)


def test_replicas_forget_finished_requests_in_bounded_memory(ray_cluster):
    p = alto.Pipeline("many")
    p.output(p.input().map(str, name="s"))

    async def main():
        async with RayRuntime(p) as rt:
            assert await rt.map(range(300)) == [str(i) for i in range(300)]
            for _ in range(50):  # the gateway tells replicas about finished requests every 0.2 s
                await asyncio.sleep(0.1)
                ended = (await rt.debug_state())["replicas"]["s[0]"]["ended"]
                if ended["below"] == 300:
                    return ended
            return ended

    ended = arun(main())
    assert ended == {"below": 300, "listed": 0}  # all 300 ended, none needs an entry


def test_unknown_transport_is_refused_before_anything_starts():
    p = alto.Pipeline("t")
    p.output(p.input().map(str))
    with pytest.raises(ValueError, match=r"transport='grpc'.*'tcp'.*'ray'"):
        RayRuntime(p, transport="grpc")


def test_actors_are_gone_after_exit(ray_cluster):
    p = alto.Pipeline("short")
    p.output(p.input().map(str, replicas=2, name="s"))

    async def main():
        async with RayRuntime(p) as rt:
            handle = await rt.replica("s", 1)
            assert await rt.submit(3) == "3"
        return handle

    handle = arun(main())
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(handle.node.remote(), timeout=30)
