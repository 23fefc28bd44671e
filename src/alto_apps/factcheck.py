"""Fact-check / chatbot verification: the ALTO paper's pipeline.

    question -> answer (LLM, streamed) -> claims, split as they are generated
             -> per claim: search queries (LLM, split) -> retrieval per query
             -> evidence merged per claim (aggregate)
             -> verdict (evidence rule on the subject's entry; LLM label beside it) -> report

Each claim leaves the answer stage the moment its sentence is complete, so its queries,
retrieval and verdict run while the model is still writing the rest of the answer.

**Verdicts.** Every claim's subject (the entry it is about: "SQL", "the Post Office
Protocol") is looked up by name, and its entry is always evidence ``E1``. With
``FactCheckConfig(judge="evidence")`` (the embedded default) the evidence rule of
:mod:`alto_apps.grounding` decides: **supported** when the claim's description fits its
subject's entry, **refuted** when it fits another entry better ("describes Ethernet,
not SQL") or its numbers and names disagree with the entry, **not enough info** when the
subject is not in the corpus. SmolLM2-135M's own label is noise (it echoes its prompt),
so it is shown beside the verdict and does not decide. With ``judge="llm"`` (a larger
model behind :class:`~alto.llm.OpenAICompatible`) the LLM's label decides, given the
subject's entry first; the rule decides when the LLM's answer does not parse.
``verdict.source`` says which did. Measured accuracy: ``docs/factcheck_eval.md``.

>>> from alto_apps.factcheck import parse_verdict
>>> parse_verdict("Verdict: REFUTED [E2]", ["E1", "E2"])
('refuted', ['E2'], True)
>>> parse_verdict("I think... maybe?", ["E1"])
('not enough info', [], False)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict, Unpack

import alto
from alto.dataflow import Stream
from alto.llm import LLM, generate_split
from alto.retrieval import Dense, Document, Hit, Retriever
from alto_apps.grounding import Assessment, EvidenceRule, Subjects, content_words

__all__ = [
    "DEFAULT_QUESTION",
    "LABELS",
    "CheckOptions",
    "Evidence",
    "FactCheckConfig",
    "Verdict",
    "build_checker",
    "build_pipeline",
    "embedded_components",
    "embedded_pipeline",
    "parse_verdict",
]

log = logging.getLogger("alto.factcheck")

LABELS = ("supported", "refuted", "not enough info")
_LABEL_WORDS = [
    (
        re.compile(
            r"not[\s_-]*enough[\s_-]*info(rmation)?|\bNEI\b|\bunknown\b|cannot (be )?(verified|determined)", re.I
        ),
        "not enough info",
    ),
    (re.compile(r"\brefuted?s?\b|\bcontradict(s|ed)?\b|\bfalse\b", re.I), "refuted"),
    (re.compile(r"\bsupport(ed|s)?\b|\bconfirm(s|ed)?\b|\btrue\b", re.I), "supported"),
]


def parse_verdict(text: str, evidence_ids: Sequence[str]) -> tuple[str, list[str], bool]:
    """``(label, cited ids, parsed)`` from a judge's free text; never raises.

    The earliest label word wins; unparseable text gives ``not enough info`` with
    ``parsed=False``. Cited ids are those of ``evidence_ids`` mentioned in the text.
    """
    text = str(text or "")
    best: tuple[int, str] | None = None
    for pattern, label in _LABEL_WORDS:
        m = pattern.search(text)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), label)
    cited = [e for e in evidence_ids if re.search(rf"\b{re.escape(e)}\b", text)]
    if best is None:
        return "not enough info", cited, False
    return best[1], cited, True


@dataclass(frozen=True)
class Evidence:
    """One retrieved entry cited as evidence for a claim."""

    id: str  # E1, E2, ... within the claim
    doc_id: str
    title: str
    snippet: str
    score: float  # fused retrieval score
    similarity: float = 0.0  # cosine(claim, entry), when a dense scorer is available


@dataclass(frozen=True)
class Verdict:
    """The verdict on one claim, with both signals that produced it."""

    claim: str
    label: str
    source: str  # "llm" or "evidence-rule" ("evidence-score" without a scorer)
    llm_label: str
    llm_text: str
    cited: list[str]
    evidence_score: float  # how well the claim fits its subject's entry (cosine)
    evidence: list[Evidence] = field(default_factory=list)
    subject: str | None = None  # the entry the claim is about (title), if found
    conflict: str | None = None  # the entry a refuted claim's description belongs to
    reason: str = ""  # "describes 'Ethernet', not 'SQL'"
    features: dict[str, float] = field(default_factory=dict)  # the evidence rule's inputs

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FactCheckConfig:
    """Knobs of the fact-check pipeline (prompt sizes are tuned for a 135M model)."""

    answer_tokens: int = 160
    max_claims: int = 5
    queries_per_claim: int = 2
    query_tokens: int = 32
    hits_per_query: int = 3
    evidence_per_claim: int = 3
    verdict_tokens: int = 12
    snippet_chars: int = 160  # evidence text shown to the judge (prefill is the slow part on CPU)
    support_threshold: float = 0.55
    min_claim_words: int = 4
    # "evidence": the evidence rule decides and the LLM's label is shown beside it (for
    # small embedded models whose labels are noise); "llm": the LLM's label decides
    # when it parses, the evidence rule otherwise.
    judge: str = "evidence"


ANSWER_SYSTEM = "You are a helpful assistant. Answer with 5 factual sentences."
DEFAULT_QUESTION = "How does e-mail travel from one mail server to another? Explain SMTP, POP3 and IMAP."


def _clean_claim(sentence: str) -> str:
    """Strip list markers and markdown the model wraps around its sentences."""
    s = re.sub(r"^\s*(?:\d{1,2}[.)]|[-*\u2022])\s*", "", sentence)
    s = s.replace("**", "").replace("__", "")
    return " ".join(s.split())


_EXAMPLE_CLAIM = "Python was created by Guido van Rossum."
_EXAMPLE_QUERIES = ("Python programming language creator", "Guido van Rossum")
_EXAMPLE_WORDS = content_words(" ".join((_EXAMPLE_CLAIM, *_EXAMPLE_QUERIES)))


def _query_prompt(item: dict[str, Any]) -> list[dict[str, str]]:
    # Few-shot: the small model copies the format of the example exchange.
    return [
        {"role": "system", "content": "Write short web search queries, one per line, as a numbered list."},
        {"role": "user", "content": f"Claim: {_EXAMPLE_CLAIM}\nWrite 2 search queries."},
        {"role": "assistant", "content": "\n".join(f"{i}. {q}" for i, q in enumerate(_EXAMPLE_QUERIES, 1))},
        {"role": "user", "content": f"Claim: {item['claim']}\nWrite 2 search queries."},
    ]


def copies_example(query: str, claim: str) -> bool:
    """True if ``query`` borrows words of the few-shot example that its claim lacks
    (the small model writes "Fortran programming language creator" for a Fortran claim).

    >>> copies_example("Fortran programming language creator", "Fortran is a language.")
    True
    >>> copies_example("Fortran numerical computing", "Fortran is a language.")
    False
    """
    return bool((content_words(query) & _EXAMPLE_WORDS) - content_words(claim))


def _judge_prompt(item: dict[str, Any]) -> list[dict[str, str]]:
    # The subject's own entry comes first. The answer is one label word with no ids, and
    # the examples end on different labels, so a small model has no id or label to echo.
    evidence = "\n".join(f"- {e.title}: {e.snippet}" for e in item["evidence"])
    return [
        {
            "role": "system",
            "content": "You check a claim against dictionary entries; the first entry is about the claim's "
            "subject. Answer with one word: SUPPORTED if the entries say what the claim says, REFUTED "
            "if they say something different, NOT_ENOUGH_INFO if they do not cover it.",
        },
        {
            "role": "user",
            "content": "Entries:\n- Ethernet: a local area network first described at Xerox PARC in 1976.\n"
            "Claim: Ethernet was invented at IBM in 1990.",
        },
        {"role": "assistant", "content": "REFUTED"},
        {
            "role": "user",
            "content": "Entries:\n- Perl: a high-level programming language started by Larry Wall in 1987.\n"
            "Claim: Larry Wall started Perl.",
        },
        {"role": "assistant", "content": "SUPPORTED"},
        {"role": "user", "content": f"Entries:\n{evidence}\nClaim: {item['claim']}"},
    ]


class _Verification:
    """The verification stages' functions (queries, search, evidence, verdict), shared by
    the demo's pipeline and the evaluation's (:func:`build_checker`)."""

    def __init__(
        self,
        llm: LLM,
        retriever: Retriever,
        *,
        scorer: Dense | None = None,
        config: FactCheckConfig | None = None,
        judge_llm: LLM | None = None,
        subjects: Subjects | None = None,
        rule: EvidenceRule | None = None,
    ) -> None:
        cfg = config or FactCheckConfig()
        judge = judge_llm or llm
        if cfg.judge not in ("evidence", "llm"):
            raise ValueError(f"FactCheckConfig.judge must be 'evidence' or 'llm', got {cfg.judge!r}")
        self.retriever, self.scorer, self.cfg, self.judge = retriever, scorer, cfg, judge
        if scorer is not None:
            subjects = subjects or Subjects(scorer.docs)
            rule = rule or EvidenceRule(scorer.embed)
        self.subjects, self.rule = subjects, rule
        self.llm_queries = generate_split(
            llm,
            _query_prompt,
            "list",
            max_tokens=cfg.query_tokens,
            max_parts=cfg.queries_per_claim,
            keep=lambda q: 1 <= len(q.split()) <= 16,
            priority=1,  # verdicts (priority 0) go first: finish claims before starting new ones
            name="llm_queries",
        )

    def stages(self, claims: Stream) -> Stream:
        """claims (``{"claim": ...}`` items) -> verdicts, one per claim."""
        qs = claims.expand(self.queries, name="queries", concurrency=2)
        hits = qs.map(self.search, name="search", concurrency=2)
        ev = hits.aggregate(self.merge_evidence, name="evidence")
        return ev.map(self.verdict, name="verdicts", concurrency=2)

    async def queries(self, item: dict[str, Any]):
        """The claim itself, then the LLM's queries (deduplicated, none copied from the prompt)."""
        yield {"claim": item["claim"], "query": item["claim"]}
        seen = {item["claim"].lower()}
        async for q in self.llm_queries(item):
            q = q.strip().strip('"')
            if copies_example(q, item["claim"]):
                continue
            if q.lower() not in seen:
                seen.add(q.lower())
                yield {"claim": item["claim"], "query": q}

    def search(self, item: dict[str, Any]) -> list[Hit]:
        return self.retriever.search(item["query"], self.cfg.hits_per_query)

    def merge_evidence(self, claim_item: dict[str, Any], hit_lists: list[list[Hit]]) -> dict[str, Any]:
        """Fuse the hits of all queries of a claim (reciprocal rank), keep the best few,
        put the subject's own entry first, and assess the claim against them."""
        cfg = self.cfg
        fused: dict[str, float] = {}
        docs: dict[str, Document] = {}
        for hits in hit_lists:
            for h in hits:
                fused[h.doc.id] = fused.get(h.doc.id, 0.0) + 1.0 / (60 + h.rank)
                docs[h.doc.id] = h.doc
        ranked = [docs[i] for i, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))]
        claim = claim_item["claim"]
        assessment: Assessment | None = None
        if self.rule is not None and self.subjects is not None:
            assessment = self.rule.assess(claim, self.subjects.find(claim), ranked)
        chosen: list[Document] = []
        if assessment is not None:
            chosen += [d for d in (assessment.subject, assessment.conflict) if d is not None]
        chosen += [d for d in ranked if d not in chosen]
        chosen = chosen[: cfg.evidence_per_claim + (assessment is not None and assessment.subject is not None)]
        snippets = [doc.snippet(cfg.snippet_chars) for doc in chosen]
        sims = [0.0] * len(chosen)
        if self.scorer is not None and chosen:  # one embedding call: the claim once, then each entry
            vecs = self.scorer.embed([claim, *(f"{d.title}. {t}" for d, t in zip(chosen, snippets, strict=True))])
            sims = [float(v @ vecs[0]) for v in vecs[1:]]
        evidence = [
            Evidence(f"E{n}", doc.id, doc.title, snippet, fused.get(doc.id, 0.0), sim)
            for n, (doc, snippet, sim) in enumerate(zip(chosen, snippets, sims, strict=True), 1)
        ]
        return {"claim": claim, "evidence": evidence, "assessment": assessment}

    async def verdict(self, item: dict[str, Any]) -> Verdict:
        cfg = self.cfg
        evidence: list[Evidence] = item["evidence"]
        ids = [e.id for e in evidence]
        text = ""
        if evidence:
            text = await self.judge.complete(_judge_prompt(item), max_tokens=cfg.verdict_tokens)
        llm_label, cited, parsed = parse_verdict(text, ids)
        if not parsed:
            log.info("unparseable verdict for %r: %r", item["claim"], text)
        a: Assessment | None = item.get("assessment")
        if a is None:  # no scorer: topicality only, it cannot refute
            score = max((e.similarity for e in evidence), default=0.0)
            rule_label = "supported" if score >= cfg.support_threshold else "not enough info"
            source, subject, conflict, reason, feats = "evidence-score", None, None, "", {}
        else:
            score = a.features.get("s_subj", 0.0)
            rule_label, source, reason, feats = a.label, "evidence-rule", a.reason, a.features
            subject = a.subject.title if a.subject else None
            conflict = a.conflict.title if a.conflict else None
        by_id = {e.doc_id: e.id for e in evidence}
        if cfg.judge == "llm" and parsed and llm_label in ("supported", "refuted"):
            label, source = llm_label, "llm"
            cited = cited or ids[:1]
        else:
            label = rule_label
            cited = [by_id[d.id] for d in (a.subject, a.conflict) if d is not None and d.id in by_id] if a else cited
        return Verdict(
            item["claim"], label, source, llm_label, text.strip(), cited, score, list(evidence),
            subject, conflict, reason, dict(feats),
        )  # fmt: skip


