"""The :class:`Operator` base: what the executor knows of every stage kind.

Shared by every runtime. The replica executor (:class:`~alto.engine.ReplicaExecutor`)
is each operator's :class:`StageContext`. Everything an operator awaits runs in the
item's scope (:mod:`alto.engine._scope`), so cancelling a request interrupts exactly its
items. ``emit`` routes one message downstream and returns ``None`` or an awaitable to
wait on (backpressure).

The executor's whole contract with an operator, declared here once:

- ``setup()`` / ``close()``: lifecycle (a class stage is constructed in ``setup``);
- ``handle(msg)``: one message, awaited in a lane; a stage failure is handled inside
  (the stage's ``on_error`` policy), never raised. The one method every kind implements.
- the other ways in, each *declared* by the operator (``None`` where it has none):

  - ``quick(msg) -> bool``: handled at once with no await (True), or not (False);
  - ``call``: the operator promises that handling an item is exactly ``await
    call(value)``, then counting it in ``handled`` and sending ``Item(path, result)``
    on (an exception goes to ``failed``); the executor does just that, with no
    coroutine of its own (an async ``map``: the hot path);
  - ``handle_batch(msgs)``: every ready message at once (blocking functions, one
    thread hop per batch);
  - ``forward(msg)``: a control message passing through unchanged (``None``: markers
    go to ``handle``, as in ``zip`` and ``aggregate``);

- ``cancel_request(rid)``: drop the request's state; ``busy``/``handled``/``failures``:
  the counters (the executor reads them; it changes ``handled`` only as a declared
  ``call`` promises).

Control messages (:class:`~alto.dataflow.Open`, :class:`~alto.dataflow.Done`,
tombstones of outer levels) pass through every stage unchanged so that counted
completion works downstream; only ``aggregate`` consumes the markers of the level it
closes, and ``zip`` forwards one copy of each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Container
from concurrent.futures import Executor
from functools import partial
from typing import Any, Protocol

from alto.dataflow import Item, Message, StageSpec, Tombstone
from alto.dataflow._functions import FunctionKind, classify, is_class_stage
from alto.engine._context import call_as
from alto.engine._invoke import attempts, call_with_retries
from alto.errors import StageError

__all__ = ["Emit", "Operator", "Right", "StageContext"]

log = logging.getLogger("alto")
Emit = Callable[[Message], "Awaitable[Any] | None"]


class Right:
    """Wraps a message arriving on a zip's second input (port 1)."""

    __slots__ = ("msg",)

    def __init__(self, msg: Message) -> None:
        self.msg = msg


class StageContext(Protocol):
    """What an operator needs from its replica executor."""

    @property
    def streaming(self) -> bool: ...
    @property
    def cancelled(self) -> Container[int]: ...
    @property
    def executor(self) -> Executor: ...
    @property
    def sync_budget_s(self) -> float: ...

    def fail(self, error: StageError) -> None:
        """Fail the request ``error.path[0]`` (deferred: never runs inside the caller)."""


class Operator:
    """One replica of one stage. Subclasses implement :meth:`handle` for their kind and
    declare their fast paths (see the module docstring)."""

    #: every ready message at once; declared (set in ``setup``) by an operator that wants it
    handle_batch: Callable[[list[Any]], Awaitable[None]] | None = None
    #: an async function whose result is the item's new value, awaited by the executor itself
    call: Callable[[Any], Awaitable[Any]] | None = None
    #: where most items need no await: ``quick(item)`` handles it at once and returns
    #: True, or returns False (nothing done) and the executor calls handle()
    quick: Callable[[Item], bool] | None = None

    def __init__(self, spec: StageSpec, ctx: StageContext, emit: Emit) -> None:
        self.spec = spec
        self.name = spec.name
        self.ctx = ctx
        self.emit = emit
        self.fn: Any = spec.fn
        self.mode: FunctionKind = "sync"
        self.busy = 0  # items being processed now (part of the load a router sees)
        self.handled = 0  # items processed so far
        self.failures = 0  # items the stage failed on (whatever its on_error policy did)
        self.failed_paths: list[tuple[int, ...]] | None = None  # a list: record them (stage timing)
        self._loop = asyncio.get_running_loop()

    # -- lifecycle ---------------------------------------------------------------

    async def setup(self) -> None:
        """Construct a class stage once per replica (in a thread: it may load a model)."""
        if is_class_stage(self.fn):
            self.fn = await self._loop.run_in_executor(self.ctx.executor, self.fn)
        if self.fn is not None:
            self.mode = classify(self.fn)

    async def close(self) -> None:
        """Release what the operator holds (nothing by default)."""

    # -- messages ------------------------------------------------------------------

    async def handle(self, msg: Any) -> None:
        raise NotImplementedError

    def forward(self, msg: Message) -> Awaitable[Any] | None:
        """A control message passing through: sent on unchanged (the fan-in operators
        declare ``forward = None``: they consume the markers of what they join)."""
        return self.emit(msg)

    def cancel_request(self, rid: int) -> None:
        """Request ``rid`` was cancelled: drop its state (its items are interrupted by the executor)."""
        self.purge(rid)

    def purge(self, rid: int) -> None:
        """Drop per-request state (aggregation groups, zip halves)."""

    # -- helpers for the kinds -----------------------------------------------------

    async def _send(self, msg: Message) -> None:
        wait = self.emit(msg)
        if wait is not None:
            await wait

    async def failed(self, path: tuple[int, ...], exc: BaseException) -> None:
        """Apply the stage's ``on_error`` policy to a failure on the item at ``path``."""
        self.failures += 1
        if self.failed_paths is not None:
            self.failed_paths.append(path)
        if self.spec.on_error == "drop":
            log.warning("stage %r dropped item %s: %s: %s", self.name, path, type(exc).__name__, exc)
            await self._send(Tombstone(path))
        else:
            self.ctx.fail(StageError(self.name, path, exc))

    async def _apply(self, path: tuple[int, ...], *args: Any) -> Any:
        """Call the stage function once (with retries): async inline, sync in a thread."""
        retries = self.spec.retries
        if self.mode == "sync":
            call = partial(call_as, self.name, path, call_with_retries, self.fn, args, retries)
            return await self._loop.run_in_executor(self.ctx.executor, call)
        for attempt in attempts(retries):
            with attempt:
                return await self.fn(*args)
        raise AssertionError("unreachable: the last attempt returns or raises")
