"""Build the fact-check evaluation set from FOLDOC and the hand-written files.

    python eval/factcheck/build.py          # writes eval/factcheck/{train,test}.jsonl

Sources (each line keeps its ``source`` and ``kind``; see README.md here):

* ``generated``: claims made from FOLDOC entries by the rules below (deterministic,
  seeded), each with the entry it is about:
  - supported ``paraphrase``: the entry's first description, cut to its first clause and
    reworded (synonyms, "X is ..." form) -- not a copy of the entry's sentence;
  - supported / refuted ``year``: "X was developed in YEAR", the entry's year, or a year
    moved by 3-12 that appears nowhere in the entry;
  - supported / refuted ``creator``: "X was designed by NAME", the entry's name, or
    the name from another entry's "designed by" that does not appear in this entry;
  - supported / refuted ``expansion``: "X stands for ...", the entry's own expansion, or
    another acronym's;
  - refuted ``moved``: X with the description of another entry of the same category,
    keeping only descriptions with at least 3 key words absent from X's entry;
  - refuted ``negation``: a supported paraphrase negated ("is not").
* ``handwritten.jsonl``: written by hand -- supported paraphrases, refuted claims of
  the same kinds, and not-enough-info claims whose subjects are not in FOLDOC
  (checked below: the build fails if one is).
* ``smollm2.jsonl``: sentences of real SmolLM2-135M answers (``make demo``'s model, run
  on computing questions), labelled by hand against FOLDOC.

The split is by subject: the entry each claim is about, recorded in its line (``entry``;
``subject`` for a subject FOLDOC lacks), hashed -- so no subject is in both splits, and
the split does not move when the subject finder changes. A subject whose claim was
quoted in the code, tests, docs or prompts when the split was rebuilt (a 5-word run in
common, found by :func:`quoted_elsewhere`) is training-only (``TRAINING_ONLY``); the test
``tests/apps/test_eval_sets.py`` keeps it that way for every held-out claim.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from pathlib import Path

from alto.retrieval import load_foldoc
from alto_apps.grounding import Subjects, content_words

HERE = Path(__file__).resolve().parent
SEED = 7
N_PARAPHRASE = 70
N_MOVED = 55
N_YEAR = 24
N_CREATOR = 20
N_EXPANSION = 24
N_NEGATION = 16

_SYNONYMS = [
    (r"\bdesigned to\b", "meant to"),
    (r"\bdesigned for\b", "intended for"),
    (r"\ballows\b", "lets"),
    (r"\ballowing\b", "letting"),
    (r"\bused to\b", "employed to"),
    (r"\bused for\b", "employed for"),
    (r"\bused in\b", "found in"),
    (r"\bdeveloped\b", "created"),
    (r"\bprogramming language\b", "language for programming"),
    (r"\bcomputers\b", "machines"),
    (r"\bsoftware\b", "programs"),
    (r"\bprovides\b", "offers"),
    (r"\bsupports\b", "handles"),
    (r"\bvery\b", "highly"),
    (r"\bwhich\b", "that"),
]
_CATEGORIES = ("language", "protocol", "networking", "operating system", "hardware", "database", "processor", "storage")


def tag_and_body(text: str) -> tuple[list[str], str]:
    m = re.match(r"^(?:[^<]{0,200}?:\s*)?(?:1\.\s*)?<([^>]*)>\s*(.*)$", text)
    if not m:
        return [], text
    return [t.strip() for t in m.group(1).split(",")], m.group(2)


def first_description(body: str) -> str | None:
    """The entry's first sentence as a noun phrase, cut at its first clause."""
    body = re.sub(r"/[^/]{1,40}/", " ", body)  # pronunciation
    body = re.sub(r"\([^()]*\)", " ", body)  # asides, acronyms
    body = " ".join(body.split())
    sentence = re.split(r"(?<=[a-z)][.;])\s", body, maxsplit=1)[0].rstrip(".;")
    if not re.match(r"^(A|An|The)\s", sentence):
        return None
    cut = re.split(r",| which | where | whose | - ", sentence, maxsplit=1)[0]
    words = cut.split()
    if not 4 <= len(words) <= 18 or re.search(r"[\[\]\"{}<>?]|e\.g|i\.e|see ", cut):
        return None
    return cut[0].lower() + cut[1:]


