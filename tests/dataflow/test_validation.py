"""Every invalid pipeline in DESIGN.md raises PipelineError before any stage runs."""

from __future__ import annotations

import dataclasses

import pytest

import alto
from alto.dataflow import StageSpec

calls: list[object] = []


def record(x):
    calls.append(x)
    return x


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()
    yield
    assert calls == [], "no stage may run for an invalid pipeline"


def test_pipeline_error_is_value_error():
    assert issubclass(alto.PipelineError, ValueError)


def test_aggregate_with_no_open_level():
    p = alto.Pipeline("p")
    with pytest.raises(alto.PipelineError, match=r"summarise.*depth 0.*expand"):

        def summarise(parent, children):
            return children

        p.input().map(record).aggregate(summarise)


def test_zip_of_different_depths():
    p = alto.Pipeline("p")
    q = p.input()
    deep = q.expand(list, name="letters")
    with pytest.raises(alto.PipelineError, match=r"zip of 'input'.*'letters'.*same expand"):
        q.zip(deep)


def test_zip_of_different_origins():
    p = alto.Pipeline("p")
    q = p.input()
    a = q.expand(list, name="a")
    b = q.expand(list, name="b")
    with pytest.raises(alto.PipelineError, match=r"'a'.*levels \['a'\].*'b'.*levels \['b'\]"):
        a.zip(b)


def test_stream_from_another_pipeline():
    p1, p2 = alto.Pipeline("one"), alto.Pipeline("two")
    s2 = p2.input().map(record)
    with pytest.raises(alto.PipelineError, match=r"belongs to pipeline 'two', not 'one'"):
        p1.output(s2)
    with pytest.raises(alto.PipelineError, match=r"belongs to pipeline 'two'"):
        p1.input().zip(s2)


def test_no_output():
    p = alto.Pipeline("empty")
    p.input().map(record)
    with pytest.raises(alto.PipelineError, match=r"no output.*p.output"):
        alto.run(p, [1])
    with pytest.raises(alto.PipelineError, match="no output"):
        alto.LocalRuntime(p)


def test_duplicate_explicit_names():
    p = alto.Pipeline("p")
    q = p.input().map(record, name="step")
    with pytest.raises(alto.PipelineError, match=r"duplicate stage name 'step'"):
        q.map(record, name="step")


def test_derived_names_are_made_unique():
    p = alto.Pipeline("p")
    s = p.input().map(record).map(record).map(lambda x: x).map(lambda x: x)
    p.output(s)
    assert list(p.stages) == ["input", "record", "record_2", "lambda", "lambda_2"]


def test_cycle():
    p = alto.Pipeline("p")
    p.output(p.input().map(record, name="a").map(record, name="b"))
    specs = p.stages
    cyclic = [specs["input"], dataclasses.replace(specs["a"], inputs=("b",)), specs["b"]]
    q = alto.Pipeline.from_specs("cyclic", cyclic, ["b"])
    with pytest.raises(alto.PipelineError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        q.validate()
    with pytest.raises(alto.PipelineError, match="cycle"):
        alto.run(q, [1])


def test_unknown_input_stage():
    spec = StageSpec(name="m", kind="map", fn=record, inputs=("nowhere",), depth=0, levels=())
    inp = StageSpec(name="input", kind="input", fn=None, inputs=(), depth=0, levels=())
    with pytest.raises(alto.PipelineError, match=r"'m' reads from unknown stage 'nowhere'"):
        alto.Pipeline.from_specs("p", [inp, spec], ["m"]).validate()


def test_run_needs_depth0_output():
    p = alto.Pipeline("p")
    p.output(p.input().expand(list, name="letters"))
    with pytest.raises(alto.PipelineError, match=r"no output.*depth 0.*'letters' \(depth 1\)"):
        alto.run(p, ["ab"])


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"replicas": 0}, r"map 'record': replicas= must be an integer >= 1"),
        ({"concurrency": 0}, r"concurrency= must be an integer >= 1"),
        ({"retries": -1}, r"retries= must be an integer >= 0"),
        ({"on_error": "ignore"}, r"on_error= must be 'fail' \(the request fails\) or 'drop'"),
        ({"router": "fastest"}, r"router= must be one of"),
        ({"resources": {"num_cpus": -1}}, r"resources= maps resource names to non-negative numbers"),
        ({"replica": 2}, r"unknown option\(s\) \['replica'\]"),
    ],
)
def test_bad_options(options, pattern):
    p = alto.Pipeline("p")
    with pytest.raises(alto.PipelineError, match=pattern):
        p.input().map(record, **options)


def test_keyed_stage_rejects_unkeyed_router():
    p = alto.Pipeline("p")
    with pytest.raises(alto.PipelineError, match=r"same replica; use router='rendezvous'"):
        p.input().expand(list).aggregate(lambda a, b: b, replicas=2, router="round_robin")


class Concat:  # an incremental aggregator
    def start(self, parent):
        self.parts = []

    def add(self, index, child):
        self.parts.append(child)

    def finish(self):
        return "".join(self.parts)


@pytest.mark.parametrize("agg", [lambda parent, xs: xs, Concat], ids=["function", "incremental"])
def test_stateful_is_refused_on_aggregates_of_either_form(agg):
    p = alto.Pipeline("st")
    kids = p.input().expand(list)
    with pytest.raises(alto.PipelineError, match=r"aggregate .*stateful= applies to map, filter and expand"):
        kids.aggregate(agg, stateful=True)