class CheckOptions(TypedDict, total=False):
    """Options of the verification stages (:func:`build_pipeline`, :func:`build_checker`).

    ``scorer`` (a :class:`~alto.retrieval.Dense`) supplies similarity and the evidence
    rule (subjects are looked up among its documents); without it verdicts can only say
    supported / not enough info. ``judge_llm`` defaults to the pipeline's LLM;
    ``subjects`` and ``rule`` replace the defaults built from ``scorer``.
    """

    scorer: Dense | None
    config: FactCheckConfig | None
    judge_llm: LLM | None
    subjects: Subjects | None
    rule: EvidenceRule | None


def build_pipeline(
    llm: LLM, retriever: Retriever, *, name: str = "factcheck", **options: Unpack[CheckOptions]
) -> alto.Pipeline:
    """The fact-check pipeline. Outputs: ``claims`` and ``verdicts`` (depth 1, for
    streaming displays) and ``report`` (depth 0: the result of ``alto.run``).
    Options: :class:`CheckOptions`.
    """
    cfg = options.get("config") or FactCheckConfig()
    opts: CheckOptions = {**options, "config": cfg}
    check = _Verification(llm, retriever, **opts)
    answer_claims = generate_split(
        llm,
        "{input}",
        "sentences",
        system=ANSWER_SYSTEM,
        max_tokens=cfg.answer_tokens,
        max_parts=cfg.max_claims,
        priority=2,
        # a claim is a complete statement: long enough, ending in . or ! (a sentence cut
        # off by max_tokens, a question or a heading is not checked)
        keep=lambda s: len(_clean_claim(s).split()) >= cfg.min_claim_words and s.rstrip().endswith((".", "!")),
        transform=lambda sentence, question: {"question": question, "claim": _clean_claim(sentence)},
        name="answer",
    )

    def report(question: str, verdicts: list[Verdict]) -> dict[str, Any]:
        counts = {label: sum(v.label == label for v in verdicts) for label in LABELS}
        checked = counts["supported"] + counts["refuted"]
        return {
            "question": question,
            "answer": " ".join(v.claim for v in verdicts),
            "verdicts": [v.as_dict() for v in verdicts],
            "counts": counts,
            # share of claims the evidence supports, over all claims (unverifiable ones count against)
            "score": counts["supported"] / len(verdicts) if verdicts else 0.0,
            "checked": checked,
        }

    p = alto.Pipeline(name)
    claims = p.input().expand(answer_claims, name="claims")
    verdicts = check.stages(claims)
    p.output(claims)
    p.output(verdicts)
    p.output(verdicts.aggregate(report, name="report"))
    return p


