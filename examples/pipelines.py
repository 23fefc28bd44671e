"""Small pipelines for `alto run` and `alto graph`.

echo '"SMTP moves mail. IMAP reads it."' | alto run examples/pipelines.py:sentences
alto graph examples/pipelines.py:nested --format mermaid
"""

from __future__ import annotations

import alto
from alto.llm import Sentences


def split_sentences(text: str) -> list[str]:
    return Sentences().split(text)


def words() -> alto.Pipeline:
    """Count words per input string."""
    p = alto.Pipeline("words")
    p.output(p.input().expand(str.split).map(len).aggregate(lambda text, lengths: len(lengths), name="count"))
    return p


def nested() -> alto.Pipeline:
    """document -> sentences -> words, aggregated back level by level (3 levels)."""
    p = alto.Pipeline("nested")
    sentences = p.input().expand(split_sentences, name="sentences")
    lengths = sentences.expand(str.split, name="words", replicas=2).map(len, replicas=2, name="length")
    per_sentence = lengths.aggregate(lambda s, ls: sum(ls), name="letters_per_sentence", replicas=2)
    p.output(per_sentence.aggregate(lambda doc, xs: xs, name="report"))
    return p


sentences = nested()
