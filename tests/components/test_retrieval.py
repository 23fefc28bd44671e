"""Retrieval on FOLDOC: known entries come back for known queries; caches; user files."""

from __future__ import annotations

import itertools
import json

import pytest

from alto.retrieval import BM25, CorpusError, Dense, Hybrid, load_files, load_texts


def titles(hits):
    return [h.doc.title for h in hits]


def test_foldoc_is_parsed(foldoc):
    assert len(foldoc) > 10_000
    smtp = next(d for d in foldoc if d.title == "Simple Mail Transfer Protocol")
    assert "electronic mail between computers" in smtp.text
    assert "{" not in smtp.text  # cross-reference braces removed
    assert len({d.id for d in foldoc}) == len(foldoc)


@pytest.mark.parametrize(
    ("query", "expected", "within"),
    [
        ("sending mail between servers", "Simple Mail Transfer Protocol", 10),
        ("protocol for reading mail kept on a server", "Internet Message Access Protocol", 5),
        ("automatic reclamation of unused memory garbage collection", "garbage collection", 3),
        ("SMTP mail protocol", "Simple Mail Transfer Protocol", 10),
    ],
)
def test_bm25_finds_known_entries(foldoc_bm25, query, expected, within):
    assert expected in titles(foldoc_bm25.search(query, within))


def test_bm25_scores_are_ranked(foldoc_bm25):
    hits = foldoc_bm25.search("electronic mail", 10)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert foldoc_bm25.search("", 5) == [] and foldoc_bm25.search("the of and", 5) == []


def test_bm25_cache_reused_and_keyed_on_contents(tmp_path):
    docs = load_texts({"a": "SMTP moves mail", "b": "FTP moves files"})
    first = BM25(docs, cache=tmp_path)
    again = BM25(docs, cache=tmp_path)
    assert first.built and not again.built
    assert titles(again.search("mail", 1)) == ["a"]
    changed = BM25(load_texts({"a": "SMTP moves mail", "b": "FTP moves files and mail"}), cache=tmp_path)
    assert changed.built and changed.cache_path != first.cache_path


def test_dense_and_hybrid_on_foldoc_subset(subset_dense, mail_subset):
    assert "Simple Mail Transfer Protocol" in titles(subset_dense.search("sending mail between servers", 3))
    bm25 = BM25(mail_subset, cache=False)
    hybrid = Hybrid([bm25, subset_dense])
    hits = hybrid.search("sending mail between servers", 5)
    assert "Simple Mail Transfer Protocol" in titles(hits)
    assert {h.retriever for h in hits} == {"hybrid"}
    sim_related = subset_dense.similarity("SMTP sends e-mail between servers", "Simple Mail Transfer Protocol")
    sim_unrelated = subset_dense.similarity("SMTP sends e-mail between servers", "a recipe for apple pie")
    assert sim_related > sim_unrelated + 0.2


def test_dense_cache_reused(mail_subset, subset_dense):
    again = Dense(mail_subset, cache=subset_dense.cache_path.parent)
    assert not again.built
    assert titles(again.search("garbage collection", 1)) == titles(subset_dense.search("garbage collection", 1))


def test_user_files(tmp_path):
    (tmp_path / "notes.md").write_text("# SMTP\nSMTP relays mail.\n\n# FTP\nFTP moves files.\n")
    (tmp_path / "kb.jsonl").write_text(json.dumps({"id": "k1", "text": "IMAP reads mail on a server"}) + "\n\n")
    (tmp_path / "x.txt").write_text("Telnet is a remote terminal protocol.")
    docs = load_files([tmp_path])
    assert {d.id for d in docs} == {"notes.md#0", "notes.md#1", "k1", "x.txt#0"}
    assert titles(BM25(docs, cache=False).search("read mail on a server", 1)) == ["k1"]
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"title": "no text"}\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2"):
        load_files([tmp_path / "bad.jsonl"])
    with pytest.raises(CorpusError, match="no such file"):
        load_files([tmp_path / "missing.txt"])
