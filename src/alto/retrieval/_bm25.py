"""BM25 retrieval with ``bm25s`` (sparse matrices, English stopwords, Snowball stemming).

>>> from alto.retrieval import BM25, load_texts
>>> idx = BM25(load_texts({"smtp": "SMTP transfers electronic mail between servers",
...                         "ftp": "FTP transfers files between hosts"}), cache=False)
>>> idx.search("sending mail between servers", k=1)[0].doc.id
'smtp'
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from alto.retrieval._base import Hit, Retriever, cache_dir_for, progress, publish
from alto.retrieval._corpus import Document

__all__ = ["BM25"]


class BM25(Retriever):
    """A BM25 index over ``docs``, built once and cached on disk (``cache=False`` to skip)."""

    name = "bm25"

    def __init__(
        self, docs: Sequence[Document], *, k1: float = 1.5, b: float = 0.75, cache: bool | Path = True
    ) -> None:
        import bm25s
        import Stemmer

        self.docs = list(docs)
        if not self.docs:
            raise ValueError("BM25 needs at least one document")
        self._stemmer = Stemmer.Stemmer("english")
        params = {"k1": k1, "b": b, "bm25s": bm25s.__version__, "title": True}
        self.cache_path = cache_dir_for("bm25", self.docs, params, cache if isinstance(cache, Path) else None)
        self.built = False
        if cache and (self.cache_path / "params.index.json").exists():
            self._index = bm25s.BM25.load(str(self.cache_path), show_progress=False)
            return
        with progress(f"BM25 index ({len(self.docs):,} docs)", total=len(self.docs)) as advance:
            texts = [f"{d.title}. {d.text}" for d in self.docs]
            tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)
            self._index = bm25s.BM25(k1=k1, b=b)
            self._index.index(tokens, show_progress=False)
            advance(len(self.docs))
        self.built = True
        if cache:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.cache_path.parent))
            self._index.save(str(tmp), show_progress=False)
            publish(tmp, self.cache_path)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self._stemmer, show_progress=False, return_ids=False)
        if not tokens or not tokens[0]:
            return []
        k = min(k, len(self.docs))
        ids, scores = self._index.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [
            Hit(self.docs[int(i)], float(s), r + 1, self.name)
            for r, (i, s) in enumerate(zip(ids[0], scores[0], strict=True))
            if s > 0
        ]
