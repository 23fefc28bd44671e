"""Random pipelines against the sequential reference interpreter (hypothesis).

Random nesting of expand / map / filter / zip / aggregate, fan-outs including 0,
random per-item delays so arrival order is scrambled, replicas 1-4: the runtime must
return exactly what the reference returns, in both streaming modes.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alto
from alto.testing import reference_run
from random_stages import Fold, afold, combine, fold, make_expand, make_filter, make_map, stage_choices


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
