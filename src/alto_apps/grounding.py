"""Evidence verdicts for the fact-check app: find what a claim is about, then check it.

A claim such as "SQL is a local area network first described at Xerox PARC" is about a
**subject** (SQL) and says something **about it** (the predicate). :class:`Subjects`
finds the subject by name -- the longest FOLDOC headword, alias or acronym in the claim,
preferring the words before its verb -- so the subject's own entry is always evidence,
whatever the search queries found. :class:`EvidenceRule` then compares how well the
predicate fits the subject's entry against how well it fits the best *other* entry
(MiniLM similarity, shared key words), and whether its numbers and names appear in the
subject's entry. A logistic rule over those features, fitted on the training split of
``eval/factcheck`` (``eval/factcheck/fit.py``), says **supported** or **refuted**; a
claim whose subject is not in the corpus is **not enough info**.

What this checks: definitions and attributes that a dictionary entry states (what a
thing is, who made it, when, what an acronym stands for). What it does not: facts the
corpus does not hold, or reasoning across entries; a claim can be refuted only by its
own subject's entry or by another entry it better describes.

>>> from alto.retrieval import Document
>>> docs = [Document("d:1", "Structured Query Language", "A database language.", aliases=("SQL",)),
...         Document("d:2", "Ethernet", "A local area network.")]
>>> s = Subjects(docs).find("SQL is a local area network first described at Xerox PARC.")
>>> s.name, [d.id for d in s.candidates]
('SQL', ['d:1'])
>>> predicate("SQL is a local area network.", s)
'is a local area network.'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from alto.retrieval import Document

__all__ = ["FEATURES", "Assessment", "EvidenceRule", "Subject", "Subjects", "content_words", "predicate"]

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9+#]*(?:[./'][A-Za-z0-9+#]+)*")

# Words that are FOLDOC headwords (country codes, jargon) but never a claim's subject.
_STOP_WORDS = """
    a an the is are was were be been being it its this that these those there here
    and or but not no nor of to in on at by for from with as into onto over under
    than then so such can could may might must shall should will would do does did
    done has have had having which who whom whose what when where why how all any
    each every some many much more most other another one two three first second new
    old also only very just about after before between both during each few if while
    because since until up down out off again once use used uses using via per i we
    you he she they them us our your his her their my me example examples way ways
    thing things part kind type form used make made called known often usually
    typically generally commonly mainly mostly several various
"""
_STOP = frozenset(_STOP_WORDS.split())
_VERBS_WORDS = """
    is are was were has have had allows allow lets let enables enable uses use
    provides provide can could will would may might does do sends send receives
    receive runs run stores store defines define describes describe means mean
    refers refer stands stand became become works work supports support handles
    handle transfers transfer includes include consists consist contains contain
    operates operate acts act serves serve gives give makes make takes take creates
    create developed designed invented created written introduced released
"""
_VERBS = frozenset(_VERBS_WORDS.split())
_NEGATION = re.compile(r"\b(not|never|no longer|cannot|can't|isn't|aren't|wasn't|doesn't|don't|neither|nor)\b", re.I)
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_TAGS = re.compile(r"<[^>]*>")


def _tokens(text: str) -> list[re.Match[str]]:
    return list(_TOKEN.finditer(text))


_VARIANTS = {"email": "e mail", "emails": "e mail", "e-mails": "e mail"}
_PRONOUNS_WORDS = """
    it its they them this these that those he she we you which
