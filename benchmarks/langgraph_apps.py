"""The paper's fact-check pipeline written idiomatically in LangGraph, as a peer system.

The same components as :mod:`benchmarks.paper` (the same SIMULATED engine pools with
the same router, prompts and search), in the shape LangGraph's map-reduce guide
teaches: a ``StateGraph`` whose ``answer`` node generates the answer, an ``extract``
node that extracts every claim with one call (FacTool's way), a conditional edge that
fans out one ``Send("check", ...)`` per claim, a ``check`` node that writes the claim's
queries, searches them concurrently and asks for the verdict, a reducer
(``operator.add``) that gathers the verdicts, and a ``report`` node. It is driven with
``astream(stream_mode="updates")``, so each claim's verdict is seen as its ``check``
task finishes.

LangGraph passes whole node outputs between nodes: claims are extracted only once the
whole answer exists, and checked only once every claim is extracted; each claim's
check then runs on its own, as in ALTO's ``streaming=False``.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypedDict

from alto.llm import JsonArrayItems
from benchmarks.paper_model import (
    Pools,
    Setting,
    answer_prompt,
    extract_prompt_full,
    parse_verdict,
    queries_prompt,
    report_of,
    verify_prompt,
)

__all__ = ["analysis_graph", "app_system", "build_graph", "langgraph_factory", "rag_graph", "summarize_graph"]


class State(TypedDict, total=False):
    question: str
    answer: str
    claims: list[str]
    verdicts: Annotated[list[tuple[int, str, bool]], operator.add]
    report: dict[str, Any]


class ClaimTask(TypedDict):
    index: int
    claim: str


def map_reduce_graph(
    state: type,
    first: tuple[str, Callable[..., Any]],
    tasks: Callable[[Any], list[dict[str, Any]]],
    worker: tuple[str, Callable[..., Any]],
    reduce: tuple[str, Callable[..., Any]],
    before: tuple[str, Callable[..., Any]] | None = None,
) -> Any:
    """The shape LangGraph's map-reduce guide teaches: ``first`` runs (after ``before``,
    when given), a conditional edge sends one ``Send(worker, task)`` per task (straight
    to ``reduce`` when there are none: LangGraph would otherwise end the graph), the
    workers' outputs meet in a reducer on the state, and ``reduce`` runs once they all
    finished."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    def fan_out(s: Any) -> Any:
        return [Send(worker[0], t) for t in tasks(s)] or reduce[0]

    g = StateGraph(state)
    for name, fn in (first, worker, reduce) + ((before,) if before else ()):
        g.add_node(name, fn)
    if before:
        g.add_edge(START, before[0])
        g.add_edge(before[0], first[0])
    else:
        g.add_edge(START, first[0])
    g.add_conditional_edges(first[0], fan_out, [worker[0], reduce[0]])
    g.add_edge(worker[0], reduce[0])
    g.add_edge(reduce[0], END)
    return g.compile()


def build_graph(setting: Setting, pools: Pools) -> Any:
    """The compiled LangGraph graph of the fact-check pipeline on ``pools``."""

    async def answer(state: State) -> dict[str, Any]:
        return {"answer": await pools.answer.complete(answer_prompt(setting, state["question"]), max_tokens=4096)}

    async def extract(state: State) -> dict[str, Any]:
        text = await pools.extract.complete(extract_prompt_full(setting, state["answer"]), max_tokens=4096)
        return {"claims": [obj["claim"] for obj in JsonArrayItems().split(text)]}

    def claims(state: State) -> list[dict[str, Any]]:
        return [ClaimTask(index=i, claim=c) for i, c in enumerate(state["claims"])]

    async def check(task: ClaimTask) -> dict[str, Any]:
        text = await pools.queries.complete(queries_prompt(setting, task["claim"]), max_tokens=256)
        results = await asyncio.gather(*(pools.search(q) for q in JsonArrayItems().split(text)))
        evidence = [s for snippets in results for s in snippets]
        verdict = await pools.verify.complete(verify_prompt(setting, task["claim"], evidence), max_tokens=512)
        return {"verdicts": [(task["index"], task["claim"], parse_verdict(verdict))]}

    def report(state: State) -> dict[str, Any]:
        return {"report": report_of(state["question"], [(c, v) for _, c, v in sorted(state["verdicts"])])}

    return map_reduce_graph(
        State, ("extract", extract), claims, ("check", check), ("report", report), before=("answer", answer)
    )


def langgraph_factory(setting: Setting, make_pools: Callable[[], Pools]) -> Callable[[], Any]:
    """A load-generator system factory: a fresh graph on fresh pools per run; yields
    each verdict as its task's update arrives, then the report. The context yields
    ``(system, pools)``."""

    @asynccontextmanager
    async def start() -> AsyncIterator[Any]:
        pools = make_pools()
        graph = build_graph(setting, pools)

        async def system(question: str) -> AsyncIterator[Any]:
            async for update in graph.astream({"question": question, "verdicts": []}, stream_mode="updates"):
                for node, out in update.items():
                    if node == "check":
                        _, claim, verdict = out["verdicts"][0]
                        yield (claim, verdict)
                    elif node == "report":
                        yield out["report"]

        yield system, pools

    return start


