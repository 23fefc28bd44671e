"""Test your pipelines: a sequential reference interpreter the runtimes must agree with.

:func:`reference_run` evaluates a pipeline one request at a time, one stage at a time,
on nested lists -- no concurrency, no streaming, no routing -- and returns what
:func:`alto.run` must return, including failures: a request whose stage raised (after
its retries, with ``on_error="fail"``) expects a :class:`~alto.StageError`, and
:func:`expected_failures` says which ``(stage, path)`` may be named (with several
failing items in one request, which one a concurrent runtime hits first varies).
It shares no code with the runtimes' operators, so it catches their bugs.

>>> import alto
>>> from alto.testing import reference_run, matches_reference
>>> def check(x):
...     if x == 2:
...         raise ValueError("two")
...     return x * 10
>>> p = alto.Pipeline("tens")
>>> _ = p.output(p.input().expand(range).map(check).aggregate(lambda n, xs: xs))
>>> reference_run(p, [2, 3])[0]
[0, 10]
>>> results = alto.run(p, [2, 3, 4], return_exceptions=True)
>>> matches_reference(p, [2, 3, 4], results)
True

Stage functions may read :func:`alto.current` here too (the path is the one the
runtimes use, with request ids 0, 1, ... in input order).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from dataclasses import dataclass
from typing import Any

from alto.dataflow import Pipeline
from alto.dataflow._functions import is_class_stage, is_incremental_aggregator
from alto.engine._context import set_current
from alto.errors import StageError

__all__ = ["DROP", "FAILED", "Node", "evaluate", "expected_failures", "matches_reference", "reference_run"]

#: a dropped item (filtered out, or ``on_error="drop"``)
DROP: Any = type("Dropped", (), {"__repr__": lambda self: "DROP"})()
#: an item whose stage failed (``on_error="fail"``): its request fails
FAILED: Any = type("Failed", (), {"__repr__": lambda self: "FAILED"})()


@dataclass
class Node:
    """An expanded item: the value the expand received and its children, by index."""

    parent: Any
    children: list[Any]


def _in_item(stage: str, path: tuple[int, ...], fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with :func:`alto.current` giving ``stage``/``path`` (in a copied
    context, so the caller's context is left as it was)."""

    def run() -> Any:
        set_current(stage, path)
        return fn(*args)

    return contextvars.copy_context().run(run)


def _await(value: Any) -> Any:
    if inspect.isawaitable(value):

        async def wait() -> Any:
            return await value

        return asyncio.run(wait())
    return value


def _children(fn: Any, value: Any) -> tuple[list[Any], BaseException | None]:
    """The children an expand yields, and the exception that ended it early (if any)."""
    out: list[Any] = []
    try:
        result = _await(fn(value))
        if hasattr(result, "__aiter__"):

            async def collect() -> BaseException | None:
                try:
                    async for c in result:
                        out.append(c)
                except Exception as exc:
                    return exc
                return None

            return out, asyncio.run(collect())
        for c in result:
            out.append(c)
    except Exception as exc:
        return out, exc
    return out, None


class _Request:
    """Evaluation of one request: trees by stage, and the failures met."""

    def __init__(self, pipeline: Pipeline, rid: int, value: Any) -> None:
        self.pipeline = pipeline
        self.rid = rid
        self.value = value
        self.trees: dict[str, Any] = {}
        self.failures: set[tuple[str, tuple[int, ...]]] = set()
        stages = pipeline.stages
        self.fns = {n: (s.fn() if is_class_stage(s.fn) else s.fn) for n, s in stages.items()}

    def call(self, name: str, path: tuple[int, ...], *args: Any) -> tuple[bool, Any]:
        """(ok, value or exception) after the stage's retries."""
        spec = self.pipeline.stages[name]
        error: BaseException | None = None
        for _ in range(spec.retries + 1):
            try:
                return True, _in_item(name, path, lambda: _await(self.fns[name](*args)))
            except Exception as exc:
                error = exc
        return False, error

    def failed(self, name: str, path: tuple[int, ...]) -> Any:
        if self.pipeline.stages[name].on_error == "drop":
            return DROP
        self.failures.add((name, path))
        return FAILED

    def walk(self, tree: Any, depth: int, path: tuple[int, ...], leaf: Any) -> Any:
        if tree is DROP or tree is FAILED:
            return tree
        if depth == 0:
            return leaf(tree, path)
        return Node(tree.parent, [self.walk(c, depth - 1, path + (i,), leaf) for i, c in enumerate(tree.children)])

    def walk2(self, a: Any, b: Any, depth: int, leaf: Any) -> Any:
        if a is FAILED or b is FAILED:
            return FAILED
        if a is DROP or b is DROP:
            return DROP
        if depth == 0:
            return leaf(a, b)
        kids = [self.walk2(x, y, depth - 1, leaf) for x, y in zip(a.children, b.children, strict=True)]
        return Node(a.parent, kids)

    def ev(self, name: str) -> Any:
        if name in self.trees:
            return self.trees[name]
        spec = self.pipeline.stages[name]
        d = spec.input_depth
        root = (self.rid,)
        kind = spec.kind
        if kind == "input":
            r = self.value
        elif kind in ("map", "filter"):

            def one(v: Any, path: tuple[int, ...]) -> Any:
                ok, out = self.call(name, path, v)
                if not ok:
                    return self.failed(name, path)
                return out if kind == "map" else (v if out else DROP)

            r = self.walk(self.ev(spec.inputs[0]), d, root, one)
        elif kind == "expand":

            def grow(v: Any, path: tuple[int, ...]) -> Any:
                attempts = spec.retries + 1
                for _ in range(attempts):
                    kids, error = _in_item(name, path, _children, self.fns[name], v)
                    if error is None:
                        return Node(v, kids)
                if spec.on_error == "drop":
                    return Node(v, kids)  # the children generated before the failure survive
                # The children sent before the failure still flow on (their own failures
                # may be the one reported); the group can never complete.
                self.failures.add((name, path))
                return Node(v, [*kids, FAILED])

            r = self.walk(self.ev(spec.inputs[0]), d, root, grow)
        elif kind == "zip":
            r = self.walk2(self.ev(spec.inputs[0]), self.ev(spec.inputs[1]), d, lambda a, b: (a, b))
        elif kind == "aggregate":
            r = self.walk(self.ev(spec.inputs[0]), d - 1, root, lambda node, path: self.close(name, node, path))
        else:
            raise AssertionError(kind)
        self.trees[name] = r
        return r

    def close(self, name: str, node: Node, path: tuple[int, ...]) -> Any:
        if any(c is FAILED for c in node.children):
            return FAILED  # the group never completes: the request failed below
        kids = [(i, c) for i, c in enumerate(node.children) if c is not DROP]
        cls = self.pipeline.stages[name].fn
        if not is_incremental_aggregator(cls):
            ok, out = self.call(name, path, node.parent, [c for _, c in kids])
            return out if ok else self.failed(name, path)

        def incremental() -> Any:
            inst = cls()
            _await(inst.start(node.parent))
            for i, c in kids:
                _await(inst.add(i, c))
            return _await(inst.finish())

        try:
            return _in_item(name, path, incremental)
        except Exception:
            return self.failed(name, path)


