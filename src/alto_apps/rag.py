"""Multi-query RAG: the LLM streams sub-queries, each retrieved the moment it exists.

    question -> search queries (the question itself, then the LLM's list, split as it
                is generated) -> retrieval per query -> evidence merged per question
             -> answer (LLM, given the passages) with its sources

The first query (the question itself) is being searched while the LLM is still writing
the others; with ``streaming=False`` retrieval waits for the whole list.

>>> import alto
>>> from alto.llm import Simulated
>>> from alto.retrieval import BM25, load_texts
>>> docs = load_texts({"SMTP": "SMTP is the protocol that sends e-mail between servers.",
...                    "IMAP": "IMAP lets a client read e-mail kept on a server."})
>>> p = build_pipeline(Simulated(time_scale=0, seed=1), BM25(docs, cache=False))
>>> [result] = alto.run(p, ["How is e-mail sent?"])
>>> result["queries"][0], set(result["sources"]) <= {"SMTP", "IMAP"}, bool(result["answer"])
('How is e-mail sent?', True, True)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import alto
from alto.llm import LLM, generate, generate_split
from alto.retrieval import Retriever

__all__ = ["build_pipeline"]

QUERIES_PROMPT = "Write up to {n} short search queries, one per line, that would find facts to answer: {question}"
ANSWER_PROMPT = (
    "Answer the question using only the passages; cite passage ids in brackets.\n{passages}\nQuestion: {question}"
)


def queries_prompt(question: str, n: int) -> str:
    return QUERIES_PROMPT.format(n=n, question=question)


def merge_evidence(question: str, found: list[dict[str, Any]], k: int, passages: int) -> dict[str, Any]:
    """The passages for the answer: the queries' rankings interleaved (each query's best
    hit first), duplicates dropped, at most ``passages``."""
    best: dict[str, str] = {}
    for rank in range(k):
        for f in found:
            if rank < len(f["hits"]):
                doc_id, text = f["hits"][rank]
                best.setdefault(doc_id, text)
    chosen = list(best.items())[:passages]
    return {"question": question, "queries": [f["query"] for f in found], "passages": chosen}


def answer_prompt(item: dict[str, Any]) -> str:
    text = "\n".join(f"[{doc_id}] {snippet}" for doc_id, snippet in item["passages"])
    return ANSWER_PROMPT.format(passages=text, question=item["question"])


def answer_result(text: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "question": item["question"],
        "answer": text.strip(),
        "sources": [doc_id for doc_id, _ in item["passages"]],
        "queries": item["queries"],
    }


def search_hits(retriever: Retriever, query: str, k: int) -> dict[str, Any]:
    return {"query": query, "hits": [(h.doc.id, h.doc.snippet(400)) for h in retriever.search(query, k=k)]}


def build_pipeline(
    llm: LLM,
    retriever: Retriever,
    *,
    k: int = 3,
    max_queries: int = 3,
    passages: int = 4,
    answer_tokens: int = 160,
    replicas: int = 1,
) -> alto.Pipeline:
    """The multi-query RAG pipeline over ``retriever`` (BM25, dense or hybrid)."""
    write_queries = generate_split(
        llm,
        lambda q: queries_prompt(q, max_queries),
        "list",
        max_tokens=24 * max_queries,
        max_parts=max_queries,
        name="queries",
    )

    async def queries(question: str) -> AsyncIterator[dict[str, str]]:
        yield {"question": question, "query": question}  # searched while the LLM writes the rest
        async for q in write_queries(question):
            yield {"question": question, "query": q}

    def retrieve(item: dict[str, str]) -> dict[str, Any]:
        return search_hits(retriever, item["query"], k)

    def evidence(question: str, found: list[dict[str, Any]]) -> dict[str, Any]:
        return merge_evidence(question, found, k, passages)

    p = alto.Pipeline("rag")
    found = p.input().expand(queries, name="queries").map(retrieve, replicas=replicas, name="retrieve")
    merged = found.aggregate(evidence, name="evidence")
    answer = generate(llm, answer_prompt, max_tokens=answer_tokens, parse=answer_result)
    p.output(merged.map(answer, replicas=replicas, name="answer"))
    return p
