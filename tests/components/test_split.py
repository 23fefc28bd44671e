"""Incremental splitters: streamed parts equal the parts of the whole text, for any chunking."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alto.llm import SPLITTERS, JsonArrayItems, ListItems, Sentences, split_stream


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(text[last:p])
        last = p
    pieces.append(text[last:])
    return pieces


def stream_parts(kind: str, pieces: list[str]) -> list:
    s = SPLITTERS[kind]()
    out = []
    for piece in pieces:
        out += s.feed(piece)
    return out + s.flush()


ALPHABET = st.sampled_from(list('ab .!?\n-*12)[]{},:"\\e.g') + ["e.g. ", "1. ", "- ", '"x, y"', "\n\n"])
texts = st.lists(ALPHABET, max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SPLITTERS)), texts, st.lists(st.integers(0, 200), max_size=12))
def test_any_chunking_gives_the_parts_of_the_whole(kind, text, cuts):
    whole = SPLITTERS[kind]().split(text)
    assert stream_parts(kind, chunked(text, cuts)) == whole
    assert stream_parts(kind, list(text)) == whole  # one character at a time


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(), st.text(max_size=8), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
        max_size=6,
    ),
    st.lists(st.integers(0, 300), max_size=10),
)
def test_json_items_roundtrip(values, cuts):
    text = "Here you go: " + json.dumps(values) + " done"
    assert stream_parts("json", chunked(text, cuts)) == values


def test_parts_are_emitted_as_soon_as_complete():
    s = Sentences()
    assert s.feed("SMTP moves mail between servers") == []
    assert s.feed(".") == []  # could still be "servers.com"
    assert s.feed(" It") == ["SMTP moves mail between servers."]
    assert s.feed(" uses port 25, e.g. for relays. ") == ["It uses port 25, e.g. for relays."]
    li = ListItems()
    assert li.feed("Claims:\n1. SMTP is a protocol\n2) IMA") == ["SMTP is a protocol"]
    assert li.feed("P reads mail") == []
    assert li.flush() == ["IMAP reads mail"]
    js = JsonArrayItems()
    assert js.feed('["a", {"b": [1, 2]}') == ["a"]
    assert js.feed(", 3]") == [{"b": [1, 2]}, 3]


@pytest.mark.parametrize(
    ("kind", "text", "parts"),
    [
        ("lines", "a\n\n b \nc", ["a", "b", "c"]),
        ("list", "Sure!\n- one\n* two\n3. three\n(4) four\nnot an item", ["one", "two", "three", "four"]),
        ("sentences", "Dr. Who is here. Is it? Yes!", ["Dr. Who is here.", "Is it?", "Yes!"]),
        ("json", 'x [1, "two", bad, [3]] y', [1, "two", [3]]),
    ],
)
def test_examples(kind, text, parts):
    assert SPLITTERS[kind]().split(text) == parts


def test_split_stream_async():
    async def tokens():
        for t in ["1. a", "\n2", ". b\n"]:
            yield t

    async def main():
        return [p async for p in split_stream(tokens(), "list")]

    assert asyncio.run(main()) == ["a", "b"]