def evaluate(pipeline: Pipeline, value: Any, rid: int = 0) -> dict[str, Any]:
    """The tree each output stage produces for one request (``DROP``/``FAILED`` where so)."""
    req = _Request(pipeline, rid, value)
    return {name: req.ev(name) for name in pipeline.outputs}


def expected_failures(pipeline: Pipeline, value: Any, rid: int = 0) -> set[tuple[str, tuple[int, ...]]]:
    """Every ``(stage, path)`` that fails for this input (empty: the request succeeds).

    A runtime's :class:`~alto.StageError` for the request must name one of them.
    """
    req = _Request(pipeline, rid, value)
    for name in pipeline.outputs:
        req.ev(name)
    return req.failures


def reference_run(pipeline: Pipeline, inputs: list[Any]) -> list[Any]:
    """What ``alto.run(pipeline, inputs, return_exceptions=True)`` must return.

    A failing request's slot holds a :class:`~alto.StageError` naming one of its
    failures (compare with :func:`matches_reference`, which accepts any of them).
    """
    finals = pipeline.final_outputs()
    results: list[Any] = []
    for rid, x in enumerate(inputs):
        req = _Request(pipeline, rid, x)
        trees = {name: req.ev(name) for name in pipeline.outputs}
        if req.failures:
            stage, path = min(req.failures, key=lambda f: (f[1], f[0]))
            results.append(StageError(stage, path))
            continue
        vals = {n: (None if trees[n] is DROP else trees[n]) for n in finals}
        results.append(vals[finals[0]] if len(finals) == 1 else vals)
    return results


def matches_reference(pipeline: Pipeline, inputs: list[Any], results: list[Any], first_rid: int = 0) -> bool:
    """True if ``results`` (from ``run(..., return_exceptions=True)``) are what the
    reference expects: equal values, and for failed requests a StageError naming one of
    the request's failures. ``first_rid``: the request id of ``inputs[0]`` on the runtime
    (request ids only matter to stages that read :func:`alto.current`; they follow
    input order for ``LocalRuntime.map``, while a RayRuntime's gateway numbers requests
    submitted concurrently in the order they arrive).
    """
    expected = reference_run_with_failures(pipeline, inputs, first_rid)
    if len(expected) != len(results):
        return False
    for (value, failures), got in zip(expected, results, strict=True):
        if failures:
            if not isinstance(got, StageError) or (got.stage, got.path[1:]) not in {(s, p[1:]) for s, p in failures}:
                return False
        elif isinstance(got, BaseException) or got != value:
            return False
    return True


def reference_run_with_failures(
    pipeline: Pipeline, inputs: list[Any], first_rid: int = 0
) -> list[tuple[Any, set[tuple[str, tuple[int, ...]]]]]:
    """Per input: (expected value, the failures that may be reported instead)."""
    finals = pipeline.final_outputs()
    out = []
    for k, x in enumerate(inputs):
        req = _Request(pipeline, first_rid + k, x)
        trees = {name: req.ev(name) for name in pipeline.outputs}
        vals = {n: (None if trees[n] is DROP else trees[n]) for n in finals}
        out.append((vals[finals[0]] if len(finals) == 1 else vals, req.failures))
    return out
