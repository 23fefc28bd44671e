"""Corpora: FOLDOC (Debian's ``dict-foldoc``) and the user's own ``.txt``/``.md``/``.jsonl``.

>>> docs = load_texts({"a.txt": "SMTP moves mail.", "b.txt": "IMAP reads mail."})
>>> [d.id for d in docs], fingerprint(docs)[:8] == fingerprint(list(docs))[:8]
(['a.txt', 'b.txt'], True)

FOLDOC is fetched once by :func:`fetch_foldoc` (``apt-get download dict-foldoc`` and
``dpkg-deb -x``, from the Debian archive the machine is configured for) into the data
folder (``$ALTO_DATA``, default ``~/.cache/alto``), then parsed from the dictd files:
``foldoc.index`` lists ``headword TAB offset TAB length`` with offsets in dictd's
base64, pointing into the gzip-compressed ``foldoc.dict.dz``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from alto.errors import AltoError

__all__ = [
    "CorpusError",
    "Document",
    "data_dir",
    "fetch_foldoc",
    "fingerprint",
    "load_files",
    "load_foldoc",
    "load_texts",
]


class CorpusError(AltoError, RuntimeError):
    """A corpus could not be fetched or read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Document:
    """One retrievable text: ``id`` is stable and cited in verdicts."""

    id: str
    title: str
    text: str
    source: str = ""
    aliases: tuple[str, ...] = ()  # other names of the entry (FOLDOC: headwords, acronym)

    def snippet(self, chars: int = 300) -> str:
        text = self.text if len(self.text) <= chars else self.text[:chars].rsplit(" ", 1)[0] + " ..."
        return text


def data_dir() -> Path:
    """Where corpora and index caches live: ``$ALTO_DATA`` or ``~/.cache/alto``."""
    return Path(os.environ.get("ALTO_DATA") or Path.home() / ".cache" / "alto")


def fingerprint(docs: Iterable[Document]) -> str:
    """A hash of the corpus contents: changes whenever any document changes."""
    h = hashlib.sha256()
    for d in docs:
        for part in (d.id, d.title, d.text):
            h.update(part.encode())
            h.update(b"\x00")
    return h.hexdigest()


# -- FOLDOC ------------------------------------------------------------------------------

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64[c]
    return n


def fetch_foldoc(dest: Path | None = None) -> Path:
    """Make sure ``foldoc.index`` and ``foldoc.dict.dz`` are in ``dest``; return ``dest``."""
    dest = Path(dest or data_dir() / "foldoc")
    if (dest / "foldoc.index").exists() and (dest / "foldoc.dict.dz").exists():
        return dest
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise CorpusError(
                f"fetching FOLDOC needs {tool} (Debian/Ubuntu). Elsewhere, download the dict-foldoc .deb, "
                f"extract usr/share/dictd/foldoc.index and foldoc.dict.dz into {dest}"
            )
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(["apt-get", "download", "dict-foldoc"], cwd=tmp, capture_output=True, text=True)
        if got.returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
            got = subprocess.run(["apt-get", "download", "dict-foldoc"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("dict-foldoc*.deb"))
        if got.returncode != 0 or not debs:
            raise CorpusError(
                "could not download Debian's dict-foldoc package "
                f"({got.stderr.strip()[-300:]}); run `apt-get update` as root and retry"
            )
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "x")], check=True)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("foldoc.index", "foldoc.dict.dz"):
            shutil.copy(Path(tmp) / "x" / "usr" / "share" / "dictd" / name, dest / (name + ".part"))
        for name in ("foldoc.index", "foldoc.dict.dz"):
            (dest / (name + ".part")).rename(dest / name)  # atomic: a partial fetch never looks complete
    return dest


def _clean(body: str) -> str:
    body = re.sub(r"\{([^{}]*)\}", r"\1", body)  # {cross references} -> plain words
    body = re.sub(r"\(\d{4}-\d{2}-\d{2}\)\s*$", "", body.strip())  # trailing edit date
    return " ".join(body.split())


