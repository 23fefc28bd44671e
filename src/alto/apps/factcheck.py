"""Fact-check / chatbot verification: the ALTO paper's pipeline.

    question -> answer (LLM, streamed) -> claims, split as they are generated
             -> per claim: search queries (LLM, split) -> retrieval per query
             -> evidence merged per claim (aggregate)
             -> verdict (LLM judge + evidence score) -> report (aggregate)

Each claim leaves the answer stage the moment its sentence is complete, so its queries,
retrieval and verdict run while the model is still writing the rest of the answer.

**Verdicts on the embedded model.** SmolLM2-135M follows the prompt format but, as a
judge, answers NOT_ENOUGH_INFO to almost everything. So every verdict carries two
signals side by side: the LLM's label (with the evidence ids it cites) and an evidence
score (the best cosine similarity between the claim and a retrieved entry). With
``FactCheckConfig(judge="evidence")`` (the embedded default) the evidence score decides:
``supported`` at or above ``support_threshold``, else ``not enough info`` -- it cannot
detect a refutation -- and the LLM's label is reported beside it. With ``judge="llm"``
(for a larger model behind :class:`~alto.llm.OpenAICompatible`) the LLM's label decides
when it cites valid evidence. ``verdict.source`` says which signal decided.

>>> from alto.apps.factcheck import parse_verdict
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
from typing import Any

import alto

from ..llm import LLM, generate_split
from ..retrieval import Dense, Hit, Retriever

__all__ = [
    "DEFAULT_QUESTION",
    "LABELS",
    "Evidence",
    "FactCheckConfig",
    "Verdict",
    "build_pipeline",
    "embedded_components",
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
    source: str  # "llm" or "evidence-score"
    llm_label: str
    llm_text: str
    cited: list[str]
    evidence_score: float
    evidence: list[Evidence] = field(default_factory=list)

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
    # "evidence": the evidence score decides and the LLM's label is shown beside it (for
    # small embedded models whose labels are noise); "llm": the LLM's label decides
    # when it cites valid evidence, the evidence score otherwise.
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


def _query_prompt(item: dict[str, Any]) -> list[dict[str, str]]:
    # Few-shot: the small model copies the format of the example exchange.
    return [
        {"role": "system", "content": "Write short web search queries, one per line, as a numbered list."},
        {"role": "user", "content": f"Claim: {_EXAMPLE_CLAIM}\nWrite 2 search queries."},
        {"role": "assistant", "content": "\n".join(f"{i}. {q}" for i, q in enumerate(_EXAMPLE_QUERIES, 1))},
        {"role": "user", "content": f"Claim: {item['claim']}\nWrite 2 search queries."},
    ]


def _judge_prompt(item: dict[str, Any]) -> list[dict[str, str]]:
    evidence = "\n".join(f"[{e.id}] {e.title}: {e.snippet}" for e in item["evidence"])
    return [
        {
            "role": "system",
            "content": "Label the claim SUPPORTED, REFUTED or NOT_ENOUGH_INFO by the evidence, "
            "then cite it: SUPPORTED [E1]",
        },
        {
            "role": "user",
            "content": "Evidence:\n[E1] Ethernet: a family of local area network technologies.\n"
            "Claim: Ethernet is a kind of LAN.",
        },
        {"role": "assistant", "content": "SUPPORTED [E1]"},
        {"role": "user", "content": f"Evidence:\n{evidence}\nClaim: {item['claim']}"},
    ]


def build_pipeline(
    llm: LLM,
    retriever: Retriever,
    *,
    scorer: Dense | None = None,
    config: FactCheckConfig | None = None,
    judge_llm: LLM | None = None,
    name: str = "factcheck",
) -> alto.Pipeline:
    """The fact-check pipeline. Outputs: ``claims`` and ``verdicts`` (depth 1, for
    streaming displays) and ``report`` (depth 0: the result of ``alto.run``).

    ``scorer`` (a :class:`~alto.retrieval.Dense`) supplies evidence similarity;
    ``judge_llm`` defaults to ``llm``.
    """
    cfg = config or FactCheckConfig()
    if cfg.judge not in ("evidence", "llm"):
        raise ValueError(f"FactCheckConfig.judge must be 'evidence' or 'llm', got {cfg.judge!r}")
    judge = judge_llm or llm

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
    llm_queries = generate_split(
        llm,
        _query_prompt,
        "list",
        max_tokens=cfg.query_tokens,
        max_parts=cfg.queries_per_claim,
        keep=lambda q: 1 <= len(q.split()) <= 16,
        priority=1,  # verdicts (priority 0) go first: finish claims before starting new ones
        name="llm_queries",
    )

    async def queries(item: dict[str, Any]):
        """The claim itself, then the LLM's queries (deduplicated)."""
        yield {"claim": item["claim"], "query": item["claim"]}
        seen = {item["claim"].lower()}
        async for q in llm_queries(item):
            q = q.strip().strip('"')
            if q in _EXAMPLE_QUERIES:  # the small model sometimes copies the few-shot example
                continue
            if q.lower() not in seen:
                seen.add(q.lower())
                yield {"claim": item["claim"], "query": q}

    def search(item: dict[str, Any]) -> list[Hit]:
        return retriever.search(item["query"], cfg.hits_per_query)

    def merge_evidence(claim_item: dict[str, Any], hit_lists: list[list[Hit]]) -> dict[str, Any]:
        """Fuse the hits of all queries of a claim (reciprocal rank), keep the best few."""
        fused: dict[str, float] = {}
        docs = {}
        for hits in hit_lists:
            for h in hits:
                fused[h.doc.id] = fused.get(h.doc.id, 0.0) + 1.0 / (60 + h.rank)
                docs[h.doc.id] = h.doc
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.evidence_per_claim]
        claim = claim_item["claim"]
        evidence = []
        for n, (doc_id, score) in enumerate(best, 1):
            doc = docs[doc_id]
            snippet = doc.snippet(cfg.snippet_chars)
            sim = scorer.similarity(claim, f"{doc.title}. {snippet}") if scorer is not None else 0.0
            evidence.append(Evidence(f"E{n}", doc_id, doc.title, snippet, score, sim))
        return {"claim": claim, "evidence": evidence}

    async def verdict(item: dict[str, Any]) -> Verdict:
        ids = [e.id for e in item["evidence"]]
        text = ""
        if item["evidence"]:
            text = await judge.complete(_judge_prompt(item), max_tokens=cfg.verdict_tokens)
        llm_label, cited, parsed = parse_verdict(text, ids)
        if not parsed:
            log.info("unparseable verdict for %r: %r", item["claim"], text)
        score = max((e.similarity for e in item["evidence"]), default=0.0)
        if cfg.judge == "llm" and llm_label in ("supported", "refuted") and cited:
            label, source = llm_label, "llm"
        elif score >= cfg.support_threshold:
            label, source = "supported", "evidence-score"
        else:
            label, source = "not enough info", "evidence-score"
        return Verdict(item["claim"], label, source, llm_label, text.strip(), cited, score, list(item["evidence"]))

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
    qs = claims.expand(queries, name="queries", concurrency=2)
    hits = qs.map(search, name="search", concurrency=2)
    ev = hits.aggregate(merge_evidence, name="evidence")
    verdicts = ev.map(verdict, name="verdicts", concurrency=2)
    p.output(claims)
    p.output(verdicts)
    p.output(verdicts.aggregate(report, name="report"))
    return p


def embedded_components(*, corpus: Any = None) -> tuple[LLM, Retriever, Dense]:
    """The embedded default: SmolLM2 in llama.cpp, hybrid BM25 + MiniLM over FOLDOC.

    Indexes are built on first use (with progress bars) and cached on disk.
    """
    from ..llm import LlamaCpp
    from ..retrieval import BM25, Hybrid, load_foldoc

    docs = corpus if corpus is not None else load_foldoc()
    dense = Dense(docs)
    retriever = Hybrid([BM25(docs), dense])
    return LlamaCpp(), retriever, dense
