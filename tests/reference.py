"""A sequential reference interpreter for pipelines: nested lists, no concurrency.

It evaluates one request by walking the stage graph and applying every stage to a
nested tree (a :class:`Node` per expanded item: its parent value and its children).
The runtimes must produce exactly what it produces.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any

import alto
from alto.pipeline import _is_incremental_aggregator, is_class_stage

DROP = object()  # a filtered-out item


@dataclass
class Node:
    parent: Any
    children: list[Any]


def _call(fn: Any, *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(x: Any) -> Any:
    return await x


def _children(fn: Any, value: Any) -> list[Any]:
    result = fn(value)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    if hasattr(result, "__aiter__"):

        async def collect() -> list[Any]:
            return [c async for c in result]

        return asyncio.run(collect())
    return list(result)


def _walk(tree: Any, depth: int, leaf) -> Any:
    """Apply ``leaf`` to every subtree at ``depth`` below the root."""
    if tree is DROP:
        return DROP
    if depth == 0:
        return leaf(tree)
    return Node(tree.parent, [_walk(c, depth - 1, leaf) for c in tree.children])


def _walk2(a: Any, b: Any, depth: int, leaf) -> Any:
    if a is DROP or b is DROP:
        return DROP
    if depth == 0:
        return leaf(a, b)
    return Node(a.parent, [_walk2(x, y, depth - 1, leaf) for x, y in zip(a.children, b.children, strict=True)])


def evaluate(pipeline: alto.Pipeline, value: Any) -> dict[str, Any]:
    """The tree each stage produces for one request, by stage name."""
    stages = pipeline.stages
    out: dict[str, Any] = {}
    instances = {name: spec.fn() for name, spec in stages.items() if is_class_stage(spec.fn)}

    def fn_of(name: str) -> Any:
        return instances.get(name, stages[name].fn)

    def ev(name: str) -> Any:
        if name in out:
            return out[name]
        spec = stages[name]
        d = spec.input_depth
        if spec.kind == "input":
            r = value
        elif spec.kind == "map":
            f = fn_of(name)
            r = _walk(ev(spec.inputs[0]), d, lambda v: _call(f, v))
        elif spec.kind == "filter":
            f = fn_of(name)
            r = _walk(ev(spec.inputs[0]), d, lambda v: v if _call(f, v) else DROP)
        elif spec.kind == "expand":
            f = fn_of(name)
            r = _walk(ev(spec.inputs[0]), d, lambda v: Node(v, _children(f, v)))
        elif spec.kind == "zip":
            r = _walk2(ev(spec.inputs[0]), ev(spec.inputs[1]), d, lambda a, b: (a, b))
        elif spec.kind == "aggregate":
            f = fn_of(name)

            def close(node: Node) -> Any:
                kids = [c for c in node.children if c is not DROP]
                if _is_incremental_aggregator(f):
                    inst = f()
                    _call(inst.start, node.parent)
                    for i, c in enumerate(node.children):
                        if c is not DROP:
                            _call(inst.add, i, c)
                    return _call(inst.finish)
                return _call(f, node.parent, kids)

            r = _walk(ev(spec.inputs[0]), d - 1, close)
        else:
            raise AssertionError(spec.kind)
        out[name] = r
        return r

    for name in pipeline.outputs:
        ev(name)
    return {name: out[name] for name in pipeline.outputs}


def leaves(tree: Any, depth: int, prefix: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], Any]]:
    """(index path, value) of every surviving item at ``depth`` (request id omitted)."""
    if tree is DROP:
        return []
    if depth == 0:
        return [(prefix, tree)]
    found = []
    for i, c in enumerate(tree.children):
        found.extend(leaves(c, depth - 1, prefix + (i,)))
    return found


def reference_run(pipeline: alto.Pipeline, inputs: list[Any]) -> list[Any]:
    """What ``alto.run`` must return for ``inputs``."""
    finals = pipeline.final_outputs()
    results = []
    for x in inputs:
        trees = evaluate(pipeline, x)
        vals = {n: (None if trees[n] is DROP else trees[n]) for n in finals}
        results.append(vals[finals[0]] if len(finals) == 1 else vals)
    return results
