"""The fact-check application: parsing adversarial model output, the pipeline end to end."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

import alto
from alto.llm import LLM, Simulated
from alto.retrieval import BM25, load_texts
from alto_apps.factcheck import LABELS, FactCheckConfig, build_pipeline, parse_verdict


@pytest.mark.parametrize(
    ("text", "label", "cited", "parsed"),
    [
        ("SUPPORTED [E1]", "supported", ["E1"], True),
        ("refuted: see E2 and E9", "refuted", ["E2"], True),
        ("NOT_ENOUGH_INFO", "not enough info", [], True),
        ("Not enough information to say; supported by nothing", "not enough info", [], True),
        ("", "not enough info", [], False),
        ("🤖🤖🤖 <|im_end|>", "not enough info", [], False),
        ("The claim is true [E3]", "supported", ["E3"], True),
        ("E10 E1", "not enough info", ["E1"], False),
    ],
)
def test_parse_verdict(text, label, cited, parsed):
    assert parse_verdict(text, ["E1", "E2", "E3"]) == (label, cited, parsed)


@given(st.text(max_size=300))
def test_parse_verdict_never_crashes(text):
    label, cited, _ = parse_verdict(text, ["E1", "E2"])
    assert label in LABELS and set(cited) <= {"E1", "E2"}


DOCS = load_texts(
    {
        "smtp": "SMTP, the Simple Mail Transfer Protocol, transfers electronic mail between servers.",
        "imap": "IMAP lets a mail client read messages kept on a mail server.",
        "pop3": "POP3 downloads mail from a server to a client.",
        "dns": "DNS maps host names to addresses; MX records name mail exchangers.",
    }
)


class Scripted(LLM):
    """A deterministic stand-in LLM (not simulated timing): fixed text per prompt kind."""

    def __init__(self, judge_text: str):
        super().__init__()
        self.judge_text = judge_text

    async def _stream(self, messages, **kw):
        last = messages[-1]["content"]
        if "Entries:" in last:
            text = self.judge_text
        elif "search queries" in last:
            text = "1. mail transfer protocol\n2. mail server\n"
        else:
            text = "SMTP transfers mail between servers. IMAP reads mail on a server. Is it? The sky is made"
        for word in text.split(" "):
            await asyncio.sleep(0)
            yield word + " "


def run_factcheck(llm, config=None, streaming=True):
    p = build_pipeline(llm, BM25(DOCS, cache=False), config=config)
    events = []

    async def main():
        async with alto.LocalRuntime(p, streaming=streaming) as rt:
            async for ev in rt.stream("How does mail travel?"):
                events.append(ev)

    asyncio.run(main())
    return events


def test_pipeline_structure_and_llm_judge_mode():
    events = run_factcheck(Scripted("REFUTED [E1]"), FactCheckConfig(judge="llm"))
    claims = [e.value["claim"] for e in events if e.stage == "claims"]
    assert claims == ["SMTP transfers mail between servers.", "IMAP reads mail on a server."]
    verdicts = [e.value for e in events if e.stage == "verdicts"]
    assert {v.claim for v in verdicts} == set(claims)
    assert all(v.label == "refuted" and v.source == "llm" and v.cited == ["E1"] for v in verdicts)
    assert all(1 <= len(v.evidence) <= 3 for v in verdicts)
    report = events[-1]
    assert report.final and report.stage == "report"
    assert report.value["counts"] == {"supported": 0, "refuted": 2, "not enough info": 0}
    # claims streamed out before the report was complete
    assert events.index(next(e for e in events if e.stage == "claims")) < len(events) - 1


def test_garbage_from_the_judge_is_not_enough_info():
    events = run_factcheck(Scripted("<<<>>> ??? lorem"), FactCheckConfig(judge="llm"))
    verdicts = [e.value for e in events if e.stage == "verdicts"]
    assert verdicts and all(v.label == "not enough info" and v.source == "evidence-score" for v in verdicts)


def test_streaming_off_gives_the_same_report():
    on = run_factcheck(Scripted("SUPPORTED [E1]"), FactCheckConfig(judge="llm"))[-1].value
    off = run_factcheck(Scripted("SUPPORTED [E1]"), FactCheckConfig(judge="llm"), streaming=False)[-1].value
    assert on == off


def test_with_simulated_engine_many_questions():
    llm = Simulated(time_scale=0, seed=7)
    p = build_pipeline(llm, BM25(DOCS, cache=False))
    reports = alto.run(p, [f"question {i}" for i in range(6)])
    for r in reports:
        assert set(r["counts"]) == set(LABELS)
        assert sum(r["counts"].values()) == len(r["verdicts"]) <= FactCheckConfig().max_claims
        assert 0.0 <= r["score"] <= 1.0


def test_real_model_end_to_end(llama, subset_dense, mail_subset):
    """SmolLM2 through the whole pipeline: structure and properties, not exact text."""
    from alto.retrieval import Hybrid

    cfg = FactCheckConfig(answer_tokens=60, max_claims=2, query_tokens=20, verdict_tokens=6)
    retriever = Hybrid([BM25(mail_subset, cache=False), subset_dense])
    p = build_pipeline(llama, retriever, scorer=subset_dense, config=cfg)
    [report] = alto.run(p, ["What does SMTP do?"])
    assert report["question"] == "What does SMTP do?"
    assert len(report["verdicts"]) <= 2
    for v in report["verdicts"]:
        assert v["label"] in LABELS and v["source"] in ("llm", "evidence-rule")
        assert -1.0 <= v["evidence_score"] <= 1.0
        assert all(e["doc_id"] in {d.id for d in mail_subset} for e in v["evidence"])
