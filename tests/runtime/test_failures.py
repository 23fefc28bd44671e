"""Failures never hang a runtime: the issue's reproductions, timeouts, cancellation scope,
supervision, bounded memory. Runtime-contract tests run on every runtime."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import warnings

import pytest

import alto
from alto.dataflow import StageSpec
from conftest import arun


async def gen(x):
    await asyncio.sleep(0.01)
    if x == 1:
        raise ValueError("bad")
    for i in range(x):
        yield i


def agg_once(x, xs):
    if x == 1:
        raise ValueError("bad")
    return sum(xs)


def test_failing_async_generator_expand_fails_only_its_request(make_runtime):
    p = alto.Pipeline("r")
    p.output(p.input().expand(gen).aggregate(lambda x, xs: sum(xs)))

    async def main():
        async with make_runtime(p, timeout_s=60) as rt:
            first = await rt.map([2, 1, 3, 4], return_exceptions=True)
            return first, await rt.map([5, 2])

    first, again = arun(main())
    assert first[0] == 1 and first[2] == 3 and first[3] == 6
    assert isinstance(first[1], alto.StageError) and first[1].stage == "gen"
    assert again == [10, 1]


def test_failing_aggregate_leaves_the_runtime_serving(make_runtime):
    p = alto.Pipeline("r")
    p.output(p.input().expand(range).aggregate(agg_once, name="agg_here"))

    async def main():
        async with make_runtime(p, timeout_s=60) as rt:
            with pytest.raises(alto.StageError) as info:
                await rt.submit(1)
            later = await rt.map([2, 3, 4])
            return info.value, later

    err, later = arun(main())
    assert err.stage == "agg_here" and isinstance(err.__cause__, ValueError)
    assert later == [1, 3, 6]


def test_request_timeout_cancels_its_work_and_names_what_was_waited_for(make_runtime):
    async def stuck(x):
        if x == 0:
            await asyncio.sleep(3600)
        return x

    p = alto.Pipeline("t")
    p.output(p.input().map(stuck, name="slow_call"))

    async def main():
        async with make_runtime(p, timeout_s=1.0) as rt:
            results = await rt.map([0, 1, 2], return_exceptions=True)
            return results, await rt.map([3, 4])

    results, later = arun(main())
    assert isinstance(results[0], alto.RequestTimeout) and isinstance(results[0], TimeoutError)
    assert "did not complete within 1s" in str(results[0]) and "'slow_call'" in str(results[0])
    assert results[1:] == [1, 2] and later == [3, 4]


def test_cancelling_a_request_interrupts_only_its_items():
    """concurrency=1: request A's item waits for ever; B queues behind it. Leaving A's
    stream interrupts exactly A's item; the same lane goes on with B."""
    seen: list[str] = []

    async def step(x):
        if x == "A":
            seen.append("A started")
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                seen.append("A cancelled")
                raise
        return x.lower()

    p = alto.Pipeline("c")
    p.output(p.input().map(step, concurrency=1))

    async def main():
        async with alto.LocalRuntime(p, timeout_s=60) as rt:
            lane_tasks = {lane.task for lane in rt.replicas["step"][0].lanes}

            async def read_a():
                async for _ev in rt.stream("A"):
                    pass

            a = asyncio.create_task(read_a())
            b = asyncio.create_task(rt.submit("B"))
            while "A started" not in seen:
                await asyncio.sleep(0.01)
            a.cancel()
            result_b = await asyncio.wait_for(b, 10)
            assert {lane.task for lane in rt.replicas["step"][0].lanes} == lane_tasks  # same lane
            assert rt.replicas["step"][0].errors == []
            return result_b

    assert arun(main()) == "b"
    assert seen == ["A started", "A cancelled"]


def test_internal_error_fails_its_request_and_is_raised_at_close():
    p = alto.Pipeline("bug")
    p.output(p.input().map(lambda x: x + 1, name="inc"))

    async def main():
        async with alto.LocalRuntime(p, timeout_s=30) as rt:
            ex = rt.replicas["inc"][0]
            batched = ex.op.handle_batch is not None
            real = ex.op.handle_batch if batched else ex.op.handle
            calls = {"n": 0}

            async def broken(msg):
                calls["n"] += 1
                if calls["n"] == 1:
                    raise RuntimeError("simulated ALTO bug")
                return await real(msg)

            if batched:
                ex.op.handle_batch = broken
            else:
                ex.op.handle = broken
            with pytest.raises(alto.StageError, match="simulated ALTO bug") as info:
                await rt.submit(1)
            assert info.value.stage == "inc"
            assert await rt.map([1, 2]) == [2, 3]  # the replica goes on

    with pytest.raises(ExceptionGroup, match="internal errors in ALTO") as group:
        arun(main())
    assert "simulated ALTO bug" in str(group.value.exceptions[0])


