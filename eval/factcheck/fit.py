"""Fit the evidence rule's weights on the training claims (never on held-out ones).

    alto eval factcheck eval/factcheck/train.jsonl --out train_eval.json
    alto eval factcheck eval/factcheck/assistant/dev.jsonl --out dev_eval.json
    python eval/factcheck/fit.py train_eval.json dev_eval.json   # records the features, then fits
    python eval/factcheck/fit.py            # refits from the recorded features (train_features.jsonl)
    python eval/factcheck/fit.py --check    # fails if verdict_rule.json is not what the fit gives

The features of each training claim (``items[*].features`` of ``alto eval``'s output) are
kept in ``train_features.jsonl`` beside this file, so the fit is reproducible from the
repository alone: ``tests/apps/test_eval_sets.py`` refits and compares with the shipped
``src/alto_apps/verdict_rule.json``. The fit: a logistic regression over the features in
``alto_apps.grounding.LEARNED`` (standardised, balanced classes, regularisation chosen by
5-fold cross-validation), on the claims labelled supported or refuted whose subject was
found and that no conflict check (``CONFLICTS``) refutes by itself -- those are the claims
the rule decides; then the probability threshold that maximises balanced training
accuracy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from alto_apps.grounding import CONFLICTS, FEATURES, LEARNED

HERE = Path(__file__).resolve().parent
FEATURES_FILE = HERE / "train_features.jsonl"
OUT = HERE.parents[1] / "src" / "alto_apps" / "verdict_rule.json"
TRAINING_SPLITS = ("train", "dev")


def record(paths: list[str]) -> list[dict[str, Any]]:
    """The training claims' features from ``alto eval`` outputs."""
    rows = []
    for path in paths:
        for it in json.loads(Path(path).read_text())["items"]:
            if it.get("split") not in TRAINING_SPLITS:
                sys.exit(f"{path}: refusing to fit on {it['claim']!r}: its split is {it.get('split')!r}")
            if it["gold"] in ("supported", "refuted") and it.get("features"):
                feats = {k: round(float(it["features"][k]), 6) for k in FEATURES}
                rows.append({"claim": it["claim"], "gold": it["gold"], "split": it["split"], "features": feats})
    return rows


def fit(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule's weights from the recorded training features (deterministic)."""
    rows = [r for r in rows if not any(r["features"][k] for k in CONFLICTS)]
    x = np.array([[r["features"][k] for k in LEARNED] for r in rows])
    y = np.array([r["gold"] == "refuted" for r in rows], dtype=int)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    best_c = max(
        (0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
        key=lambda c: cross_val_score(
            LogisticRegression(C=c, class_weight="balanced"), z, y, cv=folds, scoring="balanced_accuracy"
        ).mean(),
    )
    model = LogisticRegression(C=best_c, class_weight="balanced").fit(z, y)
    p = model.predict_proba(z)[:, 1]

    def balanced(t: float) -> float:
        return float(((p >= t)[y == 1]).mean() + ((p < t)[y == 0]).mean()) / 2

    threshold = max((round(float(t), 2) for t in np.linspace(0.2, 0.8, 61)), key=balanced)
    return {
        "bias": float(model.intercept_[0]),
        "threshold": threshold,
        "coef": dict(zip(LEARNED, map(float, model.coef_[0]), strict=True)),
        "mean": dict(zip(LEARNED, map(float, mean), strict=True)),
        "scale": dict(zip(LEARNED, map(float, scale), strict=True)),
        "fitted_on": {
            "file": FEATURES_FILE.name,
            "claims": len(rows),
            "refuted": int(y.sum()),
            "C": best_c,
            "train_balanced_accuracy": round(balanced(threshold), 4),
        },
        "note": "fitted by eval/factcheck/fit.py on the training claims; see docs/factcheck_eval.md",
    }


def load_features() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FEATURES_FILE.read_text().splitlines() if line.strip()]


def main(argv: list[str]) -> None:
    if argv == ["--check"]:
        shipped = json.loads(OUT.read_text())
        fresh = fit(load_features())
        same = shipped["threshold"] == fresh["threshold"] and all(
            np.isclose(shipped[part][k], fresh[part][k], atol=1e-6)
            for part in ("coef", "mean", "scale")
            for k in LEARNED
        )
        sys.exit(0 if same else f"{OUT} differs from the fit on {FEATURES_FILE}: run python {__file__}")
    if argv:
        rows = record(argv)
        FEATURES_FILE.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"recorded {len(rows)} training claims in {FEATURES_FILE}")
    weights = fit(load_features())
    OUT.write_text(json.dumps(weights, indent=2) + "\n")
    print(json.dumps(weights["fitted_on"], indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