def reword(description: str, rng: random.Random) -> str:
    out = description
    for pattern, new in rng.sample(_SYNONYMS, len(_SYNONYMS)):
        out = re.sub(pattern, new, out, count=1)
    return out


def subject_of(doc) -> str:
    """The entry's title; a long title gives way to its acronym."""
    if len(doc.title) > 24:
        short = [a for a in doc.aliases if a.isupper() and 2 <= len(a) <= 8]
        if short:
            return short[0]
    return doc.title


def expands(acronym: str, words: str) -> bool:
    """True if ``words`` spell out ``acronym`` (initials, ignoring small words)."""
    initials = "".join(w[0] for w in re.findall(r"[A-Za-z]+", words) if w.lower() not in {"of", "the", "and", "for"})
    letters = re.sub(r"[^A-Za-z]", "", acronym)
    return bool(letters) and initials.lower().startswith(letters.lower()[:2]) and len(initials) >= len(letters) - 1


def claim_case(text: str) -> str:
    return text[0].upper() + text[1:]


# Subjects whose claims the code, tests, docs or prompts quoted at the rebuild (the prompts'
# examples: Ethernet, Perl, Python; the module docs: SQL, POP, SMTP, IMAP; the old docs'
# error list: Trilogy, deadlock, router...). Frozen here so that editing the docs does not
# move claims between splits.
TRAINING_ONLY = frozenset(
    {
        "c", "deadlock", "ethernet", "fortran i", "hypertext transfer protocol", "internet message access protocol",
        "perl", "pop", "post office protocol", "prolog", "python", "router", "secure shell",
        "simple mail transfer protocol", "sql", "trilogy",
        "it was created at bell labs and has since become one of the most widely used unix systems worldwide, "
        "with applications ranging from web servers to embedded devices like computers running linux or macos.",
    }
)  # fmt: skip


def split_of(subject: str) -> str:
    h = int(hashlib.sha256(subject.lower().encode()).hexdigest(), 16)
    return "test" if h % 5 < 2 else "train"  # 40% held out


def subject_key(row: dict) -> str:
    """What the claim is about, as recorded in its line (never found again by code)."""
    name = row.get("entry") or row.get("subject") or row["claim"]
    return name.removeprefix("foldoc:").split("#")[0].strip().lower()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def quoted_elsewhere() -> str:
    """The text of the code, tests, docs and prompts, as one run of lower-case words."""
    root = HERE.parents[1]
    files = [root / "README.md", *root.glob("docs/*.md")]
    for folder in ("src", "tests", "examples", "benchmarks"):
        files += [f for f in (root / folder).rglob("*") if f.suffix in (".py", ".md", ".json")]
    return " ".join(" ".join(_words(f.read_text(errors="replace"))) for f in files)


def is_quoted(claim: str, text: str) -> bool:
    w = _words(claim)
    return any(" ".join(w[i : i + 5]) in text for i in range(len(w) - 4))


