"""What every retriever shares: hits, the on-disk index cache, progress output."""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alto.retrieval._corpus import Document, data_dir, fingerprint

__all__ = ["Hit", "Retriever", "cache_dir_for", "progress"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved document: its rank (1 = best), score and which retriever found it."""

    doc: Document
    score: float
    rank: int
    retriever: str


class Retriever:
    """Base class: ``search(query, k)`` returns hits, best first. Thread-safe for reads."""

    name = "retriever"
    docs: Sequence[Document]

    def search(self, query: str, k: int = 5) -> list[Hit]:
        raise NotImplementedError

    def __call__(self, query: str) -> list[Hit]:
        """A retriever is itself a stage function: ``stream.map(retriever)``."""
        return self.search(query)


def cache_dir_for(kind: str, docs: Sequence[Document], params: dict[str, Any], root: Path | None = None) -> Path:
    """The cache folder for an index: the key changes when the corpus, model or params change."""
    key = hashlib.sha256(f"{fingerprint(docs)}|{kind}|{sorted(params.items())}".encode()).hexdigest()[:20]
    return Path(root or data_dir() / "index") / f"{kind}-{key}"


def publish(tmp: Path, final: Path) -> None:
    """Move a freshly built index into place atomically (a half-built one never counts)."""
    if final.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp.rename(final)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    from rich.console import Console

    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