"""
_PRONOUNS = frozenset(_PRONOUNS_WORDS.split())


def _key(name: str) -> str:
    words = (m.group(0).lower() for m in _tokens(name))
    return " ".join(_VARIANTS.get(w, w) for w in words)


def _stem(word: str) -> str:
    w = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def content_words(text: str) -> set[str]:
    """Stemmed words that carry meaning (no stop words, no one-letter tokens)."""
    return {_stem(m.group(0)) for m in _tokens(text) if len(m.group(0)) > 1 and m.group(0).lower() not in _STOP}


@dataclass(frozen=True)
class Subject:
    """What a claim is about: the name as written, where, and the entries of that name."""

    name: str
    start: int
    end: int
    candidates: tuple[Document, ...]


class Subjects:
    """Finds a claim's subject among the corpus's headwords, aliases and acronyms."""

    def __init__(self, docs: Iterable[Document], *, max_tokens: int = 8) -> None:
        self.names: dict[str, list[tuple[str, Document]]] = {}
        self.max_tokens = max_tokens
        for doc in docs:
            for name in (doc.title, *doc.aliases):
                key = _key(name)
                if key and len(key.split()) <= max_tokens:
                    self.names.setdefault(key, []).append((name, doc))

    def find(self, claim: str) -> Subject | None:
        """The subject of ``claim``, or ``None`` if it names no entry it is about.

        Names before the claim's verb win over names after it, proper names (with a
        capital) over common words, longer over shorter. A claim whose subject is an
        unknown proper name ("Kubernetes is ...") or a pronoun ("It is ...") has none.
        """
        toks = _tokens(claim)
        if toks and toks[0].group(0).lower() in _PRONOUNS:
            return None  # "It is ...": the subject is in another sentence
        verb = next((i for i, m in enumerate(toks) if i > 0 and m.group(0).lower() in _VERBS), min(len(toks), 6))
        found: list[tuple[tuple[int, ...], int, Subject]] = []
        for i in range(len(toks)):
            for j in range(min(len(toks), i + self.max_tokens), i, -1):
                start, end = toks[i].start(), toks[j - 1].end()
                written = claim[start:end]
                key = _key(written)
                entries = self.names.get(key)
                if not entries and j == i + 1 and len(key) > 3 and key.endswith("s"):
                    entries = self.names.get(key[:-1])  # "bytes" -> "byte"
                    written = written[:-1] if entries else written
                if not entries:
                    continue
                docs = self._matching(written, entries, sentence_start=i == 0)
                if docs:
                    name = int(any(c.isupper() for c in written) and not (i == 0 and written[1:].islower()))
                    rank = (name, j - i, -i)
                    found.append((rank, j, Subject(written, start, end, docs)))
                    break  # the longest name starting here
        first = toks[0].group(0) if toks else ""
        if first[:1].isupper() and first.lower() not in _STOP | _PRONOUNS and not any(f[2].start == 0 for f in found):
            return None  # "Docker packages ...": an unknown name leads the claim: it is about that
        before_verb = [f for f in found if f[1] <= verb]
        if before_verb:
            return max(before_verb, key=lambda f: f[0])[2]
        head = [m.group(0) for m in toks[:verb]]
        if not head or all(w.lower() in _PRONOUNS | _STOP for w in head):
            return None  # "It is ...": the subject is elsewhere in the text
        if any(w[:1].isupper() and w.lower() not in _STOP for w in head):
            return None  # an unknown name leads the claim: it is about that
        return max(found, key=lambda f: f[0])[2] if found else None

    @staticmethod
    def _matching(written: str, entries: list[tuple[str, Document]], sentence_start: bool) -> tuple[Document, ...]:
        single = " " not in written.strip()
        if single and written.lower() in _STOP:
            return ()
        capitalised_first_word = sentence_start and written[:1].isupper() and written[1:].islower()
        exact = tuple(dict.fromkeys(d for name, d in entries if name == written))
        if exact and not capitalised_first_word:
            return exact
        if single and len(written) <= 4 and not (sentence_start and written[:1].isupper()):
            # "it" is not "IT", "pop" is not "POP": short names must match their case
            return ()
        if written.islower() and all(name.isupper() for name, _ in entries):
            return ()  # "converts" is not the acronym CONVERT
        return tuple(dict.fromkeys(d for _, d in entries))


def predicate(claim: str, subject: Subject) -> str:
    """What the claim says about its subject: the claim without the subject's name
    (and without an alias in parentheses right after it)."""
    rest = claim[subject.end :]
    rest = re.sub(r"^\s*\([^()]{1,40}\)", "", rest)
    head = claim[: subject.start]
    head = re.sub(r"\b(the|a|an)\s*$", "", head, flags=re.I)
    return " ".join((head + " " + rest).split())


def _passages(doc: Document, limit: int = 6) -> list[str]:
    """The entry's first sentences, without its title line and category tags."""
    text = doc.text
    if text.startswith(doc.title) and ":" in text[: len(doc.title) + 200]:
        text = text.split(":", 1)[1]
    text = _TAGS.sub(" ", text)
    parts = [p.strip() for p in re.split(r"(?<=[.;!?])\s+", text) if len(p.strip()) > 12]
    return [p[:300] for p in parts[:limit]] or [text[:300]]


FEATURES = (
    "s_subj",  # best MiniLM cosine of the predicate and a sentence of the subject's entry
    "s_other",  # the same, best over the other evidence entries
    "margin",  # s_subj - s_other: does the description belong to another entry?
    "lex_subj",  # share of the predicate's key words found in the subject's entry
    "lex_other",  # the same, best other entry
    "num_missing",  # numbers in the claim absent from the subject's entry (entry has numbers)
    "num_found",  # numbers in the claim that the subject's entry states
    "names_missing",  # share of capitalised names in the predicate absent from the entry
    "negated",  # the claim says "not", "never", ...
)


