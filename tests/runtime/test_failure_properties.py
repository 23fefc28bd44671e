"""Failure semantics against the reference interpreter (hypothesis).

Random pipelines in which random stages of every kind -- map, filter, expand (sync
generator, list, async generator), zip, aggregate (plain, async, incremental), class
stages -- raise on random items, persistently or only on the first attempt, with
``on_error`` "fail" or "drop" and with retries. ``alto.testing`` defines the expected
result of every request: a value, or a StageError naming one of the failing
(stage, path). After each batch the same runtime serves a second batch correctly, and
no task or thread is left behind.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import alto
from alto.testing import matches_reference
from random_stages import combine, fold, make_expand, make_filter, make_map, stage_choices

ATTEMPTS: list[dict] = []  # per faulty stage: attempts per path (cleared before every run)


class Fault:
    """When a stage raises: never, on some values always, or on some paths the first time."""

    def __init__(self, mode: str, modulus: int, salt: int) -> None:
        self.mode, self.modulus, self.salt = mode, modulus, salt
        self.attempts: dict = {}
        ATTEMPTS.append(self.attempts)

    def hit(self, key: int, extra: int = 0) -> bool:
        if self.mode == "persistent":
            return (key * 7 + extra + self.salt) % self.modulus == 0
        if self.mode == "flaky":
            path = alto.current().path
            if (sum((i + 1) * (p + 3) for i, p in enumerate(path)) + extra + self.salt) % self.modulus:
                return False
            n = self.attempts.get((path, extra), 0)
            self.attempts[(path, extra)] = n + 1
            return n == 0
        return False

    def check(self, key: int, extra: int = 0) -> None:
        if self.hit(key, extra):
            raise ValueError(f"injected fault ({self.mode}) on {key}")


def key_of(args: tuple) -> int:
    x = args[0]
    return x if isinstance(x, int) else len(x)


def faulty_fn(f, fault: Fault):
    if asyncio.iscoroutinefunction(f):

        async def g(*args):
            fault.check(key_of(args))
            return await f(*args)

    else:

        def g(*args):
            fault.check(key_of(args))
            return f(*args)

    g.__name__ = f.__name__
    return g


def faulty_expand(f, fault: Fault):
    import inspect

    if inspect.isasyncgenfunction(f):

        async def g(x):
            i = 0
            async for c in f(x):
                fault.check(x, i + 1)
                yield c
                i += 1

    elif inspect.isgeneratorfunction(f):

        def g(x):
            for i, c in enumerate(f(x)):
                fault.check(x, i + 1)
                yield c

    else:

        def g(x):
            fault.check(x)
            return f(x)

    return g


class FaultyFold:
    """An incremental aggregator whose finish may raise (a class: built per group)."""

    fault: Fault = Fault("none", 1, 0)

    def start(self, parent):
        self.parent, self.kids = parent, {}

    def add(self, index, child):
        self.kids[index] = child

    def finish(self):
        self.fault.check(self.parent)
        return fold(self.parent, [self.kids[i] for i in sorted(self.kids)])


def make_class_map(a: int, fault: Fault):
    class Scale:
        def __call__(self, x):
            fault.check(x)
            return (a * x + 1) % 101

    return Scale


@st.composite
def faults(draw, flaky: bool = True):
    modes = ["none", "persistent", "persistent"] + (["flaky", "flaky"] if flaky else [])
    mode = draw(st.sampled_from(modes))
    return Fault(mode, draw(st.integers(2, 7)), draw(st.integers(0, 6)))


@st.composite
def failing_pipelines(draw, flaky: bool = True):
    """``flaky=False``: only faults that depend on values. Flaky faults depend on the
    request id (part of the path), which the reference can predict only where ids
    follow input order: on the local runtime, not on Ray, whose gateway numbers
    concurrently submitted requests in the order they arrive."""
    ATTEMPTS.clear()
    p = alto.Pipeline("faulty")
    s = p.input()
    seen = [s]

    def opts():
        return {
            "replicas": draw(st.integers(1, 3)),
            "concurrency": draw(st.sampled_from([1, 2, None])),
            "retries": draw(st.integers(0, 2)),
            "on_error": draw(st.sampled_from(["fail", "drop"])),
        }

    def agg():
        fault = draw(faults(flaky))
        form = draw(st.sampled_from(["fold", "afold", "incremental"]))
        if form == "incremental":
            cls = type("FaultyFoldN", (FaultyFold,), {"fault": fault})
            return cls
        if form == "afold":

            async def afold(parent, children):
                await asyncio.sleep(0)
                return fold(parent, children)

            return faulty_fn(afold, fault)
        return faulty_fn(fold, fault)

    for _ in range(draw(st.integers(1, 6))):
        choices, partners = stage_choices(["map", "filter", "classmap"], s, seen)
        op = draw(st.sampled_from(choices))
        if op == "map":
            f = make_map(draw(st.integers(1, 9)), draw(st.integers(0, 9)), draw(st.sampled_from(["sync", "async"])))
            s = s.map(faulty_fn(f, draw(faults(flaky))), **opts())
        elif op == "classmap":
            s = s.map(make_class_map(draw(st.integers(1, 9)), draw(faults(flaky))), **opts())
        elif op == "filter":
            s = s.filter(
                faulty_fn(make_filter(draw(st.integers(2, 4)), draw(st.integers(0, 1))), draw(faults(flaky))), **opts()
            )
        elif op == "expand":
            f = make_expand(
                draw(st.integers(1, 4)), draw(st.integers(0, 5)), draw(st.sampled_from(["gen", "list", "agen"]))
            )
            s = s.expand(faulty_expand(f, draw(faults(flaky))), **opts())
        elif op == "aggregate":
            s = s.aggregate(agg(), **opts())
        else:
            s = s.zip(draw(st.sampled_from(partners))).map(faulty_fn(combine, draw(faults(flaky))), **opts())
        seen.append(s)
    while s.depth > 0:
        s = s.aggregate(agg(), replicas=draw(st.integers(1, 3)), on_error=draw(st.sampled_from(["fail", "drop"])))
    p.output(s)
    return p


def reset_attempts() -> None:
    for attempts in ATTEMPTS:
        attempts.clear()


async def two_batches(make_runtime, pipeline, inputs, streaming):
    """Two batches on one runtime; each checked against the reference (request ids continue)."""
    async with make_runtime(pipeline, streaming=streaming) as rt:
        first = await rt.map(inputs, return_exceptions=True)
        second = await rt.map(inputs, return_exceptions=True)
    return first, second


def check_failures(make_runtime, pipeline, inputs, streaming):
    reset_attempts()

    async def main():
        results = await two_batches(make_runtime, pipeline, inputs, streaming)
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return results, leftover

    (first, second), leftover = asyncio.run(main())
    assert not leftover, f"tasks left running after close: {leftover}"
    failed = sum(isinstance(r, alto.StageError) for r in first)
    event(f"{'some' if failed else 'no'} requests failed")
    reset_attempts()
    assert matches_reference(pipeline, inputs, first), (first, pipeline.stages)
    reset_attempts()
    assert matches_reference(pipeline, inputs, second, first_rid=len(inputs)), (second, pipeline.stages)


def local(pipeline, **options):
    return alto.LocalRuntime(pipeline, timeout_s=60, **options)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(failing_pipelines(), st.lists(st.integers(0, 100), min_size=1, max_size=5), st.booleans())
def test_failing_pipelines_match_reference_local(pipeline, inputs, streaming):
    check_failures(local, pipeline, inputs, streaming)


@pytest.mark.timeout(600)  # each example starts fresh actors: ~20 s apiece on a loaded 2-core machine
@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(failing_pipelines(flaky=False), st.lists(st.integers(0, 100), min_size=1, max_size=4), st.booleans())
def test_failing_pipelines_match_reference_ray(ray_cluster, pipeline, inputs, streaming):
    """Fewer examples: every example starts a fresh set of actors."""
    from alto.runtime.ray import RayRuntime

    check_failures(lambda p, **o: RayRuntime(p, timeout_s=120, **o), pipeline, inputs, streaming)
