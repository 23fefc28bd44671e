"""Random pipelines against the sequential reference interpreter (hypothesis).

Random nesting of expand / map / filter / zip / aggregate, fan-outs including 0,
random per-item delays so arrival order is scrambled, replicas 1-4: the runtime must
return exactly what the reference returns, in both streaming modes.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alto
from alto.testing import reference_run


def make_map(a: int, b: int, mode: str):
    if mode == "async":

        async def f(x):
            if random.random() < 0.3:
                await asyncio.sleep(random.random() * 0.002)
            return (a * x + b) % 101

    else:

        def f(x):
            if random.random() < 0.1:
                time.sleep(random.random() * 0.001)
            return (a * x + b) % 101

    return f


def make_filter(m: int, r: int):
    def keep(x):
        return x % m != r

    return keep


def make_expand(k: int, c: int, mode: str):
    def width(x):
        return (x + c) % k  # 0 .. k-1 children

    def child(x, i):
        return (x * 7 + i * 3 + c) % 101

    if mode == "gen":

        def f(x):
            for i in range(width(x)):
                yield child(x, i)

    elif mode == "list":

        def f(x):
            return [child(x, i) for i in range(width(x))]

    else:

        async def f(x):
            for i in range(width(x)):
                if random.random() < 0.3:
                    await asyncio.sleep(random.random() * 0.002)
                yield child(x, i)

    return f


def fold(parent: int, children: list[int]) -> int:
    h = (parent * 17 + len(children)) % 10007
    for c in children:  # order-sensitive: catches children out of index order
        h = (h * 31 + c) % 10007
    return h % 101


class Fold:
    """The same fold as an incremental aggregator (children may arrive in any order)."""

    def start(self, parent):
        self.parent, self.kids = parent, {}

    def add(self, index, child):
        self.kids[index] = child

    def finish(self):
        return fold(self.parent, [self.kids[i] for i in sorted(self.kids)])


async def afold(parent, children):
    await asyncio.sleep(0)
    return fold(parent, children)


def combine(pair):
    a, b = pair
    return (a * 5 + b) % 101


def stage_choices(base: list[str], s, seen: list) -> tuple[list[str], list]:
    """Stage kinds that may follow stream ``s`` (expand up to depth 3, aggregate below
    depth 0, zip when a stream of the same shape exists), and the zip partners."""
    choices = list(base)
    if s.depth < 3:
        choices += ["expand", "expand"]
    if s.depth > 0:
        choices.append("aggregate")
    partners = [t for t in seen if t.depth == s.depth and t.levels == s.levels]
    if partners:
        choices.append("zip")
    return choices, partners


@st.composite
def pipelines(draw):
    p = alto.Pipeline("random")
    s = p.input()
    seen = [s]

    def opts():
        return {"replicas": draw(st.integers(1, 4)), "concurrency": draw(st.integers(1, 3))}

    for _ in range(draw(st.integers(1, 7))):
        choices, partners = stage_choices(["map", "filter"], s, seen)
        op = draw(st.sampled_from(choices))
        if op == "map":
            s = s.map(
                make_map(draw(st.integers(1, 9)), draw(st.integers(0, 9)), draw(st.sampled_from(["sync", "async"]))),
                **opts(),
            )
        elif op == "filter":
            s = s.filter(make_filter(draw(st.integers(2, 4)), draw(st.integers(0, 1))), **opts())
        elif op == "expand":
            fn = make_expand(
                draw(st.integers(1, 4)), draw(st.integers(0, 5)), draw(st.sampled_from(["gen", "list", "agen"]))
            )
            s = s.expand(fn, **opts())
        elif op == "aggregate":
            s = s.aggregate(draw(st.sampled_from([fold, Fold, afold])), **opts())
        else:
            other = draw(st.sampled_from(partners))
            s = s.zip(other, **opts()).map(combine)
        seen.append(s)
    while s.depth > 0:
        s = s.aggregate(draw(st.sampled_from([fold, Fold, afold])), replicas=draw(st.integers(1, 4)))
    p.output(s)
    return p


def check_against_reference(runtime, pipeline, inputs):
    expected = reference_run(pipeline, inputs)
    assert alto.run(pipeline, inputs, runtime=runtime) == expected
    assert alto.run(pipeline, inputs, runtime=runtime, streaming=False) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines(), st.lists(st.integers(0, 100), min_size=1, max_size=4))
def test_random_pipelines_match_reference_local(pipeline, inputs):
    check_against_reference("local", pipeline, inputs)


@pytest.mark.timeout(600)  # each example starts fresh actors: ~20 s apiece on a loaded 2-core machine
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(pipelines(), st.lists(st.integers(0, 100), min_size=1, max_size=4))
def test_random_pipelines_match_reference_ray(ray_cluster, pipeline, inputs):
    """Fewer examples: every example starts a fresh set of actors (~0.3 s each)."""
    check_against_reference("ray", pipeline, inputs)
