"""The load generator and ``alto bench``: they measure what they claim to.

No speed is asserted (benchmark scripts measure speed); what is checked is the
machinery: common random numbers, failures recorded rather than fatal, identical
outputs across the systems compared, and the structural facts the experiment relies on.
"""

from __future__ import annotations

import asyncio
import json
import math

from typer.testing import CliRunner

import alto
import alto.testing._load as load
from alto.cli import app
from alto.testing import compare, curve


def test_arrivals_use_common_random_numbers():
    a = load.arrivals(50, 2.0, seed=3)
    b = load.arrivals(50, 8.0, seed=3)
    assert all(math.isclose(x, 4 * y) for x, y in zip(a, b, strict=True))  # same draws, spacing / rate
    assert a == sorted(a) and a != load.arrivals(50, 2.0, seed=4)
    mean_gap = a[-1] / len(a)
    assert 0.3 < mean_gap < 0.8  # Poisson at 2/s: mean gap 0.5 s


def test_drive_records_failures_and_keeps_going():
    async def flaky(x):
        yield f"partial {x}"
        if x % 3 == 0:
            raise ValueError(f"bad {x}")
        yield f"final {x}"

    results: dict[int, str] = {}
    samples = asyncio.run(load.drive(flaky, list(range(30)), rate=5000.0, warmup=0.0, results=results))
    assert len(samples) == 30
    failed = [s for s in samples if s.error]
    assert {s.index for s in failed} == set(range(0, 30, 3))
    assert all("ValueError: bad" in s.error for s in failed)
    assert results[1] == "final 1" and results[3] == "partial 3"
    summary = load.summarize(samples, 5000.0)
    assert summary.errors == 10 and summary.requests == 30
    assert summary.p50_s <= summary.p99_s


def test_curve_and_compare_find_throughput_at_the_target():
    def s(rate, mean, p99, first):
        return load.Summary(rate, 10, 0, mean, mean, p99, first, first)

    fast = curve([s(1, 1.0, 2.0, 0.2), s(2, 2.0, 3.0, 0.3), s(3, 6.0, 9.0, 0.5)], 4.0)
    slow = curve([s(1, 3.0, 5.0, 2.0), s(2, 5.0, 8.0, 3.0), s(3, 9.0, 12.0, 4.0)], 4.0)
    assert fast["throughput_at_slo"] == 2.5 and fast["throughput_at_slo_how"] == "interpolated"
    assert slow["throughput_at_slo"] == 1.5
    r = compare(fast, slow, 4.0)
    assert math.isclose(r["throughput_ratio"], 2.5 / 1.5)
    assert r["equal_load_rate"] == 1  # the highest rate at which the baseline meets the target
    assert r["p99_ratio_at_equal_load"] == 2.5 and r["first_output_ratio_at_equal_load"] == 10.0


def test_alto_bench_run_cli(tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('"SMTP moves mail"\n"IMAP reads it too"\n')
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(
        app,
        ["bench", "run", "examples/pipelines.py:words", "-i", str(inputs), "--rates", "200,400"]
        + ["--requests", "20", "--baseline", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["streaming"]["rates"] == [200.0, 400.0] and data["identical_outputs"] is True
    assert sum(data["baseline"]["errors"]) == 0


def test_alto_bench_run_names_a_bad_rate_list(tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('"x"\n')
    res = CliRunner().invoke(app, ["bench", "run", "examples/pipelines.py:words", "-i", str(inputs), "--rates", "a"])
    assert res.exit_code != 0 and "--rates" in res.output


def test_langgraph_versions_of_rag_and_summarize_give_alto_results():
    from alto.llm import Simulated
    from alto.retrieval import BM25, load_texts
    from alto_apps import rag, summarize
    from benchmarks.langgraph_apps import app_system, rag_graph, summarize_graph

    docs = load_texts({"SMTP": "SMTP sends e-mail between servers.", "IMAP": "IMAP reads e-mail on a server."})
    retriever = BM25(docs, cache=False)
    llm = Simulated(time_scale=0, seed=9)
    questions = ["How is e-mail sent?", "How is mail read?"]

    async def run_graph(system, inputs):
        outs = []
        for x in inputs:
            outs.append([o async for o in system(x)])
        return outs

    rag_alto = alto.run(rag.build_pipeline(llm, retriever), questions)
    rag_lg = asyncio.run(run_graph(app_system(rag_graph(llm, retriever), "retrieve", "answer"), questions))
    assert [o[-1] for o in rag_lg] == rag_alto

    text = ["SMTP sends mail. IMAP reads it. POP downloads it."]
    sum_alto = alto.run(summarize.build_pipeline(llm, max_sections=3), text)
    sum_lg = asyncio.run(run_graph(app_system(summarize_graph(llm, max_sections=3), "section", "combine"), text))
    assert sum_lg[0][-1] == sum_alto[0]
    assert len(sum_lg[0]) == len(sum_alto[0]["sections"]) + 1  # each section as its task ends, then the result

    from alto_apps import analysis
    from benchmarks.langgraph_apps import analysis_graph
    from conftest import letters

    labels = {"vowels": "aeiou", "consonants": "zzz kkk"}
    docs = [{"id": "d", "text": "Aeiou aia. Zzz kx. Oooo eee."}, {"id": "e", "text": ""}]
    an_alto = alto.run(analysis.build_pipeline(labels, embed=letters), docs)
    an_lg = asyncio.run(run_graph(app_system(analysis_graph(labels, letters), "classify", "report"), docs))
    assert [o[-1] for o in an_lg] == an_alto
