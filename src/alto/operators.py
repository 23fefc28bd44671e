"""Stage operators: what one replica of each stage kind does with the messages it receives.

Shared by every runtime. A runtime gives each replica a :class:`StageContext` (cancelled
requests, thread pool, failure reporting) and an ``emit`` function that routes one
message downstream and returns ``None`` or an awaitable to wait on (backpressure). The
runtime feeds batches of messages to :meth:`Operator.process`.

Control messages (:class:`~alto.ancestry.Open`, :class:`~alto.ancestry.Done`,
tombstones of outer levels) pass through every stage unchanged so that counted
completion works downstream; only ``aggregate`` consumes the markers of the level it
closes, and ``zip`` forwards one copy of each.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Container
from concurrent.futures import Executor
from contextlib import aclosing
from typing import Any, Protocol

from .ancestry import Done, Group, Item, Message, Open, Tombstone
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
from .pipeline import StageSpec, _is_incremental_aggregator, is_class_stage

__all__ = ["Operator", "Right", "StageContext", "make_operator"]

log = logging.getLogger("alto")
Emit = Callable[[Message], "Awaitable[Any] | None"]


class Right:
    """Wraps a message arriving on a zip's second input (port 1)."""

    __slots__ = ("msg",)

    def __init__(self, msg: Message) -> None:
        self.msg = msg


