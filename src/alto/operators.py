"""Stage operators: what one replica of each stage kind does with one message.

Shared by every runtime. The replica executor (:mod:`alto.runtime.replica`) is each
operator's :class:`StageContext` and calls :meth:`Operator.handle` once per message, in
one of the replica's lanes; everything an operator awaits runs in that item's scope, so
cancelling a request interrupts exactly its items. ``emit`` routes one message
downstream and returns ``None`` or an awaitable to wait on (backpressure).

Control messages (:class:`~alto.ancestry.Open`, :class:`~alto.ancestry.Done`,
tombstones of outer levels) pass through every stage unchanged so that counted
completion works downstream; only ``aggregate`` consumes the markers of the level it
closes, and ``zip`` forwards one copy of each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Container
from concurrent.futures import Executor
from contextlib import aclosing
from functools import partial
from typing import Any, Protocol

from .ancestry import Done, Item, Message, Open, Tombstone
from .context import call_as
from .errors import StageError
from .invoke import (
    SKIPPED,
    AsyncResult,
    Handoff,
    call_with_retries,
    classify,
    iterate_in_thread,
    run_sync_batch,
)
from .pipeline import StageSpec, is_class_stage

__all__ = ["Operator", "Right", "StageContext", "make_operator"]

log = logging.getLogger("alto")
Emit = Callable[[Message], "Awaitable[Any] | None"]


class Right:
    """Wraps a message arriving on a zip's second input (port 1)."""

    __slots__ = ("msg",)

    def __init__(self, msg: Message) -> None:
        self.msg = msg


class StageContext(Protocol):
    """What an operator needs from its replica executor."""

    streaming: bool
    cancelled: Container[int]
    executor: Executor
    sync_budget_s: float

    def fail(self, error: StageError) -> None:
        """Fail the request ``error.path[0]`` (deferred: never runs inside the caller)."""


class Operator:
    """One replica of one stage. Subclasses implement :meth:`handle` for their kind.

    ``passes_control``: the executor forwards control messages itself (only items
    reach :meth:`handle`). ``batched``: the executor hands every ready message to
    :meth:`handle_batch` at once (blocking functions run one serial thread hop per batch).
    """

    passes_control = True
    batched = False
    fast_fn: Any = None  # set for async maps: the executor calls it directly (hot path)
    # set where most items need no await: ``quick(item)`` handles it at once and returns
    # True, or returns False (nothing done) and the executor calls handle()
    quick: Callable[[Item], bool] | None = None

    def __init__(self, spec: StageSpec, ctx: StageContext, emit: Emit) -> None:
        self.spec = spec
        self.name = spec.name
        self.ctx = ctx
        self.emit = emit
        self.fn: Any = spec.fn
        self.mode = "sync"
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

    async def handle(self, msg: Any) -> None:
        raise NotImplementedError

    async def handle_batch(self, msgs: list[Any]) -> None:
        raise NotImplementedError

    def cancel_request(self, rid: int) -> None:
        """Request ``rid`` was cancelled: drop its state (its items are interrupted by the executor)."""
        self.purge(rid)

    def purge(self, rid: int) -> None:
        """Drop per-request state (aggregation groups, zip halves)."""

    async def close(self) -> None:
        """Release what the operator holds (nothing by default)."""

    # -- helpers -----------------------------------------------------------------

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
        for attempt in range(retries + 1):
            try:
                return await self.fn(*args)
            except Exception:
                if attempt == retries:
                    raise
        raise AssertionError("unreachable")


class MapOperator(Operator):
    """``map``: one output per input. ``filter`` reuses it with a predicate."""

    async def setup(self) -> None:
        await super().setup()
        # Blocking functions one at a time: one thread hop per batch (returning early
        # after sync_budget_s, so results of slow calls still stream downstream).
        self.batched = self.mode == "sync" and self.spec.max_in_flight == 1
        if self.mode == "async" and not self.spec.retries and type(self) is MapOperator:
            self.fast_fn = self.fn

    def _result(self, msg: Item, value: Any) -> Message:
        return Item(msg.path, value)

    async def handle(self, msg: Item) -> None:
        self.busy += 1
        try:
            if self.mode == "async" and not self.spec.retries:
                value = await self.fn(msg.value)  # the hot path: no extra layer
            else:
                value = await self._apply(msg.path, msg.value)
        except Exception as exc:
            await self.failed(msg.path, exc)
            return
        finally:
            self.busy -= 1
            self.handled += 1
        wait = self.emit(self._result(msg, value))
        if wait is not None:
            await wait

    async def handle_batch(self, msgs: list[Any]) -> None:
        items: list[Item] = []
        for msg in msgs:
            if msg.__class__ is Item:
                items.append(msg)
            else:
                await self._send(msg)
        ctx = self.ctx
        ended = ctx.cancelled
        plain_map = type(self) is MapOperator
        while items:
            live = [m for m in items if m.path[0] not in ended]
            if not live:
                return
            self.busy = len(live)
            try:
                outcomes = await self._loop.run_in_executor(
                    ctx.executor,
                    run_sync_batch,
                    self.fn,
                    self.name,
                    live,
                    ended,
                    self.spec.retries,
                    ctx.sync_budget_s,
                )
            finally:
                self.busy = 0
            self.handled += len(outcomes)
            for msg, (ok, value) in zip(live, outcomes, strict=False):  # outcomes may stop early
                if value is SKIPPED or msg.path[0] in ended:
                    continue
                if ok:
                    wait = self.emit(Item(msg.path, value) if plain_map else self._result(msg, value))
                    if wait is not None:
                        await wait
                else:
                    await self.failed(msg.path, value)
            items = live[len(outcomes) :]