def generated(docs, rng: random.Random) -> list[dict]:
    usable = []
    for d in docs:
        tags, body = tag_and_body(d.text)
        if not set(tags) & set(_CATEGORIES) or d.title.startswith(("-", "'")) or len(d.title) < 2:
            continue
        desc = first_description(body)
        usable.append((d, tags, body, desc))
    rng.shuffle(usable)
    out: list[dict] = []

    def add(claim: str, label: str, kind: str, doc) -> None:
        out.append({"claim": claim_case(claim), "label": label, "source": "generated", "kind": kind, "entry": doc.id})

    with_desc = [u for u in usable if u[3]]
    for d, _, _, desc in with_desc[:N_PARAPHRASE]:
        add(f"{subject_of(d)} is {reword(desc, rng)}.", "supported", "paraphrase", d)
    for d, _, _, desc in with_desc[N_PARAPHRASE : N_PARAPHRASE + N_NEGATION]:
        add(f"{subject_of(d)} is not {reword(desc, rng)}.", "refuted", "negation", d)
    pool = with_desc[N_PARAPHRASE + N_NEGATION :]
    moved = 0
    for d, tags, _, _ in pool:
        if moved >= N_MOVED:
            break
        mine = content_words(d.text)
        for o, otags, _, odesc in rng.sample(pool, 12):
            if o is d or not set(tags) & set(otags) & set(_CATEGORIES):
                continue
            if len(content_words(odesc) - mine) >= 3 and subject_of(o).lower() not in d.text.lower():
                add(f"{subject_of(d)} is {reword(odesc, rng)}.", "refuted", "moved", d)
                moved += 1
                break
    year_re = re.compile(
        r"\b(developed|designed|invented|created|introduced|released|written)\b[^.]{0,60}?\bin ((?:19|20)\d\d)\b"
    )
    years = 0
    for d, _, body, _ in usable:
        m = year_re.search(" ".join(body.split()[:60]))
        if not m or years >= N_YEAR:
            continue
        verb, year = m.group(1), int(m.group(2))
        if years % 2 == 0:
            add(f"{subject_of(d)} was {verb} in {year}.", "supported", "year", d)
        else:
            wrong = year + rng.choice([-1, 1]) * rng.randint(3, 12)
            if str(wrong) in d.text:
                continue
            add(f"{subject_of(d)} was {verb} in {wrong}.", "refuted", "year", d)
        years += 1
    name_re = re.compile(r"\b(designed|invented|developed|created|written) by ([A-Z][a-z]+(?: [A-Z][a-z]+){1,2})\b")
    creators = [(d, m) for d, _, body, _ in usable if (m := name_re.search(" ".join(body.split()[:50])))]
    for n, (d, m) in enumerate(creators[:N_CREATOR]):
        name = m.group(2)
        if n % 2 == 1:
            others = [om.group(2) for od, om in creators if od is not d and om.group(2) not in d.text]
            name = rng.choice(others)
        add(f"{subject_of(d)} was {m.group(1)} by {name}.", "supported" if n % 2 == 0 else "refuted", "creator", d)
    acronyms = [
        (d, a)
        for d, _, _, _ in usable
        for a in d.aliases
        if d.title.isupper() and 2 <= len(d.title) <= 6 and len(a.split()) >= 2 and "?" not in a and expands(d.title, a)
    ]
    rng.shuffle(acronyms)
    for n, (d, a) in enumerate(acronyms[:N_EXPANSION]):
        if n % 2 == 1:
            a = rng.choice([oa for od, oa in acronyms if od is not d and oa.lower() not in d.text.lower()])
        add(f"{d.title} stands for {a}.", "supported" if n % 2 == 0 else "refuted", "expansion", d)
    return out


def main() -> None:
    docs = load_foldoc()
    subjects = Subjects(docs, parser=None)
    rng = random.Random(SEED)
    rows = generated(docs, rng)
    for name in ("handwritten.jsonl", "smollm2.jsonl"):
        for n, line in enumerate((HERE / name).read_text().splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                row.setdefault("source", name.split(".")[0])
                rows.append(row)
                if row["label"] == "not enough info" and row.get("kind") == "absent":
                    s = subjects.find(row["claim"])
                    if s is not None:
                        sys.exit(f"{name}:{n}: {row['claim']!r} names FOLDOC's {s.candidates[0].id}; not absent")
    elsewhere = quoted_elsewhere()
    quoted = {r["claim"] for r in rows if is_quoted(r["claim"], elsewhere)}
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for row in rows:
        key = subject_key(row)
        row["split"] = "train" if key in TRAINING_ONLY or row["claim"] in quoted else split_of(key)
        splits[row["split"]].append(row)
    for split, items in splits.items():
        with open(HERE / f"{split}.jsonl", "w") as f:
            for row in items:
                f.write(json.dumps(row) + "\n")
    counts = {
        split: {label: sum(r["label"] == label for r in items) for label in ("supported", "refuted", "not enough info")}
        for split, items in splits.items()
    }
    print(json.dumps({"total": len(rows), "by_split": counts}, indent=2))


if __name__ == "__main__":
    main()
