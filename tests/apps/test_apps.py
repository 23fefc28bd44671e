"""The applications beside fact-check: multi-query RAG, document analysis, map-reduce
summarisation. Each gives the reference interpreter's results, the same results with
``streaming=False``, and the partial outputs it promises."""

from __future__ import annotations

import asyncio

import pytest

import alto
from alto.llm import Simulated
from alto.retrieval import BM25, load_texts
from alto.testing import reference_run
from alto_apps import analysis, rag, summarize
from conftest import letters

CORPUS = {
    "SMTP": "SMTP, the Simple Mail Transfer Protocol, sends e-mail from clients to servers and between servers.",
    "IMAP": "IMAP lets an e-mail client read and organise messages that stay on the server.",
    "POP": "POP, the Post Office Protocol, downloads e-mail from a server and usually deletes it there.",
    "Ethernet": "Ethernet is a family of wired networking technologies for local area networks.",
}


@pytest.fixture(scope="module")
def retriever():
    return BM25(load_texts(CORPUS), cache=False)


def test_rag_retrieves_every_query_and_answers_with_sources(retriever):
    llm = Simulated(time_scale=0, seed=4)
    p = rag.build_pipeline(llm, retriever, max_queries=3)
    questions = ["How is e-mail sent between servers?", "What does IMAP do?", "Which protocol deletes mail?"]
    results = alto.run(p, questions)
    assert results == reference_run(p, questions)
    assert results == alto.run(p, questions, streaming=False)
    for q, r in zip(questions, results, strict=True):
        assert r["question"] == q and r["queries"][0] == q  # the question itself is searched first
        assert 2 <= len(r["queries"]) <= 4 and len(set(r["queries"])) == len(r["queries"])
        assert r["sources"] and set(r["sources"]) <= set(CORPUS) and r["answer"]
    assert results[1]["sources"][0] == "IMAP"  # the question's own best hit leads the evidence


def test_rag_searches_the_first_query_before_the_list_is_written(retriever):
    """Streaming: retrieval of the question itself starts while the LLM is still
    generating the other queries (the SIMULATED engine takes real time per token)."""
    events: list[str] = []

    class Traced(BM25):
        def search(self, query, k=5):
            events.append("search")
            return super().search(query, k)

    class Slow(Simulated):
        async def _stream(self, messages, **kw):
            writing_queries = messages[-1]["content"].startswith("Write up to")
            async for tok in super()._stream(messages, **kw):
                if writing_queries:
                    events.append("query token")
                yield tok

    p = rag.build_pipeline(Slow(time_scale=0.05, seed=4), Traced(load_texts(CORPUS), cache=False))
    alto.run(p, ["How is e-mail sent between servers?"])
    first_search = events.index("search")
    assert "query token" in events[first_search:]  # the query list was still being written
    events.clear()
    alto.run(p, ["How is e-mail sent between servers?"], streaming=False)  # the baseline waits
    assert "query token" not in events[events.index("search") :]


def test_summaries_stream_section_by_section_then_the_final_summary():
    llm = Simulated(time_scale=0, seed=6)
    p = summarize.build_pipeline(llm, max_sections=4)
    doc = "SMTP sends mail. IMAP reads it on the server. POP downloads it. Ethernet carries it."

    async def main():
        async with alto.LocalRuntime(p) as rt:
            return [ev async for ev in rt.stream(doc)]

    events = asyncio.run(main())
    partial, final = events[:-1], events[-1]
    assert final.final and partial and all(ev.stage == "sections" for ev in partial)
    sections = final.value["sections"]
    assert [ev.value for ev in sorted(partial, key=lambda e: e.path)] == sections  # outline order
    assert 1 <= len(sections) <= 4 and all(s["title"] and s["summary"] for s in sections)
    assert alto.run(p, [doc]) == reference_run(p, [doc]) == alto.run(p, [doc], streaming=False)


def test_document_analysis_counts_every_sentence_with_custom_labels():
    labels = {"vowels": "aeiou aeiou", "consonants": "zzz xxx kkk"}
    p = analysis.build_pipeline(labels, embed=letters)
    docs = [
        {"id": "a", "text": "Aeiou aia. Zzz kx. Oooo eee."},
        "Xkz zz. A single one.",
        {"id": "empty", "text": ""},
    ]
    out = alto.run(p, docs)
    assert out == reference_run(p, docs) == alto.run(p, docs, streaming=False)
    a, b, empty = out
    assert a["id"] == "a" and a["sentences"] == 3 and a["labels"] == {"vowels": 2, "consonants": 1}
    assert [s["label"] for s in a["by_sentence"]] == ["vowels", "consonants", "vowels"]
    assert b["sentences"] == sum(b["labels"].values()) == 2
    assert empty["sentences"] == 0 and empty["labels"] == {}


def test_document_analysis_names_the_stage_and_the_fix_on_bad_input():
    p = analysis.build_pipeline({"x": "x"}, embed=letters)
    [err] = alto.run(p, [42], return_exceptions=True)
    assert isinstance(err, alto.StageError) and err.stage == "sentences"
    assert '"text"' in str(err.__cause__)
