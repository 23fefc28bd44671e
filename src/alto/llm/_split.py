"""Incremental splitters: turn a token stream into parts the moment each part is complete.

A splitter is fed chunks of text as a model generates them (:meth:`Splitter.feed`)
and returns every part completed by that chunk; :meth:`Splitter.flush` returns the
last part when the stream ends. For any text and any chunking of it, the parts equal
``splitter.split(text)`` of the whole text.

>>> s = Sentences()
>>> s.feed("SMTP moves mail. IMA")
['SMTP moves mail.']
>>> s.feed("P reads it.") + s.flush()
['IMAP reads it.']

Use :func:`split_stream` to turn an async token stream into an async stream of parts:
an ``expand`` built on it sends each part downstream while the model is still writing.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import Any

__all__ = ["SPLITTERS", "JsonArrayItems", "Lines", "ListItems", "Sentences", "Splitter", "split_stream"]


class Splitter:
    """Base class: subclasses implement :meth:`_take`, which consumes complete parts."""

    def __init__(self) -> None:
        self._buf = ""

    def feed(self, chunk: str) -> list[str]:
        """Add generated text; return the parts it completed (possibly none)."""
        self._buf += chunk
        return self._take(final=False)

    def flush(self) -> list[str]:
        """The stream ended: return what is left as final parts."""
        parts = self._take(final=True)
        self._buf = ""
        return parts

    def split(self, text: str) -> list[str]:
        """Split a whole text (the reference the incremental result must equal)."""
        fresh = type(self)()
        return fresh.feed(text) + fresh.flush()

    def _take(self, final: bool) -> list[str]:
        raise NotImplementedError


class Lines(Splitter):
    """Non-empty lines, stripped. A line is complete at its newline."""

    def _take(self, final: bool) -> list[str]:
        *done, rest = self._buf.split("\n")
        if final:
            done.append(rest)
            rest = ""
        self._buf = rest
        return [line.strip() for line in done if line.strip()]


_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)]|\(\d{1,3}\)|[a-zA-Z][.)](?=\s))\s+")


class ListItems(Lines):
    """Items of a numbered or bulleted list (``1.``, ``2)``, ``-``, ``*``, ``•``).

    Markers are removed; lines that are not list items (a preamble such as "Here are
    the claims:") are skipped.
    """

    def _take(self, final: bool) -> list[str]:
        items = []
        for line in super()._take(final):
            m = _BULLET.match(line)
            if m:
                item = line[m.end() :].strip()
                if item:
                    items.append(item)
        return items


# A sentence ends at . ! or ? (optionally followed by quotes/brackets) before
# whitespace, unless the word before it is a common abbreviation, a single letter or a
# list number ("1."); a blank line also ends one.
_END = re.compile(r"[.!?][\"')\]]*(?=\s)|\n[ \t]*\n")
_ABBREV = {"e.g", "i.e", "etc", "vs", "mr", "mrs", "dr", "prof", "fig", "no", "approx", "cf"}


class Sentences(Splitter):
    """Sentences. A sentence is complete once the whitespace after its final mark arrives."""

    def _take(self, final: bool) -> list[str]:
        parts = []
        start = 0
        buf = self._buf
        for m in _END.finditer(buf):
            if buf[m.start()] == ".":
                word = buf[start : m.start()].split()[-1:] or [""]
                stem = word[0].lower().rstrip(".")
                if stem in _ABBREV or (len(stem) == 1 and stem.isalpha()) or (stem.isdigit() and len(stem) <= 2):
                    continue
            sentence = " ".join(buf[start : m.end()].split())
            if sentence:
                parts.append(sentence)
            start = m.end()
        rest = buf[start:]
        if final:
            tail = " ".join(rest.split())
            if tail:
                parts.append(tail)
            rest = ""
        self._buf = rest
        return parts


class JsonArrayItems(Splitter):
    """Items of a JSON array (``[1, {"a": 2}, "x"]``), each decoded once it is complete.

    Parts are the decoded values (str, number, dict, list). Text before the opening
    ``[`` is ignored; an item that is not valid JSON is skipped.
    """

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._pos = 0  # next character of _buf to scan
        self._item_start = 0
        self._closed = False

    def _take(self, final: bool) -> list[Any]:
        out: list[Any] = []
        buf = self._buf
        i = self._pos
        while i < len(buf) and not self._closed:
            c = buf[i]
            if not self._started:
                if c == "[":
                    self._started = True
                    self._item_start = i + 1
            elif self._in_string:
                if self._escape:
                    self._escape = False
                elif c == "\\":
                    self._escape = True
                elif c == '"':
                    self._in_string = False
            elif c == '"':
                self._in_string = True
            elif c in "[{":
                self._depth += 1
            elif c in "]}":
                if self._depth == 0 and c == "]":
                    self._emit(buf[self._item_start : i], out)
                    self._closed = True
                else:
                    self._depth -= 1
            elif c == "," and self._depth == 0:
                self._emit(buf[self._item_start : i], out)
                self._item_start = i + 1
            i += 1
        # Drop what was consumed so the buffer stays small.
        cut = min(self._item_start, i)
        self._buf = buf[cut:]
        self._item_start -= cut
        self._pos = i - cut
        if final:
            if self._started and not self._closed:
                self._emit(self._buf[self._item_start :], out)
            self.__init__()  # type: ignore[misc]
        return out

    @staticmethod
    def _emit(raw: str, out: list[Any]) -> None:
        raw = raw.strip()
        if not raw:
            return
        try:
            value = json.loads(raw)
        except ValueError:
            return
        out.append(value)


SPLITTERS: dict[str, type[Splitter]] = {
    "lines": Lines,
    "list": ListItems,
    "sentences": Sentences,
    "json": JsonArrayItems,
}


async def split_stream(
    tokens: AsyncIterable[str] | Iterable[str], splitter: Splitter | str
) -> AsyncGenerator[str, None]:
    """Yield each part of a token stream as soon as it is complete.

    >>> import asyncio
    >>> async def main():
    ...     return [s async for s in split_stream(["It is.", " So", " true."], "sentences")]
    >>> asyncio.run(main())
    ['It is.', 'So true.']
    """
    sp = SPLITTERS[splitter]() if isinstance(splitter, str) else splitter
    if hasattr(tokens, "__aiter__"):
        try:
            async for chunk in tokens:
                for part in sp.feed(chunk):
                    yield part
        finally:
            aclose = getattr(tokens, "aclose", None)
            if aclose is not None:
                await aclose()  # stop the generation now if our consumer left early
    else:
        for chunk in tokens:
            for part in sp.feed(chunk):
                yield part
    for part in sp.flush():
        yield part
