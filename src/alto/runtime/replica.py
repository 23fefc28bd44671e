"""The replica executor both runtimes use: inbox, lanes, item scopes, supervision.

A runtime gives each replica of a stage a :class:`ReplicaExecutor` and supplies only
placement (which process it lives in) and transport (the ``emit`` function that
carries a message to the next replica). The executor owns everything that runs for
that replica:

* a bounded :class:`Inbox`, drained in batches;
* up to ``concurrency`` **lanes**: owned tasks that take messages and run the stage's
  :class:`~alto.operators.Operator` on them. One lane runs while items finish without
  waiting; when an item has to wait (an LLM call, a thread hop), the next lane starts on
  the next message, so a stage with ``concurrency=64`` has up to 64 items in flight and
  a no-op stage pays no task per item;
* the **scope** of every item: a lane's task runs :func:`_drive_lane`, which sees every
  wait of the item the lane is on and can throw ``CancelledError`` into that one item.
  So cancelling a request (``cancel_request``) interrupts exactly that request's items
  -- never the lane, never another request -- and an item that finishes without
  waiting (most no-op or cached calls) costs one plain ``await``;
* **supervision**: an error inside ALTO while handling an item fails that item's
  request (an error naming the stage) and the lane goes on; a lane that dies anyway
  fails the requests it held and is replaced. Nothing ends silently.

Stage failures are not errors of the executor: the operator turns them into the
stage's ``on_error`` policy, and ``fail`` is always deferred (scheduled on the loop),
so a failing operator can never cancel itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from typing import Any, Protocol

from ..ancestry import Item
from ..context import lane_cell
from ..errors import StageError
from ..operators import Operator, Right, make_operator
from ..pipeline import StageSpec
from ..scheduling import llm_call_of
from .emit import Emit, router_state
from .inbox import Inbox
from .observe import Observer, StageTimer
from .options import RuntimeOptions
from .requests import Ended

__all__ = ["Lane", "ReplicaExecutor"]

log = logging.getLogger("alto")


_IDLE = None  # Lane.rid between items
_UNINTERRUPTIBLE = -1  # Lane.rid while a wait that belongs to no single request runs


class Lane:
    """One owned task of a replica, and the item it is on now (its scope)."""

    __slots__ = ("blocked", "interrupted", "rid", "task", "waiter")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        # request of the item in scope; _IDLE: none; _UNINTERRUPTIBLE: a wait no request owns
        self.rid: int | None = _IDLE
        self.waiter: Any = None  # the future the item in scope waits on
        self.interrupted = False  # its request was cancelled: throw CancelledError at every resume
        self.blocked = False  # the item has waited once (another lane was asked to go on)

    def interrupt(self) -> None:
        """Cancel the item this lane is on (idempotent; the lane itself goes on)."""
        self.interrupted = True
        waiter = self.waiter
        if waiter is not None and hasattr(waiter, "cancel"):
            waiter.cancel()

    def end_scope(self) -> None:
        self.rid = _IDLE
        self.blocked = self.interrupted = False


@types.coroutine
def _drive_lane(coro: Any, lane: Lane, on_block: Callable[[], None]) -> Generator[Any, Any, Any]:
    """Run a lane's coroutine as its task's body: like ``yield from``, except that while
    an item is in scope the lane records what the item waits on.

    So :meth:`Lane.interrupt` can cancel that one wait (exactly what ``Task.cancel``
    does to the future a task waits on), ``CancelledError`` is re-delivered at every
    later resume until the item ends, and the first wait of an item asks another lane
    to go on (``on_block``). Only waits pass through here, not items: an item that does
    not wait costs nothing. A cancellation of the task itself (shutdown) passes through
    unchanged; the lane tells the two apart by the task's ``cancelling()`` count.
    """
    sent: Any = None
    error: BaseException | None = None
    while True:
        try:
            yielded = coro.send(sent) if error is None else coro.throw(error)
        except StopIteration as stop:
            return stop.value
        scoped = lane.rid is not _IDLE
        if scoped:
            if not lane.blocked and yielded is not None:
                lane.blocked = True
                on_block()  # this item waits: let another lane take the next message
            if lane.interrupted and hasattr(yielded, "cancel"):
                yielded.cancel()  # it caught the cancellation and waits again: cancel again
            lane.waiter = yielded
        try:
            sent = yield yielded
            error = None
        except BaseException as exc:  # forwarded into the lane, as yield from does
            sent, error = None, exc
        if scoped:
            lane.waiter = None
            if error is None and lane.interrupted and lane.rid is not _IDLE:
                error = asyncio.CancelledError()


class Host(Protocol):
    """What a runtime gives the executors of its replicas."""

    streaming: bool
    cancelled: Ended
    executor: Executor
    options: RuntimeOptions

    def fail(self, error: StageError) -> None:
        """Fail request ``error.path[0]`` everywhere (called on the next loop turn)."""


class ReplicaExecutor:
    """Runs one replica of one stage: its inbox, its lanes, its items' scopes.

    It is the operator's :class:`~alto.operators.StageContext`. Lifecycle: ``await
    setup()`` (constructs a class stage: it may load a model), ``start()`` (first
    lane), ``cancel_request(rid)`` any time, ``await close()``.
    """

    def __init__(self, spec: StageSpec, index: int, host: Host, emit: Emit) -> None:
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.host = host
        self.streaming = host.streaming
        self.cancelled = host.cancelled
        self.executor = host.executor
        options = host.options
        self.sync_budget_s = options.sync_budget_s
        self.batch_size = options.batch_size
        self.inbox = Inbox(options.inbox_capacity)
        self.op: Operator = make_operator(spec, self, emit)
        self.limit = spec.max_in_flight  # lanes at most (None: as many as items wait)
        self.lanes: set[Lane] = set()
        self.ready: deque[Any] = deque()  # taken from the inbox, not yet started
        self.errors: list[BaseException] = []  # internal errors (ALTO bugs), raised at close
        self._parked: list[asyncio.Future[None]] = []
        self._fetching = False
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._pass_control = self.op.passes_control
        # An LLM stage reports each finished item and its output tokens to the routers
        # of its senders (prompt-aware routing): ``listeners`` are theirs.
        self.metered = llm_call_of(spec.fn) is not None
        self.listeners: list[Callable[[tuple[int, ...], int | None], None]] = []
        # Measuring (off by default): a histogram of each item's time here, items out,
        # failures; with tracing, a span per item under its request's span.
        self.timer = StageTimer() if options.stage_metrics else None
        parent = getattr(host, "trace_parent", None) if options.tracing else None
        self.observer = Observer(self.name, index, self.timer, parent) if self.timer or parent else None
        if self.timer is not None:
            self.op.emit = _counting(self.op.emit, self.timer)
        if self.observer is not None and self.op.batched:
            self.op.failed_paths = []  # which items of a batch failed, for their timing and spans

    # -- lifecycle -----------------------------------------------------------------

    async def setup(self) -> None:
        await self.op.setup()

    def start(self) -> None:
        self._add_lane()

    async def close(self) -> None:
        """Stop every lane and item task; wait for them (threads are the host's)."""
        self._closing = True
        lanes = [lane.task for lane in self.lanes if lane.task is not None]
        for task in lanes:
            task.cancel()
        if lanes:
            await asyncio.wait(lanes)
        self.lanes.clear()
        await self.op.close()

    @property
    def emit(self) -> Emit:
        return self.op.emit

    @emit.setter
    def emit(self, emit: Emit) -> None:
        self.op.emit = emit if self.timer is None else _counting(emit, self.timer)  # rewired (Ray)

    # -- StageContext ----------------------------------------------------------------

    def fail(self, error: StageError) -> None:
        """Deferred to the next loop turn: a failing operator never re-enters itself."""
        self._loop.call_soon(self.host.fail, error)

    # -- cancellation ----------------------------------------------------------------

    def cancel_request(self, rid: int) -> None:
        """Stop all work for request ``rid`` here: its items in every lane, its state.

        The host has already added ``rid`` to ``cancelled``, so items of ``rid`` that
        arrive later are skipped.
        """
        for lane in self.lanes:
            if lane.rid == rid:
                lane.interrupt()
        self.op.cancel_request(rid)

    def purge(self, rid: int) -> None:
        self.op.purge(rid)

    # -- load ----------------------------------------------------------------------------

    @property
    def busy(self) -> int:
        return self.op.busy

    @property
    def handled(self) -> int:
        return self.op.handled

    @property
    def load(self) -> int:
        return len(self.inbox) + len(self.ready) + self.op.busy

    def snapshot(self) -> dict[str, Any]:
        """This replica's counters, as plain data (see :func:`~alto.runtime.observe.group_replicas`)."""
        return {
            "handled": self.op.handled,
            "failures": self.op.failures,
            "inbox_peak": self.inbox.peak,
            "load": self.load,
            "lanes": len(self.lanes),
            "timing": self.timer.snapshot() if self.timer is not None else None,
            "routers": router_state(self.emit),
        }

    # -- lanes -----------------------------------------------------------------------------

    def _add_lane(self) -> None:
        lane = Lane()
        body = _drive_lane(self._lane(lane), lane, self._on_block)
        lane.task = self._loop.create_task(body, name=f"alto:{self.name}[{self.index}]")
        lane.task.add_done_callback(lambda t, lane=lane: self._lane_ended(lane, t))
        self.lanes.add(lane)

    def _on_block(self) -> None:
        """An item started waiting: if messages are ready, or nobody waits on the inbox,
        wake a parked lane or add one (up to the limit) to go on with them."""
        if self._closing or (not self.ready and self._fetching):
            return
        if self._parked:
            fut = self._parked.pop()
            if not fut.done():
                fut.set_result(None)
        elif self.limit is None or len(self.lanes) < self.limit:
            self._add_lane()

    async def _lane(self, lane: Lane) -> None:
        ready = self.ready
        inbox = self.inbox
        op = self.op
        ended = self.cancelled
        above = ended.above  # Ended, inlined: this check runs for every item
        cell = lane_cell(self.name)  # this lane's own context: alto.current() inside stage code
        fast = op.fast_fn  # an async map function: called here directly (the hot path)
        quick = op.quick
        batched = op.batched  # all three are fixed by setup(), which ran before any lane
        observer = self.observer  # None unless stage_metrics or tracing: then a clock read per item
        clock = time.perf_counter
        while True:
            if not ready:
                if self._fetching:  # another lane waits on the inbox: wait to be needed
                    fut = self._loop.create_future()
                    self._parked.append(fut)
                    try:
                        await fut
                    finally:
                        if fut in self._parked:
                            self._parked.remove(fut)
                    continue
                self._fetching = True
                try:
                    batch = await inbox.get_batch(self.batch_size)
                finally:
                    self._fetching = False
                ready.extend(batch)
                continue
            if batched:
                msgs = list(ready)
                ready.clear()
                lane.rid = _UNINTERRUPTIBLE
                t0 = clock() if observer is not None else 0.0
                try:
                    await op.handle_batch(msgs)
                except BaseException as exc:
                    await self._failed(lane, exc, msgs)
                lane.end_scope()
                if observer is not None:  # each item of a batch took the batch's time
                    failed = set(op.failed_paths or ())
                    op.failed_paths = []
                    for m in msgs:
                        if m.__class__ is Item:
                            observer.done(m.path, t0, m.path in failed)
                continue
            msg = ready.popleft()
            cls = msg.__class__
            if cls is Item:
                path = msg.path
                rid = path[0]
                if rid < ended.low or rid in above:
                    if self.metered:  # never run: its sender must stop counting it
                        self._finished(path, None)
                    continue
                if quick is not None and quick(msg):
                    continue
                cell.path = path
                lane.rid = rid
                if self.metered:
                    cell.tokens = 0  # the LLM backends count this item's output tokens here
                if observer is not None:
                    t0 = clock()
                    failures = op.failures
                if fast is None:
                    try:
                        await op.handle(msg)  # stage errors are handled in there
                    except BaseException as exc:
                        await self._failed(lane, exc, msg)
                    lane.end_scope()
                    if self.metered:
                        self._finished(path, cell.tokens)
                    if observer is not None:
                        observer.done(path, t0, op.failures != failures)
                    continue
                # The hot path: an async map's function, awaited here, with no layer between.
                try:
                    value = await fast(msg.value)
                except BaseException as exc:
                    if self.metered:
                        self._finished(path, cell.tokens)
                    if observer is not None:
                        observer.done(path, t0, True)
                    await self._failed(lane, exc, msg, stage_call=True)
                    lane.end_scope()
                    continue
                op.handled += 1
                if observer is not None:
                    observer.done(path, t0, False)
                if self.metered:
                    self._finished(path, cell.tokens)
                if lane.interrupted:  # it swallowed its cancellation: its request is over
                    lane.end_scope()
                    continue
                wait = op.emit(Item(path, value))
                if wait is not None:
                    lane.rid = _UNINTERRUPTIBLE
                    await wait
                lane.rid = _IDLE  # end_scope(), inlined: interrupted is False here
                if lane.blocked:
                    lane.blocked = False
            elif self._pass_control:
                wait = op.emit(msg)
                if wait is not None:
                    lane.rid = _UNINTERRUPTIBLE
                    await wait
                    lane.end_scope()
            else:
                path = (msg.msg if cls is Right else msg).path
                lane.rid = path[0]
                if observer is not None:  # zip and aggregate: items, and the ends of groups
                    t0 = clock()
                    failures = op.failures
                try:
                    await op.handle(msg)
                except BaseException as exc:
                    await self._failed(lane, exc, msg)
                lane.end_scope()
                if observer is not None:
                    observer.done(path, t0, op.failures != failures)

    def _finished(self, path: tuple[int, ...], output_tokens: int | None) -> None:
        """Tell the senders' routers this LLM item is done (``None``: skipped, not run)."""
        for report in self.listeners:
            report(path, output_tokens)

    async def _failed(self, lane: Lane, exc: BaseException, what: Any, stage_call: bool = False) -> None:
        """An item (or batch) ended with ``exc``: decide whose it is.

        ``stage_call``: ``exc`` came straight out of the stage's function (the hot path),
        so an ``Exception`` is the stage's failure, for its ``on_error`` policy.
        Re-raises when the lane itself must stop.
        """
        interrupted = lane.interrupted
        lane.end_scope()
        fatal = False
        if isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.cancelling() > 0:
                raise exc  # the lane itself is being stopped (close, shutdown)
            if interrupted:
                return  # its request was cancelled; nothing is left of it here
            # else stage code raised CancelledError on its own: a failure of the stage
        elif isinstance(exc, Exception) and stage_call:
            lane.rid = _UNINTERRUPTIBLE
            try:
                await self.op.failed(what.path, exc)
            except BaseException as inner:
                await self._failed(lane, inner, what)
            return
        elif isinstance(exc, Exception):  # a bug in ALTO itself: fail its request(s) loudly, go on
            log.error("internal error in stage %r while handling %r", self.name, what, exc_info=exc)
            self.errors.append(exc)
        else:
            fatal = True  # KeyboardInterrupt, SystemExit...: its requests fail, the lane dies
        for path in _paths_of(what):
            self.fail(StageError(self.name, path, exc))
        if fatal:
            raise exc

    def _lane_ended(self, lane: Lane, task: asyncio.Task[None]) -> None:
        self.lanes.discard(lane)
        if self._closing:
            return
        if task.cancelled():
            # Cancelled from outside ALTO: the event loop is shutting down (asyncio.run
            # cancels every task of a runtime nobody closed). Starting another lane now
            # would leave a task pending at loop close; the runtime warns when collected.
            self._closing = True
            return
        error = task.exception() or RuntimeError("its worker task returned")
        log.error("stage %r replica %d: a worker ended (%r); starting another", self.name, self.index, error)
        self.errors.append(error)
        if not self.lanes:
            self._add_lane()


def _counting(emit: Emit, timer: StageTimer) -> Emit:
    """``emit``, counting the items it sends (the routers stay visible, for stats)."""

    def counted(msg: Any) -> Any:
        if msg.__class__ is Item:
            timer.items_out += 1
        return emit(msg)

    if hasattr(emit, "routers"):
        counted.routers = emit.routers  # type: ignore[attr-defined]
    return counted


def _paths_of(what: Any) -> list[tuple[int, ...]]:
    """The requests (as ``(rid,)`` paths) of a message or batch, zip's wrapped ones included."""
    msgs = what if isinstance(what, list) else [what]
    msgs = [m.msg if m.__class__ is Right else m for m in msgs]
    return list({(m.path[0],): None for m in msgs})
