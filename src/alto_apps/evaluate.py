"""Measure the fact-checker: labelled claims through the demo's verification stages.

``alto eval factcheck FILE.jsonl`` reads JSON lines ``{"claim": ..., "label": ...}``
(labels: ``supported``, ``refuted``, ``not enough info``; other fields are kept in
the per-claim records), runs every claim through :func:`~alto_apps.factcheck.build_checker`
(queries, retrieval, evidence, verdict -- the stages ``make demo`` runs) and scores the
verdicts:

>>> rows = [{"claim": "a", "label": "supported"}, {"claim": "b", "label": "refuted"}]
>>> m = score(rows, ["supported", "not enough info"])
>>> m["accuracy"], m["nei_share"], m["confusion"]["refuted"]["not enough info"]
(0.5, 0.5, 1)
>>> [round(x, 3) for x in wilson(90, 100)]
[0.826, 0.945]

Figures come with a 95% Wilson interval. Claims are reported in three groups: those whose
subject FOLDOC has (gold supported or refuted: where checking happens), those whose
subject it lacks (gold not enough info), and not-enough-info *by construction*
(``kind: pronoun``: a sentence whose subject is another sentence's), counted apart.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import alto
from alto_apps.factcheck import LABELS, Verdict

__all__ = ["read_claims", "run_claims", "score", "wilson"]

BY_CONSTRUCTION = ("pronoun",)  # kinds whose label follows from how the claim was made


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion ``k / n``."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def read_claims(path: Path) -> list[dict[str, Any]]:
    """The labelled claims of a JSON-lines file; a bad line is an error naming it."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            claim, label = str(row["claim"]), str(row["label"]).lower().replace("_", " ")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f'{path}:{n}: expected {{"claim": ..., "label": ...}} ({exc})') from exc
        if label not in LABELS:
            raise ValueError(f"{path}:{n}: label {row['label']!r} is not one of {', '.join(LABELS)}")
        rows.append({**row, "claim": claim, "label": label})
    if not rows:
        raise ValueError(f"{path}: no claims")
    return rows


async def run_claims(
    pipeline: alto.Pipeline, claims: Sequence[str], on_done: Callable[[], None] = lambda: None
) -> list[Verdict | BaseException]:
    """One verdict (or the error that stopped it) per claim, in order."""
    async with alto.LocalRuntime(pipeline) as rt:

        async def one(claim: str) -> Verdict | BaseException:
            try:
                return await rt.submit(claim)
            except Exception as exc:  # counted and reported; the other claims go on
                return exc
            finally:
                on_done()

        return list(await asyncio.gather(*(one(c) for c in claims)))


def _metrics(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    n = len(gold)
    confusion = {g: {p: 0 for p in LABELS} for g in LABELS}
    for g, p in zip(gold, predicted, strict=True):
        confusion[g][p] += 1
    per_label = {}
    for label in LABELS:
        tp = confusion[label][label]
        said = sum(confusion[g][label] for g in LABELS)
        true = sum(confusion[label].values())
        per_label[label] = {
            "precision": tp / said if said else None,
            "recall": tp / true if true else None,
            "n": true,
        }
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci": wilson(correct, n),
        "nei_share": predicted.count("not enough info") / n if n else 0.0,
        "confusion": confusion,
        "per_label": per_label,
    }


def score(rows: Sequence[dict[str, Any]], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, not-enough-info share, confusion (gold -> predicted) and per-label
    precision/recall; ``in_corpus``: the same on claims labelled supported or refuted
    (their subject is in the corpus), where the target applies."""
    gold = [r["label"] for r in rows]
    result = _metrics(gold, list(predicted))
    keep = [i for i, g in enumerate(gold) if g != "not enough info"]
    result["in_corpus"] = _metrics([gold[i] for i in keep], [predicted[i] for i in keep])
    made = [i for i, r in enumerate(rows) if r.get("kind") in BY_CONSTRUCTION]
    absent = [i for i, g in enumerate(gold) if g == "not enough info" and i not in made]
    for name, idx in (("absent", absent), ("by_construction", made)):
        k = sum(predicted[i] == "not enough info" for i in idx)
        result[name] = {"n": len(idx), "nei_share": k / len(idx) if idx else 0.0, "nei_share_ci": wilson(k, len(idx))}
    groups = sorted({str(r["source"]) for r in rows if "source" in r})
    if groups:  # where the claims came from (generated, hand-written, model answers...)
        result["by_source"] = {}
        for g in groups:
            idx = [i for i, r in enumerate(rows) if str(r.get("source")) == g]
            m = _metrics([gold[i] for i in idx], [predicted[i] for i in idx])
            sr = [i for i in idx if gold[i] != "not enough info"]
            c = _metrics([gold[i] for i in sr], [predicted[i] for i in sr])
            result["by_source"][g] = {
                **{k: m[k] for k in ("n", "accuracy", "accuracy_ci", "nei_share")},
                "in_corpus": {k: c[k] for k in ("n", "accuracy", "accuracy_ci")},
            }
    return result


def records(rows: Sequence[dict[str, Any]], verdicts: Sequence[Verdict | BaseException]) -> list[dict[str, Any]]:
    """Per-claim records for the JSON output (and for fitting the evidence rule)."""
    out = []
    for row, v in zip(rows, verdicts, strict=True):
        rec = {k: row[k] for k in row if k not in ("claim", "label")}
        rec.update(claim=row["claim"], gold=row["label"])
        if isinstance(v, BaseException):
            rec.update(predicted="not enough info", error=f"{type(v).__name__}: {v}")
        else:
            rec.update(
                predicted=v.label,
                decided_by=v.source,
                llm_label=v.llm_label,
                subject=v.subject,
                conflict=v.conflict,
                reason=v.reason,
                features=v.features,
                evidence=[e.title for e in v.evidence],
            )
        out.append(rec)
    return out