class StageContext(Protocol):
    """What an operator needs from its runtime."""

    streaming: bool
    cancelled: Container[int]
    executor: Executor
    sync_budget_s: float

    def fail(self, error: StageError) -> None:
        """Fail the request ``error.path[0]``: resolve it with ``error``, cancel its work."""


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Operator:
    """One replica of one stage. Subclasses implement :meth:`process` for their kind."""

    def __init__(self, spec: StageSpec, ctx: StageContext, emit: Emit) -> None:
        self.spec = spec
        self.name = spec.name
        self.ctx = ctx
        self.emit = emit
        self.fn: Any = spec.fn
        self.mode = "sync"
        self.busy = 0  # items being processed now (part of the load a router sees)
        self.handled = 0  # items processed so far
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[Any] | None = None
        self._current: int | None = None  # request being processed inline (interruptible)
        self._interrupt: int | None = None
        self._closing = False
        self._tasks: dict[int, set[asyncio.Task[Any]]] = {}
        self._handoffs: dict[int, set[Handoff]] = {}
        self._slots = asyncio.Semaphore(spec.concurrency) if spec.concurrency > 1 else None

    # -- lifecycle ---------------------------------------------------------------

    async def setup(self) -> None:
        """Construct a class stage once per replica (in a thread: it may load a model)."""
        if is_class_stage(self.fn):
            self.fn = await self._loop.run_in_executor(self.ctx.executor, self.fn)
        if self.fn is not None:
            self.mode = classify(self.fn)

    def bind(self, task: asyncio.Task[Any]) -> None:
        """Tell the operator which task runs :meth:`process` (so work can be interrupted)."""
        self._task = task

    async def process(self, batch: list[Any]) -> None:
        raise NotImplementedError

    def cancel_request(self, rid: int) -> None:
        """Stop all work for request ``rid`` now: inline call, item tasks, threads, state."""
        if self._current == rid and self._task is not None and self._interrupt is None:
            self._interrupt = rid
            self._task.cancel()
        for task in self._tasks.pop(rid, ()):
            task.cancel()
        for handoff in self._handoffs.pop(rid, ()):
            handoff.cancel()
        self.purge(rid)

    def purge(self, rid: int) -> None:
        """Drop per-request state (aggregation groups, zip halves)."""

    async def close(self) -> None:
        self._closing = True
        tasks = [t for ts in self._tasks.values() for t in ts]
        for t in tasks:
            t.cancel()
        for hs in self._handoffs.values():
            for h in hs:
                h.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # -- helpers -----------------------------------------------------------------

    def _consume_interrupt(self) -> bool:
        """After a CancelledError: True if it was a per-request interrupt (keep going)."""
        if self._interrupt is None or self._closing:
            return False
        self._interrupt = None
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True

    async def _send(self, msg: Message) -> None:
        wait = self.emit(msg)
        if wait is not None:
            await wait

    async def _error(self, path: tuple[int, ...], exc: BaseException) -> None:
        """Apply the stage's ``on_error`` policy to a failure on the item at ``path``."""
        if self.spec.on_error == "drop":
            log.warning("stage %r dropped item %s: %s: %s", self.name, path, type(exc).__name__, exc)
            await self._send(Tombstone(path))
        else:
            self.ctx.fail(StageError(self.name, path, exc))

    async def _apply(self, *args: Any) -> Any:
        """Call the stage function once (with retries): async inline, sync in a thread."""
        retries = self.spec.retries
        if self.mode == "sync":
            return await self._loop.run_in_executor(self.ctx.executor, call_with_retries, self.fn, args, retries)
        for attempt in range(retries + 1):
            try:
                return await self.fn(*args)
            except Exception:
                if attempt == retries:
                    raise
        raise AssertionError("unreachable")

    async def _spawn(self, rid: int, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` as an owned task, at most ``concurrency`` at a time."""
        assert self._slots is not None
        await self._slots.acquire()
        task = self._loop.create_task(self._slot(rid, fn(*args)))
        self._tasks.setdefault(rid, set()).add(task)
        task.add_done_callback(lambda t: self._forget(rid, t))

    async def _slot(self, rid: int, coro: Awaitable[Any]) -> None:
        self.busy += 1
        try:
            await coro
        except asyncio.CancelledError:
            pass  # cancelled for its request, or at shutdown: the owner waits for us
        except Exception as exc:  # a bug in ALTO itself: fail the request loudly
            log.exception("internal error in stage %r", self.name)
            self.ctx.fail(StageError(self.name, (rid,), exc))
        finally:
            self.busy -= 1
            self.handled += 1
            self._slots.release()  # type: ignore[union-attr]

    def _forget(self, rid: int, task: asyncio.Task[Any]) -> None:
        tasks = self._tasks.get(rid)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._tasks[rid]

    async def _each_item(self, batch: list[Any], one: Callable[[Item], Awaitable[None]]) -> None:
        """Generic driver: items go to ``one`` (inline or as tasks); control passes through."""
        cancelled = self.ctx.cancelled
        for msg in batch:
            if msg.__class__ is not Item:
                await self._send(msg)
                continue
            rid = msg.path[0]
            if rid in cancelled:
                continue
            if self._slots is not None:
                await self._spawn(rid, one, msg)
                continue
            self._current = rid
            self.busy = 1
            try:
                await one(msg)
            except asyncio.CancelledError:
                if not self._consume_interrupt():
                    raise
            finally:
                self._current = None
                self.busy = 0
                self.handled += 1


class MapOperator(Operator):
    """``map``: one output per input. ``filter`` reuses it with a predicate."""

    def _result(self, msg: Item, value: Any) -> Message:
        return Item(msg.path, value)

    async def _one(self, msg: Item) -> None:
        try:
            value = await self._apply(msg.value)
        except Exception as exc:
            await self._error(msg.path, exc)
            return
        await self._send(self._result(msg, value))

    async def process(self, batch: list[Any]) -> None:
        if self._slots is not None:
            await self._each_item(batch, self._one)
        elif self.mode == "sync":
            await self._process_sync(batch)
        else:
            await self._process_async(batch)

    async def _process_async(self, batch: list[Any]) -> None:
        # The hot path: no per-item task, no extra coroutine layer.
        cancelled = self.ctx.cancelled
        emit = self.emit
        fn = self.fn
        retries = self.spec.retries
        plain_map = type(self) is MapOperator
        for msg in batch:
            if msg.__class__ is Item:
                path = msg.path
                if path[0] in cancelled:
                    continue
                self._current = path[0]
                try:
                    if retries:
                        value = await self._apply(msg.value)
                    else:
                        value = await fn(msg.value)
                except asyncio.CancelledError:
                    self._current = None
                    if self._consume_interrupt():
                        continue
                    raise
                except Exception as exc:
                    self._current = None
                    await self._error(path, exc)
                    continue
                self._current = None
                self.handled += 1
                out = Item(path, value) if plain_map else self._result(msg, value)
            else:
                out = msg
            wait = emit(out)
            if wait is not None:
                await wait

    async def _process_sync(self, batch: list[Any]) -> None:
        # Blocking functions: run the batch's items in one thread hop; the thread returns
        # early after sync_budget_s so results of slow calls still stream downstream.
        items: list[Item] = []
        for msg in batch:
            if msg.__class__ is Item:
                items.append(msg)
            else:
                await self._send(msg)
        ctx = self.ctx
        while items:
            live = [m for m in items if m.path[0] not in ctx.cancelled]
            if not live:
                return
            self.busy = len(live)
            outcomes = await self._loop.run_in_executor(
                ctx.executor,
                run_sync_batch,
                self.fn,
                [m.value for m in live],
                [m.path[0] for m in live],
                ctx.cancelled,
                self.spec.retries,
                ctx.sync_budget_s,
            )
            self.busy = 0
            for msg, (ok, value) in zip(live, outcomes, strict=False):  # outcomes may stop early
                self.handled += 1
                if value is SKIPPED or msg.path[0] in ctx.cancelled:
                    continue
                if ok:
                    await self._send(self._result(msg, value))
                else:
                    await self._error(msg.path, value)
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

    async def process(self, batch: list[Any]) -> None:
        await self._each_item(batch, self._expand)

    async def _expand(self, msg: Item) -> None:
        path, value = msg.path, msg.value
        rid = path[0]
        streaming = self.ctx.streaming
        cancelled = self.ctx.cancelled
        held: list[Message] = []
        emitted = 0
        attempt = 0
        if streaming:
            await self._send(Open(path, value))
        while True:
            try:
                async with aclosing(self._children(value, rid, skip=emitted)) as children:
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
        if rid in cancelled:
            return
        if not streaming:
            await self._send(Open(path, value))
            for out in held:
                await self._send(out)
        await self._send(Done(path, emitted, value))

    async def _children(self, value: Any, rid: int, skip: int) -> AsyncIterator[Any]:
        if self.mode == "asyncgen":
            source: Any = self.fn(value)
        elif self.mode == "async":
            source = await self.fn(value)
        else:
            async for child in self._children_from_thread(value, rid, skip):
                yield child
            return
        async for child in _iterate(source, skip):
            yield child

    async def _children_from_thread(self, value: Any, rid: int, skip: int) -> AsyncIterator[Any]:
        handoff = Handoff(self._loop)
        self._handoffs.setdefault(rid, set()).add(handoff)
        future = self._loop.run_in_executor(self.ctx.executor, iterate_in_thread, self.fn, value, handoff, skip)
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
            handoff.cancel()  # stop the producer if we leave early
            hs = self._handoffs.get(rid)
            if hs is not None:
                hs.discard(handoff)
                if not hs:
                    del self._handoffs[rid]
            await asyncio.shield(future)


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


class ZipOperator(Operator):
    """``zip``: pairs the item at a path from each input; a tombstone on either side wins."""

    def __init__(self, spec: StageSpec, ctx: StageContext, emit: Emit) -> None:
        super().__init__(spec, ctx, emit)
        self._halves: dict[tuple[int, ...], tuple[int, Message]] = {}

    async def process(self, batch: list[Any]) -> None:
        cancelled = self.ctx.cancelled
        for msg in batch:
            port = 0
            if msg.__class__ is Right:
                port, msg = 1, msg.msg
            cls = msg.__class__
            if cls is Open or cls is Done:
                if port == 0:  # both inputs carry the same markers: forward one copy
                    await self._send(msg)
                continue
            path = msg.path
            if path[0] in cancelled:
                continue
            other = self._halves.get(path)
            if other is None or other[0] == port:
                self._halves[path] = (port, msg)
                continue
            del self._halves[path]
            left, right = (other[1], msg) if port == 1 else (msg, other[1])
            self.handled += 1
            if left.__class__ is Item and right.__class__ is Item:
                await self._send(Item(path, (left.value, right.value)))  # type: ignore[union-attr]
            else:
                await self._send(Tombstone(path))

    def purge(self, rid: int) -> None:
        for path in [p for p in self._halves if p[0] == rid]:
            del self._halves[path]


_DEAD = object()  # state of a group whose aggregation already failed


class AggregateOperator(Operator):
    """``aggregate``: collects each group's children and closes the level.

    A group (one parent path) completes when its ``Done`` marker and ``count`` distinct
    children or tombstones have arrived, in any order. ``fn(parent, children)`` then
    gets the surviving children ordered by index. An incremental aggregator class
    (``start``/``add``/``finish``) gets one instance per group, started as soon as the
    parent is known (``Open`` or ``Done``) and fed each child as it arrives; its methods
    run on the event loop, so keep them quick (or make them ``async``).
    """

    def __init__(self, spec: StageSpec, ctx: StageContext, emit: Emit) -> None:
        super().__init__(spec, ctx, emit)
        self.incremental = _is_incremental_aggregator(spec.fn)
        self._plen = spec.depth + 1  # length of a parent path
        self._groups: dict[tuple[int, ...], Group] = {}

    async def setup(self) -> None:
        if not self.incremental:
            await super().setup()

    async def process(self, batch: list[Any]) -> None:
        cancelled = self.ctx.cancelled
        plen = self._plen
        for msg in batch:
            path = msg.path
            cls = msg.__class__
            n = len(path)
            if n < plen or (n == plen and cls is Tombstone):
                await self._send(msg)  # an outer level's marker, or a dropped parent
                continue
            if path[0] in cancelled:
                continue
            key = path if n == plen else path[:plen]
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = Group()
            try:
                if cls is Open or cls is Done:
                    first = group.set_parent(msg.value)
                    if cls is Done:
                        group.expected = msg.count
                    if self.incremental and first:
                        await self._start(group)
                else:
                    await self._add(group, msg)
            except Exception as exc:
                # The group is dead: keep counting its children so it is freed when
                # complete, but report the failure (or the tombstone) now.
                group.state = _DEAD
                group.values.clear()
                await self._error(key, exc)
            if group.complete:
                del self._groups[key]
                if group.state is _DEAD:
                    continue
                if self._slots is not None:
                    await self._spawn(key[0], self._finish, key, group)
                else:
                    self._current = key[0]
                    try:
                        await self._finish(key, group)
                    except asyncio.CancelledError:
                        if not self._consume_interrupt():
                            raise
                    finally:
                        self._current = None

    async def _start(self, group: Group) -> None:
        if group.state is _DEAD:
            return
        group.state = self.fn()
        await _maybe_await(group.state.start(group.parent))
        for index in sorted(group.values):  # children that arrived before the parent
            await _maybe_await(group.state.add(index, group.values[index]))
        group.values.clear()

    async def _add(self, group: Group, msg: Item | Tombstone) -> None:
        if group.state is None:  # collect (fn form, or before an incremental start)
            group.add_child(msg)
            return
        index = msg.path[-1]
        if index in group.seen:
            return  # a duplicate (replayed) child
        group.seen.add(index)
        if msg.__class__ is Item and group.state is not _DEAD:
            await _maybe_await(group.state.add(index, msg.value))

    async def _finish(self, key: tuple[int, ...], group: Group) -> None:
        self.busy += 1
        try:
            if self.incremental:
                value = await _maybe_await(group.state.finish())
            else:
                value = await self._apply(group.parent, group.children())
        except Exception as exc:
            await self._error(key, exc)
            return
        finally:
            self.busy -= 1
            self.handled += 1
        await self._send(Item(key, value))

    def purge(self, rid: int) -> None:
        for key in [k for k in self._groups if k[0] == rid]:
            del self._groups[key]

    @property
    def open_groups(self) -> int:
        return len(self._groups)


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
