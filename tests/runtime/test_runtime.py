"""The runtime contract: every test runs on each runtime in conftest.RUNTIMES."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import pytest

import alto
from conftest import arun, local_only


def run(p, xs, runtime, **kw):
    return alto.run(p, xs, runtime=runtime, **kw)


# -- expand forms, classes, ordering -------------------------------------------------


def gen_words(text):
    yield from text.split()


def list_words(text):
    return text.split()


async def agen_words(text):
    for w in text.split():
        await asyncio.sleep(0)
        yield w


async def async_list_words(text):
    await asyncio.sleep(0)
    return text.split()


@pytest.mark.parametrize("splitter", [gen_words, list_words, agen_words, async_list_words])
def test_expand_forms(runtime, splitter):
    p = alto.Pipeline("p")
    words = p.input().expand(splitter)
    p.output(words.map(str.upper).aggregate(lambda text, ws: (text, ws)))
    assert run(p, ["a bb c", "", "x"], runtime) == [
        ("a bb c", ["A", "BB", "C"]),
        ("", []),
        ("x", ["X"]),
    ]


def test_children_ordered_by_index_whatever_the_arrival(runtime):
    async def jitter(x):
        await asyncio.sleep(random.random() * 0.003)
        return x * 10

    p = alto.Pipeline("p")
    kids = p.input().expand(range).map(jitter, replicas=3, concurrency=4)
    p.output(kids.aggregate(lambda n, xs: xs, replicas=2))
    assert run(p, [0, 5, 30], runtime) == [[], [0, 10, 20, 30, 40], [10 * i for i in range(30)]]


def test_three_nested_levels(runtime):
    p = alto.Pipeline("p")
    docs = p.input().expand(lambda corpus: corpus.split("|"), name="docs")
    sents = docs.expand(lambda doc: doc.split("."), name="sents", replicas=2)
    words = sents.expand(str.split, name="words", replicas=3)
    lens = words.map(len, replicas=2)
    per_sent = lens.aggregate(lambda s, ls: sum(ls), replicas=2, name="per_sent")
    per_doc = per_sent.aggregate(lambda d, ss: ss, replicas=3, name="per_doc")
    p.output(per_doc.aggregate(lambda c, ds: ds, name="per_corpus"))
    assert run(p, ["a bb.ccc|dd d.e", ""], runtime) == [[[3, 3], [3, 1]], [[0]]]


def test_class_stage_constructed_once_per_replica(runtime):
    class Model:
        def __init__(self):
            self.token = f"{os.getpid()}-{id(self)}"  # identifies the instance in any process

        def __call__(self, x):
            return (self.token, x + 1)

    p = alto.Pipeline("p")
    p.output(p.input().map(Model, replicas=3))
    results = run(p, list(range(30)), runtime)
    assert [r[1] for r in results] == list(range(1, 31))
    assert 1 <= len({r[0] for r in results}) <= 3  # one instance per replica, not per item


def test_incremental_aggregator_fed_as_children_arrive(runtime):
    log = []

    class Collect:
        def start(self, parent):
            self.parent, self.seen = parent, {}
            log.append(("start", parent))

        def add(self, index, child):
            assert hasattr(self, "seen"), "add before start"
            self.seen[index] = child

        def finish(self):
            return (self.parent, [self.seen[i] for i in sorted(self.seen)])

    async def slow_evens(x):
        await asyncio.sleep(0.002 if x % 2 == 0 else 0)
        return x

    p = alto.Pipeline("p")
    kids = p.input().expand(range).map(slow_evens, replicas=2, concurrency=3)
    p.output(kids.aggregate(Collect, replicas=2))
    assert run(p, [4, 0], runtime) == [(4, [0, 1, 2, 3]), (0, [])]
    local_only(runtime, "the start log is written in the replica's process")
    assert sorted(log) == [("start", 0), ("start", 4)]


def test_filter_and_zip_with_tombstones(runtime):
    p = alto.Pipeline("p")
    nums = p.input().expand(range)
    odd = nums.filter(lambda x: x % 2, replicas=2)
    sq = nums.map(lambda x: x * x, replicas=3)
    pairs = odd.zip(sq, replicas=2)
    p.output(pairs.aggregate(lambda n, xs: xs))
    assert run(p, [5, 0], runtime) == [[(1, 1), (3, 9)], []]


def test_filter_at_depth_zero_gives_none(runtime):
    p = alto.Pipeline("p")
    p.output(p.input().filter(lambda x: x > 1))
    assert run(p, [1, 2, 3], runtime) == [None, 2, 3]


def test_several_depth0_outputs_give_dicts(runtime):
    p = alto.Pipeline("p")
    q = p.input()
    p.output(q.map(str.upper, name="up"))
    p.output(q.map(len, name="n"))
    assert run(p, ["ab"], runtime) == [{"up": "AB", "n": 2}]


# -- failures -----------------------------------------------------------------------


def test_stage_error_fails_only_its_request(runtime):
    def check(x):
        if x == 3:
            raise ValueError("three is bad")
        return x

    p = alto.Pipeline("p")
    p.output(p.input().expand(range).map(check, replicas=2).aggregate(lambda n, xs: sum(xs)))
    results = run(p, [2, 5, 3], runtime, return_exceptions=True)
    assert results[0] == 1 and results[2] == 3
    err = results[1]
    assert isinstance(err, alto.StageError)
    assert err.stage == "check" and err.path[1:] == (3,)
    assert isinstance(err.__cause__, ValueError)
    with pytest.raises(alto.StageError, match=r"stage 'check' failed on item \(\d+, 3\): ValueError"):
        run(p, [2, 5], runtime)


def test_retries(runtime):
    attempts: dict[int, int] = {}

    def flaky(x):
        attempts[x] = attempts.get(x, 0) + 1
        if attempts[x] <= 2:
            raise ConnectionError("try again")
        return x * 2

    p = alto.Pipeline("p")
    p.output(p.input().map(flaky, retries=2))
    assert run(p, [1, 2], runtime) == [2, 4]
    attempts.clear()
    p2 = alto.Pipeline("p2")
    p2.output(p2.input().map(flaky, retries=1))
    with pytest.raises(alto.StageError):
        run(p2, [1], runtime)
    local_only(runtime, "attempts are counted in the replica's process")
    assert attempts == {1: 2}


def test_expand_retry_does_not_duplicate_children(runtime):
    tries = []

    async def flaky_gen(n):
        tries.append(n)
        for i in range(n):
            if i == 2 and len(tries) == 1:
                raise RuntimeError("stream broke")
            yield i

    p = alto.Pipeline("p")
    p.output(p.input().expand(flaky_gen, retries=1).aggregate(lambda n, xs: xs))
    assert run(p, [4], runtime) == [[0, 1, 2, 3]]
    local_only(runtime, "tries are counted in the replica's process")
    assert len(tries) == 2


def test_on_error_drop(runtime):
    def inv(x):
        return 1 / x

    def gen(n):
        yield from range(n)
        raise OSError("source died")

    p = alto.Pipeline("p")
    vals = p.input().expand(gen, on_error="drop").map(inv, on_error="drop")
    p.output(vals.aggregate(lambda n, xs: xs))
    assert run(p, [3], runtime) == [[1.0, 0.5]]


# -- streaming ------------------------------------------------------------------------


def test_streaming_false_gives_same_results(runtime):
    p = alto.Pipeline("p")
    w = p.input().expand(gen_words).expand(list).filter(str.isalpha).map(str.upper, replicas=2)
    p.output(w.aggregate(lambda word, cs: "".join(cs)).aggregate(lambda t, ws: ws))
    xs = ["ab c1d", "", "x y z"]
    assert run(p, xs, runtime) == run(p, xs, runtime, streaming=False) == [["AB", "CD"], [], ["X", "Y", "Z"]]


@pytest.mark.parametrize("kind", ["async", "thread"])
def test_downstream_gets_first_child_while_generator_waits_for_it(runtime, kind, tmp_path):
    """Proof of streaming: the generator blocks until the next stage has its first child.

    The signal is a file, so it crosses processes (Ray replicas run elsewhere).
    """
    flag = tmp_path / "got-first"

    def wait_for_flag(seconds):
        deadline = time.time() + seconds
        while not flag.exists() and time.time() < deadline:
            time.sleep(0.005)
        return flag.exists()

    def sync_gen(n):
        yield 0
        assert wait_for_flag(n), "downstream never received the first child"
        yield 1

    async def async_gen(n):
        yield 0
        deadline = time.time() + n
        while not flag.exists() and time.time() < deadline:
            await asyncio.sleep(0.005)
        assert flag.exists(), "downstream never received the first child"
        yield 1

    def mark(x):
        if x == 0:
            flag.touch()
        return x

    p = alto.Pipeline("p")
    kids = p.input().expand(async_gen if kind == "async" else sync_gen).map(mark)
    p.output(kids.aggregate(lambda n, xs: xs))
    assert run(p, [5], runtime) == [[0, 1]]
    flag.unlink()
    # the baseline holds children back: the same pipeline must fail there
    with pytest.raises(alto.StageError):
        run(p, [0.3], runtime, streaming=False)


def test_stream_events(runtime, make_runtime):
    p = alto.Pipeline("p")
    words = p.input().expand(gen_words, name="words")
    p.output(words)
    p.output(words.aggregate(lambda t, ws: len(ws), name="count"))

    async def main():
        async with make_runtime(p) as rt:
            return [ev async for ev in rt.stream("a b c")]

    events = arun(main())
    assert [(e.stage, e.path[1:], e.value, e.final) for e in events] == [
        ("words", (0,), "a", False),
        ("words", (1,), "b", False),
        ("words", (2,), "c", False),
        ("count", (), 3, True),
    ]


def test_stream_raises_stage_error(runtime, make_runtime):
    def bad(x):
        raise KeyError(x)

    p = alto.Pipeline("p")
    p.output(p.input().map(bad))

    async def main():
        async with make_runtime(p) as rt:
            with pytest.raises(alto.StageError) as info:
                async for _ in rt.stream(1):
                    pass
            return info.value

    assert arun(main()).stage == "bad"


def test_leaving_stream_early_cancels_work_everywhere(runtime, make_runtime, tmp_path):
    """Leaving rt.stream() early stops the request's work in every stage (files record
    the work, so this holds across processes)."""
    produced, mapped, closed = tmp_path / "produced", tmp_path / "mapped", tmp_path / "closed"

    def endless(x):
        try:
            i = 0
            while True:
                with produced.open("a") as f:
                    f.write(f"{x} {i}\n")
                yield i
                i += 1
                time.sleep(0.002)
        finally:
            with closed.open("a") as f:
                f.write(f"{x}\n")

    async def slow_map(x):
        with mapped.open("a") as f:
            f.write(f"{x}\n")
        await asyncio.sleep(0.01)
        return x

    def count(path):
        return len(path.read_text().splitlines()) if path.exists() else 0

    p = alto.Pipeline("p")
    kids = p.input().expand(endless).map(slow_map, concurrency=2)
    p.output(kids)
    p.output(kids.aggregate(lambda x, xs: len(xs), name="n"))

    async def settle(check, seconds=5.0):
        deadline = time.time() + seconds
        while not check() and time.time() < deadline:
            await asyncio.sleep(0.02)
        return check()

    async def main():
        async with make_runtime(p) as rt:
            async for ev in rt.stream(1):
                if ev.path[-1] >= 3:
                    break
            assert await settle(lambda: count(closed) == 1), "the generator was not closed"
            await asyncio.sleep(0.1)
            n_prod, n_map = count(produced), count(mapped)
            await asyncio.sleep(0.3)
            assert (count(produced), count(mapped)) == (n_prod, n_map), "a stage kept working"
            assert n_prod < 100
            # the runtime keeps serving other requests
            async for ev in rt.stream(2):
                if ev.path[-1] >= 1:
                    break
            assert await settle(lambda: count(closed) == 2)

    arun(asyncio.wait_for(main(), 60))


def test_shutdown_leaves_no_tasks_or_threads(runtime, make_runtime):
    local_only(runtime, "threads and tasks of this process (Ray replicas are killed: test_ray.py)")

    def blocking(x):
        time.sleep(0.001)
        return x

    p = alto.Pipeline("p")
    p.output(p.input().expand(range).map(blocking, replicas=2, concurrency=2).aggregate(lambda n, xs: len(xs)))
    before = set(threading.enumerate())

    async def main():
        async with make_runtime(p) as rt:
            assert await rt.submit(20) == 20
            pending = asyncio.ensure_future(rt.submit(10_000))  # still running at exit
            await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="closed"):
            await pending
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert arun(main()) == []
    assert set(threading.enumerate()) == before


# -- backpressure & concurrency ---------------------------------------------------------


def test_backpressure_bounds_items_in_flight(runtime, make_runtime):
    local_only(runtime, "reads inbox peaks and the producer's progress in this process")
    produced = []

    def fast(n):
        for i in range(n):
            produced.append(i)
            yield i

    async def slow(x):
        t = time.perf_counter()
        while time.perf_counter() - t < 5e-5:  # a slow consumer (busy, ~50 us per item)
            pass
        await asyncio.sleep(0)
        return x

    class Count:
        def start(self, parent):
            self.n = 0

        def add(self, i, c):
            self.n += 1

        def finish(self):
            return self.n

    p = alto.Pipeline("p")
    p.output(p.input().expand(fast).map(slow).aggregate(Count))
    lag = []

    async def main():
        async with make_runtime(p, inbox_capacity=64) as rt:
            task = asyncio.ensure_future(rt.submit(10_000))
            while not task.done():
                await asyncio.sleep(0.01)
                handled = (await rt.stats())["slow"]["handled"][0]
                lag.append(len(produced) - handled)
            return await task, rt.peak_in_flight()

    result, peak = arun(main())
    assert result == 10_000
    # the producer never ran far ahead of the slow stage: bounded by inboxes + handoff
    assert max(lag) < 400, max(lag)
    assert peak <= 3 * 64, peak


class Gauge:
    """An async stage function that records how many calls ran at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.active, self.peak = seconds, 0, 0

    async def __call__(self, x):
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(self.seconds)
        self.active -= 1
        return x


