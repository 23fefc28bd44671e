"""The fact-check's evaluation sets: splits by subject, held-out claims kept out of the
code, and a fit of the evidence rule that the repository reproduces."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from eval.factcheck import build, fit
from eval.factcheck.assistant import split

EVAL = Path(__file__).resolve().parents[2] / "eval" / "factcheck"
LABELS = {"supported", "refuted", "not enough info"}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_old_splits_share_no_subject():
    train = {build.subject_key(r) for r in rows(EVAL / "train.jsonl")}
    test = {build.subject_key(r) for r in rows(EVAL / "test.jsonl")}
    assert train and test and not train & test


def test_assistant_split_follows_its_rule_and_shares_no_subject():
    split.check()  # exits with the offending line otherwise
    dev = {split.subject_key(r) for r in rows(EVAL / "assistant" / "dev.jsonl")}
    held = {split.subject_key(r) for r in rows(EVAL / "assistant" / "heldout.jsonl")}
    assert not dev & held
    assert not held & split.old_subjects()  # a subject of the older sets is never held out
    # ... except two that the older sets recorded only after the freeze (docs say so)
    assert held & split.current_old_subjects() <= {"queue", "domain name system"}


def test_assistant_claims_are_labelled_with_the_entry_words_that_decide_them():
    claims = rows(EVAL / "assistant" / "dev.jsonl") + rows(EVAL / "assistant" / "heldout.jsonl")
    assert len(claims) >= 250
    assert {c["label"] for c in claims} == LABELS
    for c in claims:
        assert c["claim"].strip() and c["evidence"].strip(), c
        assert (c["label"] == "not enough info") == (c.get("entry") is None), c
    kinds = Counter(c["kind"] for c in claims if c["label"] == "refuted")
    assert {"sibling", "swap", "creator", "year", "number", "expansion"} <= set(kinds)


@pytest.mark.parametrize("held_out", ["test.jsonl", "assistant/heldout.jsonl"])
def test_no_held_out_claim_is_quoted_in_code_tests_docs_or_prompts(held_out):
    elsewhere = build.quoted_elsewhere()
    quoted = [r["claim"] for r in rows(EVAL / held_out) if build.is_quoted(r["claim"], elsewhere)]
    assert not quoted, f"held-out claims appear outside eval/: {quoted[:3]}"


def test_the_shipped_rule_is_the_fit_on_the_recorded_training_features():
    recorded = fit.load_features()
    assert recorded and {r["split"] for r in recorded} <= set(fit.TRAINING_SPLITS)
    shipped = json.loads(fit.OUT.read_text())
    fresh = fit.fit(recorded)
    assert shipped["threshold"] == fresh["threshold"]
    for part in ("coef", "mean", "scale"):
        assert shipped[part] == pytest.approx(fresh[part], abs=1e-6)


def test_fit_refuses_held_out_claims(tmp_path):
    out = tmp_path / "eval.json"
    item = {"claim": "x", "gold": "refuted", "split": "heldout", "features": {}}
    out.write_text(json.dumps({"items": [item]}))
    with pytest.raises(SystemExit, match="refusing"):
        fit.record([str(out)])