def build_checker(
    llm: LLM, retriever: Retriever, *, name: str = "factcheck_claims", **options: Unpack[CheckOptions]
) -> alto.Pipeline:
    """The verification half of :func:`build_pipeline` on its own: one claim (a string)
    in, its :class:`Verdict` out -- the same stages the demo runs on each claim (used by
    ``alto eval factcheck``). Options: :class:`CheckOptions`."""
    check = _Verification(llm, retriever, **options)
    p = alto.Pipeline(name)

    def as_claim(text: str) -> dict[str, Any]:
        return {"question": "", "claim": " ".join(str(text).split())}

    p.output(check.stages(p.input().map(as_claim, name="claim")))
    return p


def embedded_components(*, corpus: Any = None, llm: LLM | None = None) -> tuple[LLM, Retriever, Dense]:
    """The embedded default: SmolLM2 in llama.cpp, hybrid BM25 + MiniLM over FOLDOC.

    ``corpus``: documents to check against instead of FOLDOC; ``llm``: another backend.
    Indexes are built on first use (with progress bars) and cached on disk.
    """
    from alto.llm import LlamaCpp
    from alto.retrieval import BM25, Hybrid, load_foldoc

    docs = corpus if corpus is not None else load_foldoc()
    dense = Dense(docs)
    retriever = Hybrid([BM25(docs), dense])
    return llm if llm is not None else LlamaCpp(), retriever, dense


def embedded_pipeline() -> alto.Pipeline:
    """The fact-check of ``alto demo`` on the embedded default (SmolLM2, FOLDOC), for
    ``alto serve alto_apps.factcheck:embedded_pipeline`` and ``alto graph``."""
    llm, retriever, dense = embedded_components()
    return build_pipeline(llm, retriever, scorer=dense)
