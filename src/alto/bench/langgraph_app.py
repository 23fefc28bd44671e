"""The paper's fact-check pipeline written idiomatically in LangGraph, as the baseline.

The same components as :mod:`alto.bench.paper` (the same SIMULATED engines, prompts,
search and merge functions), in the shape LangGraph's map-reduce guide teaches: a
``StateGraph`` whose ``answer`` node generates the answer, a conditional edge that
fans out one ``Send("check", ...)`` per claim, a ``check`` node that writes the claim's
queries, searches them concurrently and asks for the verdict, a reducer
(``operator.add``) that gathers the verdicts, and a ``report`` node. It is driven with
``astream(stream_mode="updates")``, so each claim's verdict is seen as its ``check``
task finishes.

LangGraph passes whole node outputs between nodes: a claim is checked only once the
whole answer exists. Each LLM stage has ``llm_replicas`` engines, called round robin
(as a client behind a load balancer would).
"""

from __future__ import annotations

import asyncio
import itertools
import operator
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypedDict

from alto.split import Lines, Sentences

from .paper_model import PaperEngine, Setting, answer_prompt, merge, queries_prompt, search, verdict_prompt

__all__ = ["build_graph", "langgraph_factory"]


class State(TypedDict, total=False):
    question: str
    claims: list[str]
    verdicts: Annotated[list[tuple[int, str, str]], operator.add]
    report: dict[str, Any]


class ClaimTask(TypedDict):
    index: int
    claim: str


def build_graph(setting: Setting, time_scale: float = 1.0) -> Any:
    """The compiled LangGraph graph of the fact-check pipeline on fresh SIMULATED engines."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    def pool() -> Callable[[], PaperEngine]:
        engines = [PaperEngine(setting, time_scale) for _ in range(setting.llm_replicas)]
        return itertools.cycle(engines).__next__

    answer_llm, queries_llm, verdict_llm = pool(), pool(), pool()

    async def answer(state: State) -> dict[str, Any]:
        text = await answer_llm().complete(answer_prompt(state["question"]), max_tokens=2048)
        return {"claims": Sentences().split(text)}

    def fan_out(state: State) -> list[Any]:
        return [Send("check", ClaimTask(index=i, claim=c)) for i, c in enumerate(state["claims"])]

    async def retrieve(query: str) -> list[int]:
        await asyncio.sleep(setting.search_s * time_scale)
        return search(setting, query)

    async def check(task: ClaimTask) -> dict[str, Any]:
        text = await queries_llm().complete(queries_prompt(task["claim"]), max_tokens=256)
        hit_lists = await asyncio.gather(*(retrieve(q) for q in Lines().split(text)))
        item = merge(setting, task["claim"], list(hit_lists))
        verdict = await verdict_llm().complete(verdict_prompt(setting, item), max_tokens=64)
        return {"verdicts": [(task["index"], task["claim"], verdict.strip().split()[0])]}

    def report(state: State) -> dict[str, Any]:
        verdicts = [(c, v) for _, c, v in sorted(state["verdicts"])]
        return {"report": {"question": state["question"], "verdicts": verdicts}}

    g = StateGraph(State)
    g.add_node("answer", answer)
    g.add_node("check", check)
    g.add_node("report", report)
    g.add_edge(START, "answer")
    g.add_conditional_edges("answer", fan_out, ["check"])
    g.add_edge("check", "report")
    g.add_edge("report", END)
    return g.compile()


def langgraph_factory(setting: Setting, time_scale: float) -> Callable[[], Any]:
    """A load-generator system factory: a fresh graph (fresh engines) per run; yields
    each verdict as its task's update arrives, then the report."""

    @asynccontextmanager
    async def start() -> AsyncIterator[Any]:
        graph = build_graph(setting, time_scale)

        async def system(question: str) -> AsyncIterator[Any]:
            async for update in graph.astream({"question": question, "verdicts": []}, stream_mode="updates"):
                for node, out in update.items():
                    if node == "check":
                        _, claim, verdict = out["verdicts"][0]
                        yield {"claim": claim, "verdict": verdict}
                    elif node == "report":
                        yield out["report"]

        yield system

    return start