# "(See below for synonyms)", "(Or "UNIX" ...)", "(After Ada Lovelace)": asides, not names
_NOT_AN_ALIAS = re.compile(r"^(see|in|named|after|or|formerly|previously|note|not|from|but|also|e\.g)\b|[\"?]", re.I)
_ALIAS_AFTER_TAGS = re.compile(r"^(?:\d\.\s*)?<[^>]*>\s*\(([^()]{1,60})\)")


def load_foldoc(path: Path | None = None, *, limit: int | None = None) -> list[Document]:
    """Parse FOLDOC into documents (one per entry; aliases share one entry).

    ``path`` is a folder with the dictd files (default: fetched into the data folder).
    """
    folder = Path(path) if path else fetch_foldoc()
    with gzip.open(folder / "foldoc.dict.dz") as f:
        raw = f.read()
    docs: list[Document] = []
    seen: set[int] = set()
    ids: set[str] = set()
    for line in (folder / "foldoc.index").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00-database"):
            continue
        offset, length = _b64(parts[1]), _b64(parts[2])
        if offset in seen:
            continue
        seen.add(offset)
        entry = raw[offset : offset + length].decode("utf-8", errors="replace")
        head, _, body = entry.partition("\n\n")
        names = [n.strip() for n in head.splitlines() if n.strip()]
        if not names or not body.strip():
            continue
        title = names[0]
        text = _clean(body)
        aliases = names[1:]
        # "<messaging, protocol> (POP) A protocol...": the parenthesis names it too
        m = _ALIAS_AFTER_TAGS.match(text)
        for alias in m.group(1).split(", ") if m else ():
            if alias not in names and len(alias.split()) <= 6 and not _NOT_AN_ALIAS.match(alias):
                aliases.append(alias)
        if len(names) > 1:
            text = f"{title} ({', '.join(names[1:])}): {text}"
        doc_id = f"foldoc:{title}"
        n = 2
        while doc_id in ids:  # a few headwords have several entries
            doc_id = f"foldoc:{title}#{n}"
            n += 1
        ids.add(doc_id)
        docs.append(Document(id=doc_id, title=title, text=text, source="FOLDOC", aliases=tuple(aliases)))
        if limit is not None and len(docs) >= limit:
            break
    if not docs:
        raise CorpusError(f"no FOLDOC entries found in {folder}")
    return docs


# -- the user's files ----------------------------------------------------------------------


def load_texts(texts: Mapping[str, str]) -> list[Document]:
    """Documents from ``{id: text}`` (the title is the id)."""
    return [Document(id=k, title=k, text=" ".join(v.split())) for k, v in texts.items() if v.strip()]


def load_files(paths: Iterable[str | Path]) -> list[Document]:
    """Documents from ``.txt`` / ``.md`` files (one per paragraph block) and ``.jsonl``.

    A ``.jsonl`` line is ``{"id": ..., "title": ..., "text": ..., "aliases": [...]}``
    (all but ``text`` optional). Folders are searched recursively. A malformed JSON line is an
    error that names the file and line.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix in (".txt", ".md", ".jsonl"))
        elif p.exists():
            files.append(p)
        else:
            raise CorpusError(f"no such file or folder: {p}")
    docs: list[Document] = []
    for f in files:
        if f.suffix == ".jsonl":
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    text = str(rec["text"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise CorpusError(f'{f}:{n}: expected {{"text": ...}} JSON ({exc})') from exc
                doc_id = str(rec.get("id", f"{f.name}:{n}"))
                aliases = tuple(str(a) for a in rec.get("aliases", ()))
                title = str(rec.get("title", doc_id))
                docs.append(Document(doc_id, title, " ".join(text.split()), source=str(f), aliases=aliases))
        else:
            blocks = [b for b in re.split(r"\n\s*\n", f.read_text(encoding="utf-8")) if b.strip()]
            for n, block in enumerate(blocks):
                first = block.strip().splitlines()[0].lstrip("# ").strip()
                docs.append(Document(id=f"{f.name}#{n}", title=first[:80], text=" ".join(block.split()), source=str(f)))
    return docs
