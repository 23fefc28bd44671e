"""Document analysis: document -> sentences -> embed and classify each -> per-document report.

Each sentence is embedded (all-MiniLM-L6-v2, shipped in a package, offline) and given
the label whose description it is most similar to; the report counts the labels and
keeps each label's most typical sentences. Sentences are classified while the rest of
the document is still being split (and, behind a streaming source, still arriving).

Labels are described by example sentences, so a user changes the classifier by
changing a dictionary: ``build_pipeline(labels={"risk": "The disk may fail and lose
data.", ...})``.

>>> import alto
>>> p = build_pipeline()
>>> [report] = alto.run(p, [{"id": "smtp", "text": "SMTP is a protocol for sending mail. "
...     "It was defined in 1982 by Jon Postel. To send a message, connect to port 25."}])
>>> report["id"], report["sentences"], sum(report["labels"].values())
('smtp', 3, 3)
>>> [s["label"] for s in report["by_sentence"]]
['definition', 'history', 'usage']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import alto
from alto.llm import Sentences

__all__ = ["DEFAULT_LABELS", "build_pipeline"]

DEFAULT_LABELS: dict[str, str] = {  # each label described by example sentences (MiniLM compares sentences)
    "definition": "A compiler is a program that translates source code. A protocol is a set of rules.",
    "history": "It was invented in 1972 by Dennis Ritchie at Bell Labs and first released in 1978.",
    "usage": "To install it, run the command, then open the settings and connect to the server.",
    "comparison": "It is faster than the older version and uses less memory than its rivals.",
}


def _document(value: Any) -> tuple[str, str]:
    """(id, text) of an input: a string, or a dict with "text" (and "id")."""
    if isinstance(value, str):
        return "", value
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        return str(value.get("id", "")), value["text"]
    raise TypeError(f'a document is a string or {{"id": ..., "text": ...}}, got {type(value).__name__}')


def split_document(value: Any) -> list[dict[str, Any]]:
    doc_id, text = _document(value)
    return [{"doc": doc_id, "sentence": s} for s in Sentences().split(text)]


class Classifier:
    """Nearest label description by cosine similarity of MiniLM embeddings (one model
    per process, loaded once; a replica embeds its label descriptions once)."""

    labels: Mapping[str, str] = DEFAULT_LABELS
    embed: Callable[[list[str]], Any] | None = None

    def __init__(self) -> None:
        if self.embed is None:
            from alto.retrieval import load_embedder

            model = load_embedder()
            self.embed = lambda texts: model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
        self.names = list(self.labels)
        self.prototypes = self.embed([self.labels[n] for n in self.names])

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        assert self.embed is not None
        scores = self.prototypes @ self.embed([item["sentence"]])[0]
        best = int(scores.argmax())
        return {**item, "label": self.names[best], "score": round(float(scores[best]), 4)}


def report(value: Any, sentences: list[dict[str, Any]]) -> dict[str, Any]:
    doc_id, _ = _document(value)
    labels: dict[str, int] = {}
    for s in sentences:
        labels[s["label"]] = labels.get(s["label"], 0) + 1
    typical = {
        label: [s["sentence"] for s in sorted(sentences, key=lambda s: -s["score"]) if s["label"] == label][:2]
        for label in labels
    }
    return {
        "id": doc_id,
        "sentences": len(sentences),
        "labels": labels,
        "typical": typical,
        "by_sentence": [{"sentence": s["sentence"], "label": s["label"], "score": s["score"]} for s in sentences],
    }


def build_pipeline(
    labels: Mapping[str, str] | None = None,
    *,
    embed: Callable[[list[str]], Any] | None = None,
    replicas: int = 1,
    concurrency: int = 4,
) -> alto.Pipeline:
    """The document-analysis pipeline; ``embed`` (texts -> normalised vectors) replaces MiniLM.

    ``concurrency``: sentences embedded at once per replica, each in a worker thread
    (torch releases the GIL, so they use every core; a plain function's default is 1).
    """
    classifier = type(
        "Classifier",
        (Classifier,),
        {"labels": dict(labels or DEFAULT_LABELS), "embed": staticmethod(embed) if embed else None},
    )
    p = alto.Pipeline("document_analysis")
    sentences = p.input().expand(split_document, name="sentences")
    p.output(
        sentences.map(classifier, replicas=replicas, concurrency=concurrency, name="classify").aggregate(
            report, name="report"
        )
    )
    return p
