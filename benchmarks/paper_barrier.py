"""The stage-barrier baseline: FacTool's own way of running its pipeline, per request.

FacTool's ``knowledge_qa_pipeline.run_with_tool_live`` (GAIR-NLP/factool @ 3f3914b,
``factool/knowledge_qa/pipeline.py``) awaits each stage for all of a response's items
before the next one starts: ``_claim_extraction`` (one call on the whole response),
then ``_query_generation`` gathered over every claim, then ``tool.run`` gathered over
every query, then ``_verification`` gathered over every claim -- each an
``asyncio.gather``, so nothing flows from one stage to the next before the slowest
item of the stage is done. This module is that code's shape on the setting's engines
(:mod:`benchmarks.paper_model`), idiomatic asyncio, with the answer generated first
(the chatbot's response is FacTool's input).

It yields each claim's verdict (all at the end of the last stage) and then the report,
as the ALTO systems do, so the load generator measures the same things.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

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

__all__ = ["barrier_check", "barrier_factory"]


def _json_items(text: str) -> list[Any]:
    return JsonArrayItems().split(text)


async def barrier_check(setting: Setting, pools: Pools, question: str) -> AsyncIterator[Any]:
    """One request through the stage barriers; yields each verdict, then the report."""
    answer = await pools.answer.complete(answer_prompt(setting, question), max_tokens=4096)
    # 1. every claim (one extraction call on the whole response)
    extracted = await pools.extract.complete(extract_prompt_full(setting, answer), max_tokens=4096)
    claims = [obj["claim"] for obj in _json_items(extracted)]
    # 2. every claim's queries
    query_texts = await asyncio.gather(
        *(pools.queries.complete(queries_prompt(setting, c), max_tokens=256) for c in claims)
    )
    queries = [_json_items(t) for t in query_texts]
    # 3. every query's search (one gather over all queries of the response)
    flat = [q for qs in queries for q in qs]
    results = await asyncio.gather(*(pools.search(q) for q in flat))
    evidence, k = [], 0
    for qs in queries:
        evidence.append([s for snippets in results[k : k + len(qs)] for s in snippets])
        k += len(qs)
    # 4. every claim's verdict
    prompts = [verify_prompt(setting, c, ev) for c, ev in zip(claims, evidence, strict=True)]
    verdict_texts = await asyncio.gather(*(pools.verify.complete(p, max_tokens=512) for p in prompts))
    verdicts = [(c, parse_verdict(t)) for c, t in zip(claims, verdict_texts, strict=True)]
    for v in verdicts:
        yield v
    yield report_of(question, verdicts)


def barrier_factory(setting: Setting, make_pools: Callable[[], Pools]) -> Callable[[], Any]:
    """A load-generator system factory: fresh pools per run, ``barrier_check`` per request.
    The context yields ``(system, pools)``."""

    @asynccontextmanager
    async def start() -> AsyncIterator[Any]:
        pools = make_pools()

        async def system(question: str) -> AsyncIterator[Any]:
            async for out in barrier_check(setting, pools, question):
                yield out

        yield system, pools

    return start
