"""Retrieval: BM25 (``bm25s``), dense (MiniLM + ``faiss``) and hybrid (reciprocal rank fusion).

>>> from alto.retrieval import BM25, Hybrid, load_texts
>>> docs = load_texts({"smtp": "SMTP transfers electronic mail between servers",
...                    "imap": "IMAP lets a mail client read messages on a server",
...                    "ftp": "FTP transfers files between hosts"})
>>> Hybrid([BM25(docs, cache=False)]).search("read my mail", k=1)[0].doc.id
'imap'
"""

from __future__ import annotations

from collections.abc import Sequence

from alto.retrieval._base import Hit, Retriever, cache_dir_for
from alto.retrieval._bm25 import BM25
from alto.retrieval._corpus import (
    CorpusError,
    Document,
    data_dir,
    fetch_foldoc,
    fingerprint,
    load_files,
    load_foldoc,
    load_texts,
)
from alto.retrieval._dense import Dense, load_embedder

__all__ = [
    "BM25",
    "CorpusError",
    "Dense",
    "Document",
    "Hit",
    "Hybrid",
    "Retriever",
    "cache_dir_for",
    "data_dir",
    "fetch_foldoc",
    "fingerprint",
    "load_embedder",
    "load_files",
    "load_foldoc",
    "load_texts",
]


class Hybrid(Retriever):
    """Reciprocal rank fusion of several retrievers: ``score = sum 1 / (k0 + rank)``.

    RRF needs no score calibration between BM25 and cosine similarity (Cormack et al.,
    SIGIR 2009; ``k0 = 60`` as there).
    """

    name = "hybrid"

    def __init__(self, retrievers: Sequence[Retriever], *, k0: int = 60, depth: int = 20) -> None:
        if not retrievers:
            raise ValueError("Hybrid needs at least one retriever")
        self.retrievers = list(retrievers)
        self.docs = self.retrievers[0].docs
        self.k0 = k0
        self.depth = depth

    def search(self, query: str, k: int = 5) -> list[Hit]:
        fused: dict[str, float] = {}
        docs = {}
        for r in self.retrievers:
            for hit in r.search(query, self.depth):
                fused[hit.doc.id] = fused.get(hit.doc.id, 0.0) + 1.0 / (self.k0 + hit.rank)
                docs[hit.doc.id] = hit.doc
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [Hit(docs[i], s, r + 1, self.name) for r, (i, s) in enumerate(best)]
