"""Fact-check verdicts from evidence: subjects, the evidence rule, the query filter, and
``alto eval factcheck``."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from alto.cli import app
from alto.llm import LLM
from alto.retrieval import BM25, Document
from alto_apps.factcheck import FactCheckConfig, _Verification, copies_example
from alto_apps.grounding import (
    EvidenceRule,
    Subjects,
    category_conflict,
    digits,
    expansion_conflict,
    name_conflict,
    negation_conflict,
    number_conflict,
    opposite_conflict,
    predicate,
)


def doc(title: str, text: str, *aliases: str) -> Document:
    return Document(f"t:{title}", title, text, aliases=aliases)


DOCS = [
    doc("Structured Query Language", "A language for querying relational databases, developed by IBM.", "SQL"),
    doc("Ethernet", "A local area network first described at Xerox PARC in 1976."),
    doc("Post Office Protocol", "A protocol to retrieve electronic mail from a server.", "POP"),
    doc("POP", "A family of programming languages from Edinburgh."),
    doc("IT", "Information Technology."),
    doc("byte", "A unit of storage, nearly always eight bits."),
    doc("Byte", "A popular computing magazine."),
    doc("programming language", "A formal language for writing programs."),
    doc("C", "A programming language designed by Dennis Ritchie at Bell Labs in 1972."),
]


@pytest.mark.parametrize(
    ("claim", "name", "ids"),
    [
        ("SQL is a local area network first described at Xerox PARC.", "SQL", {"t:Structured Query Language"}),
        # an alias shared by two entries: both are candidates (the rule picks by fit)
        ("POP is a version of IMAP with encryption.", "POP", {"t:Post Office Protocol", "t:POP"}),
        ("The Post Office Protocol (POP) fetches mail.", "Post Office Protocol", {"t:Post Office Protocol"}),
        # a proper name before the verb beats a longer common headword
        ("The C programming language was designed by Dennis Ritchie.", "C", {"t:C"}),
        ("Bytes are made of eight bits.", "Byte", {"t:byte", "t:Byte"}),  # plural, sentence case
        ("A byte holds one character.", "byte", {"t:byte"}),
    ],
)
def test_subject_is_the_named_entry(claim, name, ids):
    s = Subjects(DOCS).find(claim)
    assert s is not None and s.name == name and {d.id for d in s.candidates} == ids
    assert claim[s.start : s.end].lower().startswith(name.lower())


@pytest.mark.parametrize(
    "claim",
    [
        "It is a protocol used to send mail.",  # a pronoun: the subject is elsewhere
        "Kubernetes is a container orchestration programming language.",  # unknown name leads
        "it was the best of times and the worst of times.",  # "it" is not "IT"
    ],
)
def test_no_subject(claim):
    assert Subjects(DOCS).find(claim) is None


def test_predicate_drops_the_subject_and_its_alias():
    s = Subjects(DOCS).find("The Post Office Protocol (POP) fetches mail.")
    assert predicate("The Post Office Protocol (POP) fetches mail.", s) == "fetches mail."


def test_query_filter_drops_partial_copies_of_the_prompt_example():
    class Lists(LLM):
        async def _stream(self, messages, **kw):
            for line in ["1. Fortran programming language creator\n", "2. Guido van Rossum\n", "3. Fortran numerics\n"]:
                yield line

    v = _Verification(Lists(), BM25(DOCS, cache=False), config=FactCheckConfig(queries_per_claim=3))

    async def collect():
        return [q["query"] async for q in v.queries({"claim": "Fortran is a language for numerical work."})]

    assert asyncio.run(collect()) == ["Fortran is a language for numerical work.", "Fortran numerics"]
    assert copies_example("Guido van Rossum", "Fortran is old.")
    assert not copies_example("Guido van Rossum", "Python was created by Guido van Rossum.")


@pytest.fixture(scope="module")
def rule(subset_dense):
    return EvidenceRule(subset_dense.embed)


def test_rule_refutes_a_description_that_belongs_to_another_entry(rule, foldoc):
    by_title = {d.title: d for d in foldoc}
    sql, ethernet = by_title["SQL"], by_title["Ethernet"]
    subjects = Subjects([sql, ethernet])
    claim = "SQL is a local area network first described at Xerox PARC."
    a = rule.assess(claim, subjects.find(claim), [ethernet, sql])
    assert a.label == "refuted" and a.subject is sql and a.conflict is ethernet
    assert "Ethernet" in a.reason and "SQL" in a.reason
    claim = "SQL is a standard language for querying relational databases."
    a = rule.assess(claim, subjects.find(claim), [ethernet, sql])
    assert a.label == "supported" and a.subject is sql and a.conflict is None


def test_rule_refutes_wrong_numbers_and_names(rule, foldoc):
    by_title = {d.title: d for d in foldoc}
    python, perl = by_title["Python"], by_title["Perl"]
    subjects = Subjects([python, perl])
    for claim, label in [
        ("Python was invented by Guido van Rossum in 1991.", "supported"),
        ("Python was invented by Bill Gates in 1991.", "refuted"),
        ("Python was invented by Guido van Rossum in 2005.", "refuted"),
    ]:
        assert rule.assess(claim, subjects.find(claim), [perl, python]).label == label, claim


def test_without_a_subject_it_is_not_enough_info(rule):
    a = rule.assess("Kubernetes orchestrates containers.", None, [])
    assert a.label == "not enough info" and a.subject is None


def test_eval_command_scores_claims_on_a_small_corpus(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"id": d.id, "title": d.title, "text": d.text, "aliases": list(d.aliases)}) for d in DOCS)
    )
    claims = tmp_path / "claims.jsonl"
    rows = [
        {"claim": "SQL is a language for querying relational databases.", "label": "supported"},
        {"claim": "SQL is a local area network first described at Xerox PARC.", "label": "refuted"},
        {"claim": "Kubernetes orchestrates containers.", "label": "not enough info"},
    ]
    claims.write_text("\n".join(map(json.dumps, rows)) + "\n")
    out = tmp_path / "result.json"
    done = CliRunner().invoke(
        app, ["eval", "factcheck", str(claims), "--corpus", str(corpus), "--llm", "simulated", "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    result = json.loads(out.read_text())
    assert result["n"] == 3 and {"accuracy", "nei_share", "confusion", "per_label", "in_corpus"} <= set(result)
    assert sum(sum(row.values()) for row in result["confusion"].values()) == 3
    assert [it["gold"] for it in result["items"]] == [r["label"] for r in rows]
    # the absent subject is never guessed
    assert result["items"][2]["predicted"] == "not enough info"
    assert "accuracy" in done.output and "95% CI" in done.output
    low, high = result["in_corpus"]["accuracy_ci"]
    assert 0 <= low <= result["in_corpus"]["accuracy"] <= high <= 1
    assert result["absent"]["n"] == 1 and result["by_construction"]["n"] == 0


def test_scores_count_not_enough_info_by_construction_apart():
    from alto_apps.evaluate import score, wilson

    rows = [
        {"claim": "a", "label": "supported", "source": "x"},
        {"claim": "b", "label": "not enough info", "kind": "absent", "source": "x"},
        {"claim": "c", "label": "not enough info", "kind": "pronoun", "source": "y"},
    ]
    m = score(rows, ["refuted", "not enough info", "supported"])
    assert m["absent"]["n"] == 1 and m["absent"]["nei_share"] == 1.0
    assert m["by_construction"]["n"] == 1 and m["by_construction"]["nei_share"] == 0.0
    assert m["in_corpus"]["accuracy"] == 0.0 and m["by_source"]["x"]["in_corpus"]["n"] == 1
    low, high = wilson(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35  # zero successes still leave room


def test_eval_command_names_a_bad_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"claim": "x", "label": "maybe"}\n')
    done = CliRunner().invoke(app, ["eval", "factcheck", str(bad), "--llm", "simulated"])
    assert done.exit_code != 0 and "bad.jsonl:1" in done.output and "maybe" in done.output


def test_pipeline_refutes_a_false_claim_and_cites_the_entry_it_describes(foldoc, tmp_path):
    """The demo's pipeline end to end (a scripted answer, real MiniLM and the fitted rule):
    a false claim in the answer comes out refuted, citing the entry it describes."""
    import alto
    from alto.retrieval import Dense, Hybrid
    from alto_apps.factcheck import build_pipeline

    keep = {
        "SQL",
        "Ethernet",
        "Simple Mail Transfer Protocol",
        "Post Office Protocol",
        "Internet Message Access Protocol",
    }
    docs = [d for d in foldoc if d.title in keep] + foldoc[:: max(1, len(foldoc) // 60)]
    dense = Dense(docs, cache=tmp_path)

    class Answers(LLM):
        async def _stream(self, messages, **kw):
            last = messages[-1]["content"]
            if "Entries:" in last:
                text = "SUPPORTED"
            elif "search queries" in last:
                text = "1. database language\n"
            else:
                text = (
                    "SQL is a local area network first described at Xerox PARC. "
                    "SMTP transfers electronic mail between computers. "
                )
            for word in text.split(" "):
                yield word + " "

    p = build_pipeline(Answers(), Hybrid([BM25(docs, cache=False), dense]), scorer=dense)
    [report] = alto.run(p, ["What are SQL and SMTP?"])
    by_claim = {v["claim"]: v for v in report["verdicts"]}
    sql = by_claim["SQL is a local area network first described at Xerox PARC."]
    assert sql["label"] == "refuted" and sql["subject"] == "SQL" and sql["conflict"] == "Ethernet"
    assert sql["source"] == "evidence-rule" and sql["llm_label"] == "supported"  # the LLM's label does not decide
    cited = {e["id"]: e["title"] for e in sql["evidence"] if e["id"] in sql["cited"]}
    assert set(cited.values()) == {"SQL", "Ethernet"}
    smtp = by_claim["SMTP transfers electronic mail between computers."]
    assert smtp["label"] == "supported" and smtp["subject"] == "Simple Mail Transfer Protocol"
    assert smtp["evidence"][0]["title"] == "Simple Mail Transfer Protocol"  # the subject's entry is E1
    assert report["counts"]["refuted"] == 1


# -- reading the sentence: subjects past fronted clauses, appositives, possessives -----------

SENTENCE_DOCS = [
    doc(
        "Frobnitz Transfer Protocol",
        "<protocol> (FTPX) A protocol to move frobs, designed by Ada Quux in 1983.",
        "FTPX",
    ),
    doc("widget", "<hardware> A small device that counts frobs in eight-bit registers."),
    doc("shell", "<operating system> A command interpreter."),
    doc("Zork Labs", "<company> A company that made frob tools."),
    doc("Glorp", "<language> A lazy functional language designed by Bea Zed at Zork Labs in 1990."),
    doc("Glorp compiler", "<program> The compiler for Glorp, written in 1992."),
    doc("random-access memory", "<storage> Memory whose words can be read in any order.", "RAM"),
    doc("dynamic random-access memory", "<storage> RAM that must be refreshed.", "DRAM"),
]


@pytest.mark.parametrize(
    ("claim", "title"),
    [
        ("Introduced in 1983, FTPX moves frobs between hosts.", "Frobnitz Transfer Protocol"),  # fronted clause
        ("Designed by Ada Quux, the Frobnitz Transfer Protocol moves frobs.", "Frobnitz Transfer Protocol"),
        ("FTPX, the protocol Zork Labs used, moves frobs.", "Frobnitz Transfer Protocol"),  # appositive with a name
        ("FTPX's packets carry frobs.", "Frobnitz Transfer Protocol"),  # possessive
        ("Widgets count frobs in registers.", "widget"),  # plural, sentence case
        ("A shell reads commands.", "shell"),  # a headword that is a common word
        ("The Glorp compiler was written in 1992.", "Glorp compiler"),  # the longest name of the phrase
        ("Dynamic RAM must be refreshed.", "dynamic random-access memory"),  # an adjective + an alias
    ],
)
def test_subject_is_the_grammatical_subject(claim, title):
    s = Subjects(SENTENCE_DOCS).find(claim)
    assert s is not None and title in {d.title for d in s.candidates}, (claim, s)


@pytest.mark.parametrize(
    "claim",
    [
        "The Blarg protocol moves frobs like FTPX does.",  # an unknown name before the head noun
        "Zork Labs' Blarg compiler translates Glorp programs.",  # unknown, though two entries are named
        "Blarg, the successor of Glorp, is a strict language.",  # an unknown name with an appositive
        "Developed at Zork Labs, Blarg replaced Glorp.",  # fronted clause, then an unknown name
    ],
)
def test_no_subject_when_the_grammatical_subject_is_unknown(claim):
    assert Subjects(SENTENCE_DOCS).find(claim) is None


def test_word_order_is_used_without_a_parser():
    s = Subjects(SENTENCE_DOCS, parser=None).find("Developed by Ada Quux, FTPX moves frobs.")
    assert s is not None and s.name == "FTPX"


@pytest.mark.parametrize(
    ("check", "claim", "entry", "expected"),
    [
        (
            number_conflict,
            "It counts frobs in sixteen-bit registers.",
            "counts frobs in eight-bit registers.",
            ("16", "8"),
        ),
        (number_conflict, "It was designed in 1987.", "It was designed by Ada Quux in 1983.", ("1987", "1983")),
        (number_conflict, "It counts frobs in eight-bit registers.", "counts frobs in eight-bit registers.", None),
        (
            name_conflict,
            "It was designed by Bea Zed.",
            "A protocol designed by Ada Quux in 1983.",
            ("Bea Zed", "Ada Quux"),
        ),
        (name_conflict, "It was designed by Ada Quux.", "designed by Ada Quux.", None),
        (name_conflict, "It was built at UC Zorkley.", "built at UCZ in 1990.", None),  # initials
        (opposite_conflict, "Glorp is a strict language.", "A lazy functional language.", ("strict", "lazy")),
        (
            opposite_conflict,
            "It works at the network layer.",
            "It works at the data link layer.",
            ("network layer", "data link layer"),
        ),
        (opposite_conflict, "It is lazy and strict.", "A lazy language.", None),
        (
            negation_conflict,
            "Glorp is limited to frobs.",
            "Glorp is not limited to frobs.",
            ("Glorp is limited to frobs.", "Glorp is not limited to frobs."),
        ),
        (negation_conflict, "Glorp is limited to frobs.", "Glorp is limited to frobs.", None),
        (
            category_conflict,
            "Glorp is an early computer.",
            "<language> A lazy functional language.",
            ("computer", "language"),
        ),
        (category_conflict, "Glorp is a functional language.", "<language> A lazy functional language.", None),
    ],
)
def test_conflict_checks_need_the_entry_to_say_otherwise(check, claim, entry, expected):
    assert check(claim, entry) == expected


def test_expansion_conflict_compares_with_the_entry_names():
    subjects = Subjects(SENTENCE_DOCS)
    ftpx = SENTENCE_DOCS[0]
    for claim, bad in [
        ("FTPX stands for Frobnitz Transfer Protocol.", False),
        ("FTPX stands for Fast Table Packing eXchange.", True),
    ]:
        got = expansion_conflict(claim, subjects.find(claim), ftpx)
        assert (got is not None) == bad, claim


def test_numbers_in_words_become_digits():
    assert digits("seventy-two words of twelve bits, one at a time") == "72 words of 12 bits, one at a time"


def test_rule_refutes_with_a_reason_that_names_what_the_entry_says(rule):
    glorp = SENTENCE_DOCS[4]
    subjects = Subjects(SENTENCE_DOCS)
    claim = "Glorp is a lazy functional language designed by Bea Zed in 1996."
    a = rule.assess(claim, subjects.find(claim), [glorp])
    assert a.label == "refuted" and "1990" in a.reason and "1996" in a.reason