def test_concurrency_per_replica(runtime):
    work = Gauge(0.01)
    p = alto.Pipeline("p")
    p.output(p.input().expand(range).map(work, replicas=2, concurrency=3).aggregate(lambda n, xs: xs))
    assert run(p, [24], runtime) == [list(range(24))]
    local_only(runtime, "the gauge counts in the replica's process")
    assert work.peak == 6


def test_plain_functions_do_not_block_the_loop(runtime, make_runtime):
    local_only(runtime, "on Ray, stages never run on the caller's loop")

    def sleepy(x):
        time.sleep(0.2)
        return x

    p = alto.Pipeline("p")
    p.output(p.input().map(sleepy))

    async def main():
        async with make_runtime(p) as rt:
            task = asyncio.ensure_future(rt.submit(1))
            ticks = 0
            while not task.done():
                await asyncio.sleep(0.01)
                ticks += 1
            return ticks

    assert arun(main()) >= 10


def test_admission_limit(runtime, make_runtime):
    work = Gauge(0.005)
    p = alto.Pipeline("p")
    p.output(p.input().map(work, concurrency=50))

    async def main():
        async with make_runtime(p, max_requests=4) as rt:
            return await rt.map(range(20))

    assert arun(main()) == list(range(20))
    local_only(runtime, "the gauge counts in the replica's process")
    assert work.peak == 4


def test_run_inside_event_loop_points_to_run_async():
    p = alto.Pipeline("p")
    p.output(p.input().map(str))

    async def main():
        with pytest.raises(RuntimeError, match="run_async"):
            alto.run(p, [1])
        return await alto.run_async(p, [1])

    assert arun(main()) == ["1"]