def test_a_stream_reader_that_stops_reading_slows_the_stages():
    produced = []

    def many(n):
        for i in range(n):
            produced.append(i)
            yield i

    p = alto.Pipeline("flood")
    p.output(p.input().expand(many))

    async def main():
        async with alto.LocalRuntime(p, event_buffer=16, inbox_capacity=8) as rt:
            events = rt.stream(100_000)
            await events.__anext__()
            await asyncio.sleep(0.5)  # a reader that stopped
            ahead = len(produced)
            await events.aclose()
            return ahead

    ahead = arun(main())
    assert ahead < 1000, f"the producer ran {ahead} items ahead of a reader that stopped"


def test_map_over_many_inputs_keeps_tasks_bounded():
    p = alto.Pipeline("many")
    p.output(p.input().map(lambda x: x))
    peak = 0

    def inputs():
        nonlocal peak
        for i in range(20_000):
            if i % 500 == 0:
                peak = max(peak, len(asyncio.all_tasks()))
            yield i

    async def main():
        async with alto.LocalRuntime(p, max_requests=16) as rt:
            return await rt.map(inputs())

    out = arun(main())
    assert out == list(range(20_000))
    assert peak < 64, f"{peak} tasks at once for 16 admitted requests"


def test_ended_requests_are_remembered_below_a_low_water_mark():
    p = alto.Pipeline("mem")
    p.output(p.input().map(lambda x: 1 // x))

    async def main():
        async with alto.LocalRuntime(p) as rt:
            await rt.map(range(1, 301))
            await rt.map([0, 0], return_exceptions=True)
            return rt.cancelled.low, len(rt.cancelled), (await rt.stats())["requests"]

    low, listed, stats = arun(main())
    assert (low, listed) == (302, 0)
    assert stats["max_requests"] == 128 and stats["open"] == 0


def test_from_specs_pipelines_have_their_options_checked():
    def build(**opts):
        specs = [
            StageSpec("input", "input", None, (), 0, ()),
            StageSpec("double", "map", lambda x: 2 * x, ("input",), 0, (), **opts),
        ]
        return alto.Pipeline.from_specs("cfg", specs, ["double"])

    for opts, pattern in [
        ({"replicas": 0}, r"map 'double': replicas= must be an integer >= 1"),
        ({"router": "bogus"}, r"map 'double': router= must be one of .*'prompt_aware'"),
        ({"on_error": "ignore"}, r"map 'double': on_error= must be 'fail'"),
        ({"concurrency": 0}, r"map 'double': concurrency= must be an integer >= 1"),
    ]:
        with pytest.raises(alto.PipelineError, match=pattern):
            build(**opts).validate()
    assert alto.run(build(), [2]) == [4]


def test_errors_name_a_stage_by_its_given_name():
    p = alto.Pipeline("n")
    with pytest.raises(alto.PipelineError, match="'agg_here'"):
        p.input().aggregate(lambda parent, xs: xs, name="agg_here")


def test_router_forks_keep_their_arguments():
    a, b = alto.PowerOfTwo(seed=1).fork(), alto.PowerOfTwo(seed=1).fork()
    picks_a = [a.choose((i,), None, 5, lambda j: 0.0 if j % 2 else 1.0) for i in range(50)]
    picks_b = [b.choose((i,), None, 5, lambda j: 0.0 if j % 2 else 1.0) for i in range(50)]
    assert picks_a == picks_b


def test_default_concurrency_by_function_kind():
    async def call_llm(x):
        return x

    def plain(x):
        return x

    p = alto.Pipeline("c")
    s = p.input()
    names = [s.map(call_llm).stage, s.map(plain).stage, s.map(call_llm, concurrency=None, name="free").stage]
    assert [p.stages[n].max_in_flight for n in names] == [64, 1, None]


def test_current_gives_request_and_path_in_every_kind_of_stage(runtime):
    async def tag(x):
        await asyncio.sleep(0)
        ctx = alto.current()
        return (ctx.stage, ctx.path[1:], x)

    def words(text):
        assert alto.current().stage == "words"
        yield from text.split()

    p = alto.Pipeline("cur")
    p.output(p.input().expand(words).map(tag).aggregate(lambda t, xs: xs))
    assert alto.run(p, ["a b"], runtime=runtime) == [[("tag", (0,), "a"), ("tag", (1,), "b")]]
    with pytest.raises(LookupError, match="only available inside a stage"):
        alto.current()


def test_current_is_right_for_concurrent_items_and_the_tasks_they_start():
    """Many items in flight in one replica (lanes interleave at every await), each
    checking alto.current() before and after waits, and in tasks it gathers."""
    import random

    async def check(x):
        rng = random.Random(x)
        here = alto.current().path
        await asyncio.sleep(rng.random() / 200)

        async def child():
            await asyncio.sleep(rng.random() / 200)
            return alto.current().path

        seen = await asyncio.gather(child(), child())
        await asyncio.sleep(0)
        return [here, *seen, alto.current().path]

    p = alto.Pipeline("many")
    p.output(p.input().expand(range).map(check, concurrency=16).aggregate(lambda n, xs: xs))
    [paths] = alto.run(p, [40])
    assert len(paths) == 40
    for i, seen in enumerate(paths):
        assert {tuple(s[1:]) for s in seen} == {(i,)}, (i, seen)


def test_explicit_start_and_aclose_and_one_state_machine():
    p = alto.Pipeline("life")
    p.output(p.input().map(str.upper))

    async def main():
        rt = alto.LocalRuntime(p)
        with pytest.raises(RuntimeError, match="is not started"):
            await rt.submit("x")
        await rt.start()
        with pytest.raises(RuntimeError, match="already started"):
            await rt.start()
        out = await rt.submit("x")
        await rt.aclose()
        await rt.aclose()  # idempotent
        with pytest.raises(RuntimeError, match="was closed"):
            await rt.submit("x")
        return out

    assert arun(main()) == "X"


def test_an_unclosed_runtime_warns_once_when_collected():
    code = """
import asyncio, gc, warnings, alto
warnings.simplefilter("always")
p = alto.Pipeline("leak")
p.output(p.input().expand(range).map(lambda x: x).aggregate(lambda n, xs: sum(xs)))
async def main():
    rt = alto.LocalRuntime(p)
    await rt.start()
    print(await rt.submit(4))
asyncio.run(main())
gc.collect()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "6"
    assert out.stderr.count("ResourceWarning: LocalRuntime") == 1, out.stderr
    assert "was never closed" in out.stderr
    assert "Task was destroyed" not in out.stderr


def test_import_alto_does_not_import_ray():
    code = "import sys, alto; assert 'ray' not in sys.modules; alto.RayRuntime; assert 'ray' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "RayRuntime" in dir(alto)


def test_runtime_options_are_typed_and_checked_alike():
    p = alto.Pipeline("o")
    p.output(p.input().map(str))
    with pytest.raises(ValueError, match="max_requests= must be an integer >= 1"):
        alto.LocalRuntime(p, max_requests=0)
    with pytest.raises(TypeError, match="valid options"):
        alto.LocalRuntime(p, max_request=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert alto.run(p, [1], timeout_s=5) == ["1"]


def test_a_stage_raising_cancelled_error_fails_its_request_not_the_replica():
    async def odd(x):
        if x == 1:
            raise asyncio.CancelledError  # not a cancellation of ALTO's: a stage failure
        return x

    p = alto.Pipeline("ce")
    p.output(p.input().map(odd))

    async def main():
        async with alto.LocalRuntime(p, timeout_s=30) as rt:
            first = await rt.map([0, 1, 2], return_exceptions=True)
            return first, await rt.map([3, 4])

    first, later = arun(main())
    assert first[0] == 0 and first[2] == 2 and later == [3, 4]
    assert isinstance(first[1], alto.StageError) and first[1].stage == "odd"


class _MissingModel:
    """A class stage whose model cannot be loaded (its constructor raises)."""

    def __init__(self) -> None:
        raise FileNotFoundError("model.gguf is missing")

    def __call__(self, x: str) -> str:
        return x


def test_a_stage_that_cannot_start_is_named_with_its_own_error_on_every_runtime(make_runtime):
    """The error names the stage and replica and carries the stage's exception itself
    (on Ray: not wrapped in Ray's task error), and the runtime is left closed."""
    p = alto.Pipeline("loads")
    p.output(p.input().map(str.upper, name="upper").map(_MissingModel, name="model", replicas=2))

    async def main():
        rt = make_runtime(p)
        with pytest.raises(RuntimeError) as exc:
            await rt.start()
        return rt, exc.value

    rt, error = asyncio.run(main())
    assert str(error).startswith("stage 'model' (replica ")
    assert "failed to start: FileNotFoundError('model.gguf is missing')" in str(error)
    assert "ray::" not in str(error)
    with pytest.raises(RuntimeError, match=r"not started|closed"):
        asyncio.run(rt.submit("x"))