@dataclass(frozen=True)
class Assessment:
    """The evidence rule's decision on one claim, with what it rests on."""

    label: str
    subject: Document | None
    conflict: Document | None  # the other entry the description fits best (cited when refuted)
    probability: float  # of "refuted", from the fitted rule
    features: dict[str, float] = field(default_factory=dict)
    reason: str = ""


def _load_weights() -> dict[str, Any]:
    return json.loads(resources.files("alto_apps").joinpath("verdict_rule.json").read_text())


class EvidenceRule:
    """Supported / refuted / not enough info from a claim's subject entry and evidence.

    ``embed`` is a function ``list[str] -> normalised vectors`` (e.g. ``Dense.embed``);
    ``weights`` a fitted rule (default: the one shipped, fitted on ``eval/factcheck``).
    """

    def __init__(self, embed: Any, weights: dict[str, Any] | None = None) -> None:
        self.embed = embed
        self.weights = weights or _load_weights()
        self._passage_vectors = lru_cache(maxsize=4096)(self._vectors)

    def _vectors(self, doc: Document) -> Any:
        return self.embed(_passages(doc))

    def features(self, claim: str, subject: Subject, evidence: Sequence[Document]) -> tuple[dict[str, float], Any]:
        """The rule's inputs, and the subject's chosen entry and best other entry."""
        pred = predicate(claim, subject) or claim
        pv = self.embed([pred])[0]
        # several entries of one name (Byte the magazine, byte the unit): the one the claim fits
        scored = [(float((self._passage_vectors(d) @ pv).max()), d) for d in subject.candidates]
        s_subj, entry = max(scored, key=lambda t: t[0])
        names = {_key(n) for n in (entry.title, *entry.aliases)}
        # Entries the claim names ("designed by David Turner", "a kind of data structure",
        # "(POP3)") are what it relates its subject to, not rivals for its description.
        said = f" {_key(claim[: subject.start] + ' ' + claim[subject.end :])} "
        others = [
            d
            for d in evidence
            if d.id != entry.id
            and _key(d.title) not in names
            and not any(f" {k} " in said for k in map(_key, (d.title, *d.aliases)) if k)
        ]
        s_other, other = max(
            ((float((self._passage_vectors(d) @ pv).max()), d) for d in others), key=lambda t: t[0], default=(0.0, None)
        )
        words = content_words(pred) - content_words(subject.name)
        entry_words = content_words(entry.text)
        lex_subj = len(words & entry_words) / len(words) if words else 0.0
        lex_other = max((len(words & content_words(d.text)) / len(words) for d in others if words), default=0.0)
        claim_numbers = set(_NUMBER.findall(pred))
        entry_numbers = set(_NUMBER.findall(entry.text))
        num_missing = float(len(claim_numbers - entry_numbers)) if entry_numbers else 0.0
        num_found = float(len(claim_numbers & entry_numbers))
        caps = {
            m.group(0)
            for i, m in enumerate(_tokens(pred))
            if m.group(0)[:1].isupper() and m.group(0).lower() not in _STOP and i > 0
        }
        names_missing = len({c for c in caps if c.lower() not in entry.text.lower()}) / len(caps) if caps else 0.0
        feats = {
            "s_subj": s_subj,
            "s_other": s_other,
            "margin": s_subj - s_other,
            "lex_subj": lex_subj,
            "lex_other": lex_other,
            "num_missing": min(num_missing, 2.0),
            "num_found": min(num_found, 2.0),
            "names_missing": names_missing,
            "negated": float(bool(_NEGATION.search(claim))),
        }
        return feats, (entry, other)

    def probability(self, feats: dict[str, float]) -> float:
        """P(refuted) under the fitted logistic rule."""
        w = self.weights
        z = w["bias"] + sum(w["coef"][k] * (feats[k] - w["mean"][k]) / w["scale"][k] for k in FEATURES)
        return 1.0 / (1.0 + math.exp(-z))

    def assess(self, claim: str, subject: Subject | None, evidence: Sequence[Document]) -> Assessment:
        if subject is None:
            return Assessment("not enough info", None, None, 0.0, reason="its subject is not in the corpus")
        feats, (entry, other) = self.features(claim, subject, evidence)
        p = self.probability(feats)
        if p < self.weights["threshold"]:
            return Assessment("supported", entry, None, p, feats, f"fits the entry {entry.title!r}")
        if other is not None and feats["margin"] < 0:
            reason = f"describes {other.title!r}, not {entry.title!r}"
        else:
            reason = f"disagrees with the entry {entry.title!r}"
            other = None
        return Assessment("refuted", entry, other, p, feats, reason)