class FilterOperator(MapOperator):
    """``filter``: keep an item if the predicate is truthy, else send a tombstone."""

    def _result(self, msg: Item, value: Any) -> Message:
        return msg if value else Tombstone(msg.path)


class ExpandOperator(Operator):
    """``expand``: emits ``Open``, each child as it is generated, then ``Done(count)``.

    With ``streaming=False`` (the paper's baseline) the children of an item are buffered
    until the generator ends, then passed on together.
    """

    async def handle(self, msg: Item) -> None:
        path, value = msg.path, msg.value
        rid = path[0]
        streaming = self.ctx.streaming
        cancelled = self.ctx.cancelled
        held: list[Message] = []
        emitted = 0
        attempt = 0
        self.busy += 1
        try:
            if streaming:
                await self._send(Open(path, value))
            while True:
                try:
                    if self.mode == "asyncgen" and not emitted:
                        source = self.fn(value)  # the common case: no layer between
                    else:
                        source = self._children(value, path, skip=emitted)
                    async with aclosing(source) as children:
                        async for child in children:
                            if rid in cancelled:
                                return
                            out = Item(path + (emitted,), child)
                            emitted += 1
                            if streaming:
                                wait = self.emit(out)
                                if wait is not None:
                                    await wait
                            else:
                                held.append(out)
                    break
                except Exception as exc:
                    if attempt < self.spec.retries:
                        attempt += 1  # children are identified by index: the retry skips those sent
                        continue
                    if self.spec.on_error == "drop":
                        log.warning(
                            "stage %r: expand of %s ended early after %d children: %r", self.name, path, emitted, exc
                        )
                        break
                    self.ctx.fail(StageError(self.name, path, exc))
                    return
        finally:
            self.busy -= 1
            self.handled += 1
        if rid in cancelled:
            return
        if not streaming:
            await self._send(Open(path, value))
            for out in held:
                await self._send(out)
        await self._send(Done(path, emitted, value))

    async def _children(self, value: Any, path: tuple[int, ...], skip: int) -> AsyncIterator[Any]:
        if self.mode == "asyncgen":
            source: Any = self.fn(value)
        elif self.mode == "async":
            source = await self.fn(value)
        else:
            async for child in self._children_from_thread(value, path, skip):
                yield child
            return
        async for child in _iterate(source, skip):
            yield child

    async def _children_from_thread(self, value: Any, path: tuple[int, ...], skip: int) -> AsyncIterator[Any]:
        handoff = Handoff(self._loop)
        future = self._loop.run_in_executor(
            self.ctx.executor, iterate_in_thread, self.fn, value, handoff, skip, self.name, path
        )
        try:
            while True:
                items = await handoff.drain()
                if not items:
                    break
                for child in items:
                    if child.__class__ is AsyncResult:
                        async for c in _iterate(child.iterable, skip):
                            yield c
                    else:
                        yield child
            if handoff.error is not None:
                raise handoff.error
        finally:
            handoff.cancel()  # stop the producer at its next item if we leave early
            if handoff.finished:
                await future
            else:  # interrupted: the thread ends at its next item; the pool's owner joins it
                future.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a generator thread ended with %r after its request was cancelled", future.exception())


async def _iterate(source: Any, skip: int) -> AsyncIterator[Any]:
    n = 0
    if hasattr(source, "__aiter__"):
        async with aclosing(source) if hasattr(source, "aclose") else _nullcontext() as it:
            async for child in it:
                if n >= skip:
                    yield child
                n += 1
    else:
        for child in source:
            if n >= skip:
                yield child
            n += 1


class _nullcontext:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: Any) -> None:
        return None


# The fan-in operators subclass Operator, so their module is imported once it exists.
from .fanin import AggregateOperator, ZipOperator  # noqa: E402

_KINDS: dict[str, type[Operator]] = {
    "map": MapOperator,
    "filter": FilterOperator,
    "expand": ExpandOperator,
    "zip": ZipOperator,
    "aggregate": AggregateOperator,
}


def make_operator(spec: StageSpec, ctx: StageContext, emit: Emit) -> Operator:
    """The operator for one replica of ``spec`` (call :meth:`Operator.setup` next)."""
    return _KINDS[spec.kind](spec, ctx, emit)
