"""Fit the evidence rule's weights on the training split (never on the held-out one).

    alto eval factcheck eval/factcheck/train.jsonl --out train_eval.json
    python eval/factcheck/fit.py train_eval.json     # writes src/alto_apps/verdict_rule.json

Takes the per-claim features that ``alto eval`` recorded (``items[*].features``) for the
claims labelled supported or refuted whose subject was found, fits a logistic
regression (standardised features, balanced classes, regularisation chosen by 5-fold
cross-validation on the same training claims) and picks the probability threshold
that maximises training accuracy. The features themselves do not depend on the
weights, so the fit needs one evaluation run, not a loop.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from alto_apps.grounding import FEATURES

OUT = Path(__file__).resolve().parents[2] / "src" / "alto_apps" / "verdict_rule.json"


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit(__doc__)
    items = json.loads(Path(argv[0]).read_text())["items"]
    rows = [it for it in items if it["gold"] in ("supported", "refuted") and it.get("features")]
    if any(it.get("split", "train") != "train" for it in rows):
        sys.exit("refusing to fit on claims that are not in the training split")
    x = np.array([[it["features"][k] for k in FEATURES] for it in rows])
    y = np.array([it["gold"] == "refuted" for it in rows], dtype=int)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    best_c = max(
        (0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
        key=lambda c: cross_val_score(LogisticRegression(C=c, class_weight="balanced"), z, y, cv=5).mean(),
    )
    model = LogisticRegression(C=best_c, class_weight="balanced").fit(z, y)
    p = model.predict_proba(z)[:, 1]
    threshold = max(np.linspace(0.2, 0.8, 61), key=lambda t: ((p >= t) == y).mean())
    weights = {
        "bias": float(model.intercept_[0]),
        "threshold": float(threshold),
        "coef": dict(zip(FEATURES, map(float, model.coef_[0]), strict=True)),
        "mean": dict(zip(FEATURES, map(float, mean), strict=True)),
        "scale": dict(zip(FEATURES, map(float, scale), strict=True)),
        "fitted_on": {
            "file": Path(argv[0]).name,
            "claims": len(rows),
            "refuted": int(y.sum()),
            "C": best_c,
            "train_accuracy": float(((p >= threshold) == y).mean()),
        },
        "note": "fitted by eval/factcheck/fit.py on the training split; see docs/factcheck_eval.md",
    }
    OUT.write_text(json.dumps(weights, indent=2) + "\n")
    print(json.dumps(weights, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
