"""The replica executor both runtimes use: inbox, lanes, item scopes, supervision.

A runtime gives each replica of a stage a :class:`ReplicaExecutor` and supplies only
placement (which process it lives in) and transport (the ``emit`` function that
carries a message to the next replica). The executor owns everything that runs for
that replica:

* a bounded :class:`Inbox`, drained in batches;
* up to ``concurrency`` **lanes**: owned tasks that take messages and run the stage's
  :class:`~alto.engine.operators.Operator` on them. One lane runs while items finish without
  waiting; when an item has to wait (an LLM call, a thread hop), the next lane starts on
  the next message, so a stage with ``concurrency=64`` has up to 64 items in flight and
  a no-op stage pays no task per item;
* the **scope** of every item (:mod:`alto.engine._scope`): a lane's task runs
  :func:`~alto.engine._scope.drive`, which sees every
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
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, Protocol

from alto.dataflow import Item, StageSpec
from alto.engine._context import lane_cell
from alto.engine._inbox import Inbox
from alto.engine._observe import Observer, StageTimer
from alto.engine._options import RuntimeOptions
from alto.engine._requests import Ended
from alto.engine._scope import IDLE, SHIELDED, ItemScope, drive
from alto.engine._transport import Emit, Wired, router_state
from alto.engine.operators import Operator, Right, make_operator
from alto.errors import StageError
from alto.routing import llm_call_of

__all__ = ["Host", "Lane", "ReplicaExecutor"]

log = logging.getLogger("alto")


class Lane:
    """One owned task of a replica, and the scope of the item it is on."""

    __slots__ = ("scope", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.scope = ItemScope()


class Host(Protocol):
    """What a runtime gives the executors of its replicas."""

    @property
    def streaming(self) -> bool: ...
    @property
    def cancelled(self) -> Ended: ...
    @property
    def executor(self) -> Executor | None: ...
    @property
    def options(self) -> RuntimeOptions: ...

    def fail(self, error: StageError) -> None:
        """Fail request ``error.path[0]`` everywhere (called on the next loop turn)."""


class ReplicaExecutor:
    """Runs one replica of one stage: its inbox, its lanes, its items' scopes.

    It is the operator's :class:`~alto.engine.operators.StageContext`. Lifecycle: ``await
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
        assert host.executor is not None, "the host makes its thread pool before its replicas"
        self.executor: Executor = host.executor
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
        # An LLM stage reports each finished item and its output tokens to the routers
        # of its senders (prompt-aware routing): ``listeners`` are theirs.
        self.metered = llm_call_of(spec.fn) is not None
        self.listeners: list[Callable[[tuple[int, ...], int | None], None]] = []
        # Measuring (off by default): a histogram of each item's time here, items out,
        # failures; with tracing, a span per item under its request's span.
        self.routers: list[Any] = []  # this sender's routers (set by wire())
        self.timer = StageTimer() if options.stage_metrics else None
        parent = getattr(host, "trace_parent", None) if options.tracing else None
        self.observer = Observer(self.name, index, self.timer, parent) if self.timer or parent else None
        if self.timer is not None:
            self.op.emit = _counting(self.op.emit, self.timer)

    # -- lifecycle -----------------------------------------------------------------

    async def setup(self) -> None:
        await self.op.setup()
        if self.observer is not None and self.op.handle_batch is not None:
            self.op.failed_paths = []  # which items of a batch failed, for their timing and spans

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

    def wire(self, wired: Wired) -> None:
        """Connect this replica's output (again, on Ray, when a replica was replaced)."""
        self.routers = wired.routers
        self.op.emit = wired.emit if self.timer is None else _counting(wired.emit, self.timer)

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
            if lane.scope.rid == rid:
                lane.scope.cancel()
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
        """This replica's counters, as plain data (see :func:`~alto.engine.group_replicas`)."""
        return {
            "handled": self.op.handled,
            "failures": self.op.failures,
            "inbox_peak": self.inbox.peak,
            "load": self.load,
            "lanes": len(self.lanes),
            "timing": self.timer.snapshot() if self.timer is not None else None,
            "routers": router_state(self.routers),
        }

    # -- lanes -----------------------------------------------------------------------------

    def _add_lane(self) -> None:
        lane = Lane()
        body = drive(self._lane(lane), lane.scope, self._on_block)
        lane.task = self._loop.create_task(body, name=f"alto:{self.name}[{self.index}]")
        lane.task.add_done_callback(partial(self._lane_ended, lane))
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

    async def _next(self) -> None:
        """Wait until messages are ready: take a batch from the inbox, or, while another
        lane waits on the inbox, park until this lane is needed."""
        if self._fetching:
            fut = self._loop.create_future()
            self._parked.append(fut)
            try:
                await fut
            finally:
                if fut in self._parked:
                    self._parked.remove(fut)
            return
        self._fetching = True
        try:
            self.ready.extend(await self.inbox.get_batch(self.batch_size))
        finally:
            self._fetching = False

    async def _lane(self, lane: Lane) -> None:
        """A lane's loop: take the next message, decide what runs and whose it is, run it
        in the item's scope. The scope is entered and left here only (one ``try``/``finally``)."""
        ready = self.ready
        op = self.op
        scope = lane.scope
        ended = self.cancelled
        above = ended.above  # Ended, inlined: this check runs for every item
        cell = lane_cell(self.name)  # this lane's own context: alto.current() inside stage code
        call: Any = op.call  # the operator's declared fast paths, fixed by setup() before any lane
        quick = op.quick
        batched = op.handle_batch is not None
        forward = op.forward
        metered = self.metered
        observer = self.observer  # None unless stage_metrics or tracing: then a clock read per item
        clock = time.perf_counter
        path: Any
        pending: Any
        while True:
            if not ready:
                await self._next()
                continue
            # -- what runs next, and whose it is ------------------------------------------
            # (each branch sets path: an item's path, for timing; fast: awaited right here,
            # the operator declared ``call``; report: an LLM item, its sender's router hears
            # when it is done; pending: a marker's backpressure, waited on in the scope)
            if batched:
                msg: Any = list(ready)
                ready.clear()
                owner = SHIELDED  # a batch is work of several requests
                path, fast, report = None, False, False
            else:
                msg = ready.popleft()
                cls = msg.__class__
                if cls is Item:
                    path = msg.path
                    owner = path[0]
                    if owner < ended.low or owner in above:
                        if metered:  # never run: its sender must stop counting it
                            self._finished(path, None)
                        continue
                    if quick is not None and quick(msg):
                        continue
                    cell.path = path
                    fast = call is not None
                    report = metered
                    if metered:
                        cell.tokens = 0  # the LLM backends count this item's output tokens here
                elif forward is not None:
                    pending = forward(msg)
                    if pending is None:
                        continue
                    owner = SHIELDED  # backpressure on a marker: no request's own work
                    path, fast, report = None, False, False
                else:  # zip and aggregate: items and markers alike
                    path = (msg.msg if cls is Right else msg).path
                    owner = path[0]
                    fast = report = False
            if observer is not None:
                t0 = clock()
                failures = op.failures
            # -- the item's scope: entered here, left in the finally below, nowhere else ----
            scope.rid = owner  # ItemScope.enter(owner), inlined: this runs for every item
            try:
                if fast:
                    try:
                        value = await call(msg.value)  # the hot path: the stage's function itself
                    except BaseException as exc:
                        # the item's work is over: its sender's router and the timing hear it now
                        if report:
                            report = False
                            self._finished(path, cell.tokens)
                        if observer is not None:
                            observer.done(path, t0, True)
                            path = None
                        if not isinstance(exc, Exception):
                            raise  # cancelled, or worse: decided below
                        await self._stage_failed(scope, exc, msg)
                        continue  # (the finally leaves the scope)
                    op.handled += 1  # the contract of a declared call (Operator.call)
                    out = Item(path, value)
                    if report:  # done before any wait downstream
                        self._finished(path, cell.tokens)
                    if observer is not None:
                        observer.done(path, t0, False)
                    if not scope.cancelled:  # else it swallowed its cancellation: its request is over
                        wait = op.emit(out)
                        if wait is not None:
                            scope.rid = SHIELDED  # ItemScope.shield(): backpressure is not the item's work
                            await wait
                    continue  # reported and timed: the finally leaves the scope, nothing after it is due
                elif owner is SHIELDED:
                    await (op.handle_batch(msg) if batched else pending)  # type: ignore[misc]
                else:
                    await op.handle(msg)  # stage errors are handled in there
            except BaseException as exc:
                self._failed(scope, exc, msg)
            finally:
                scope.rid = IDLE  # ItemScope.leave(), inlined
                if scope.blocked or scope.cancelled:
                    scope.blocked = scope.cancelled = False
            if report:
                self._finished(msg.path, cell.tokens)
            if observer is not None:
                if path is not None:  # (None: timed already, or not an item)
                    observer.done(path, t0, op.failures != failures)
                elif batched:  # each item of a batch took the batch's time
                    failed = set(op.failed_paths or ())
                    op.failed_paths = []
                    for m in msg:
                        if m.__class__ is Item:
                            observer.done(m.path, t0, m.path in failed)

    def _finished(self, path: tuple[int, ...], output_tokens: int | None) -> None:
        """Tell the senders' routers this LLM item is done (``None``: skipped, not run)."""
        for report in self.listeners:
            report(path, output_tokens)

    async def _stage_failed(self, scope: ItemScope, exc: Exception, msg: Item) -> None:
        """The stage's function raised on ``msg`` (the hot path): its ``on_error`` policy.
        What is left is not the item's own work, so cancelling its request no longer
        interrupts it."""
        scope.shield()
        await self.op.failed(msg.path, exc)

    def _failed(self, scope: ItemScope, exc: BaseException, what: Any) -> None:
        """Something other than a stage failure ended an item (or batch) with ``exc``:
        decide whose it is. Re-raises when the lane itself must stop."""
        if isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.cancelling() > 0:
                raise exc  # the lane itself is being stopped (close, shutdown)
            if scope.cancelled:
                return  # its request was cancelled; nothing is left of it here
            # else stage code raised CancelledError on its own: a failure of the stage
        elif isinstance(exc, Exception):  # a bug in ALTO itself: fail its request(s) loudly, go on
            log.error("internal error in stage %r while handling %r", self.name, what, exc_info=exc)
            self.errors.append(exc)
        for path in _paths_of(what):
            self.fail(StageError(self.name, path, exc))
        if not isinstance(exc, Exception | asyncio.CancelledError):
            raise exc  # KeyboardInterrupt, SystemExit...: its requests fail, the lane dies

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
    """``emit``, counting the items it sends."""

    def counted(msg: Any) -> Any:
        if msg.__class__ is Item:
            timer.items_out += 1
        return emit(msg)

    return counted


def _paths_of(what: Any) -> list[tuple[int, ...]]:
    """The requests (as ``(rid,)`` paths) of a message or batch, zip's wrapped ones included."""
    msgs = what if isinstance(what, list) else [what]
    msgs = [m.msg if m.__class__ is Right else m for m in msgs]
    return list({(m.path[0],): None for m in msgs})