# -- the other applications, the same way ----------------------------------------------


class _AppState(TypedDict, total=False):
    input: Any
    items: list[Any]
    parts: Annotated[list[tuple[int, Any]], operator.add]
    result: Any


def rag_graph(llm: Any, retriever: Any, *, k: int = 3, max_queries: int = 3, passages: int = 4) -> Any:
    """Multi-query RAG (:mod:`alto_apps.rag`) in LangGraph: the queries node writes the
    list, one ``Send`` per query to retrieve, a reducer, then the answer. The queries
    node streams its call and stops it after ``max_queries`` items, as ALTO's stage
    does (a LangGraph node may stream inside; it returns when the list is complete)."""

    from alto.llm import generate_split
    from alto_apps import rag

    write = generate_split(
        llm,
        lambda q: rag.queries_prompt(q, max_queries),
        "list",
        max_tokens=24 * max_queries,
        max_parts=max_queries,
    )

    async def queries(state: _AppState) -> dict[str, Any]:
        return {"items": [state["input"], *[q async for q in write(state["input"])]]}

    def retrieve(task: dict[str, Any]) -> dict[str, Any]:
        return {"parts": [(task["i"], rag.search_hits(retriever, task["query"], k))]}

    async def answer(state: _AppState) -> dict[str, Any]:
        found = [f for _, f in sorted(state["parts"], key=lambda p: p[0])]
        item = rag.merge_evidence(state["input"], found, k, passages)
        text = await llm.complete(rag.answer_prompt(item), max_tokens=160)
        return {"result": rag.answer_result(text, item)}

    def tasks(s: _AppState) -> list[dict[str, Any]]:
        return [{"i": i, "query": q} for i, q in enumerate(s["items"])]

    return map_reduce_graph(_AppState, ("queries", queries), tasks, ("retrieve", retrieve), ("answer", answer))


def summarize_graph(llm: Any, *, max_sections: int = 5, section_tokens: int = 80, summary_tokens: int = 160) -> Any:
    """Map-reduce summarisation (:mod:`alto_apps.summarize`) in LangGraph: the outline
    node writes the whole outline, one ``Send`` per section, a reducer, the combine node."""

    from alto.llm import split_parts
    from alto_apps import summarize

    async def outline(state: _AppState) -> dict[str, Any]:
        prompt = summarize.outline_prompt(state["input"], max_sections)
        text = await llm.complete(prompt, max_tokens=16 * max_sections)
        return {"items": split_parts(text, "list", max_parts=max_sections)}

    async def section(task: dict[str, Any]) -> dict[str, Any]:
        item = {"doc": task["doc"], "title": task["title"]}
        text = await llm.complete(summarize.section_prompt(item), max_tokens=section_tokens)
        return {"parts": [(task["i"], {"title": task["title"], "summary": text.strip()})]}

    async def combine(state: _AppState) -> dict[str, Any]:
        gathered = {"sections": [s for _, s in sorted(state["parts"], key=lambda p: p[0])]}
        text = await llm.complete(summarize.combine_prompt(gathered), max_tokens=summary_tokens)
        return {"result": {"sections": gathered["sections"], "summary": text.strip()}}

    def tasks(s: _AppState) -> list[dict[str, Any]]:
        return [{"i": i, "doc": s["input"], "title": t} for i, t in enumerate(s["items"])]

    return map_reduce_graph(_AppState, ("outline", outline), tasks, ("section", section), ("combine", combine))


def app_system(graph: Any, partial: str, final: str) -> Callable[[Any], AsyncIterator[Any]]:
    """A compiled ``rag_graph`` / ``summarize_graph`` / ``analysis_graph`` as a
    load-generator system: yields the ``partial`` node's outputs as their tasks finish,
    then the ``final`` node's result."""

    async def system(value: Any) -> AsyncIterator[Any]:
        async for update in graph.astream({"input": value, "parts": []}, stream_mode="updates"):
            for node, out in update.items():
                if node == partial:
                    yield out["parts"][0][1]
                elif node == final:
                    yield out["result"]

    return system


def analysis_graph(labels: dict[str, str] | None = None, embed: Any = None) -> Any:
    """Document analysis (:mod:`alto_apps.analysis`) in LangGraph: split the document,
    one ``Send`` per sentence to classify, a reducer, the report."""

    from alto_apps import analysis

    classify = type(
        "Classifier",
        (analysis.Classifier,),
        {"labels": dict(labels or analysis.DEFAULT_LABELS), "embed": staticmethod(embed) if embed else None},
    )()

    def split(state: _AppState) -> dict[str, Any]:
        return {"items": analysis.split_document(state["input"])}

    def label(task: dict[str, Any]) -> dict[str, Any]:
        return {"parts": [(task["i"], classify(task["item"]))]}

    def report(state: _AppState) -> dict[str, Any]:
        sentences = [s for _, s in sorted(state["parts"], key=lambda p: p[0])]
        return {"result": analysis.report(state["input"], sentences)}

    def tasks(s: _AppState) -> list[dict[str, Any]]:
        return [{"i": i, "item": it} for i, it in enumerate(s["items"])]

    return map_reduce_graph(_AppState, ("split", split), tasks, ("classify", label), ("report", report))
