"""Split the assistant-style claims into a development part and a frozen held-out part.

    python eval/factcheck/assistant/split.py FILE.jsonl ...   # appends to dev.jsonl / heldout.jsonl
    python eval/factcheck/assistant/split.py --check          # verifies the committed split

The split is by **subject** (the FOLDOC entry a claim is about; for a claim whose subject
FOLDOC lacks, the subject's name), so no subject is in both parts: a held-out claim is
about an entry the checker was never developed or fitted on. A subject goes to the
held-out part when the SHA-256 of ``"assistant:" + subject.lower()`` is even, unless the
older sets (``eval/factcheck/{train,test}.jsonl``) already had a claim about it when the
held-out part was frozen (``old_subjects.txt``: the subjects those files recorded then;
the older sets were annotated with more entries later, which adds two subjects, *queue*
and *Domain Name System*, that the held-out part keeps).

Held-out claims are frozen: they are committed before the checker is changed against the
development part, and nothing from them may become a test input, a docstring example or
a few-shot example (``tests/apps/test_eval_sets.py`` checks the code for them).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OLD = [HERE.parent / "train.jsonl", HERE.parent / "test.jsonl"]


def subject_key(row: dict) -> str:
    """What the claim is about: its entry's headword, else the absent subject's name."""
    name = row.get("entry") or row.get("subject")
    if not name:
        raise ValueError(f"claim has neither entry nor subject: {row['claim']!r}")
    return str(name).removeprefix("foldoc:").split("#")[0].strip().lower()


def old_subjects() -> set[str]:
    """The subjects of the older sets when the held-out part was frozen."""
    return set((HERE / "old_subjects.txt").read_text().split("\n")) - {""}


def current_old_subjects() -> set[str]:
    """The subjects the older sets record now."""
    keys = set()
    for path in OLD:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for k in ("entry", "subject"):
                if row.get(k):
                    keys.add(subject_key({k: row[k], "claim": row["claim"]}))
    return keys


def part_of(key: str, old: set[str]) -> str:
    if key in old:
        return "dev"
    return "heldout" if int(hashlib.sha256(f"assistant:{key}".encode()).hexdigest(), 16) % 2 == 0 else "dev"


def check() -> None:
    old = old_subjects()
    seen: dict[str, str] = {}
    for part in ("dev", "heldout"):
        for n, line in enumerate((HERE / f"{part}.jsonl").read_text().splitlines(), 1):
            row = json.loads(line)
            key = subject_key(row)
            if part_of(key, old) != part or row.get("split") != part:
                sys.exit(f"{part}.jsonl:{n}: subject {key!r} belongs to {part_of(key, old)}")
            if seen.setdefault(key, part) != part:
                sys.exit(f"{part}.jsonl:{n}: subject {key!r} is in both parts")
    print(f"split ok: {len(seen)} subjects")


def main(argv: list[str]) -> None:
    if argv == ["--check"]:
        check()
        return
    old = old_subjects()
    out = {part: (HERE / f"{part}.jsonl").open("a") for part in ("dev", "heldout")}
    counts = {"dev": 0, "heldout": 0}
    for path in argv:
        for line in Path(path).read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            part = part_of(subject_key(row), old)
            row["split"] = part
            out[part].write(json.dumps(row) + "\n")
            counts[part] += 1
    print(counts)


if __name__ == "__main__":
    main(sys.argv[1:])
