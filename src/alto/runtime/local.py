"""LocalRuntime: the embedded default. One process, one asyncio loop, no server.

Each stage replica is a task that owns a bounded :class:`Inbox`. A sender routes every
message itself (``alto.routing``) and appends it to the chosen replica's inbox; when
the inbox is full the sender waits (backpressure), so memory stays bounded. A replica
drains its inbox in batches, which makes a hop cost about a microsecond. Blocking
stage functions run in the runtime's own thread pool, which is shut down with it.

>>> import asyncio, alto
>>> p = alto.Pipeline("letters")
>>> _ = p.output(p.input().expand(list))
>>> async def main():
...     async with alto.LocalRuntime(p) as rt:
...         return [ev.value async for ev in rt.stream("abc")]
>>> asyncio.run(main())
['a', 'b', 'c']
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..ancestry import Item, Message
from ..errors import StageError
from ..invoke import classify
from ..operators import Operator, Right, make_operator
from ..pipeline import Pipeline, StageSpec, is_class_stage
from .base import Event, Requests, Runtime, fan_out, iterate_events, replica_chooser

__all__ = ["Inbox", "LocalRuntime"]


class Inbox:
    """A bounded FIFO of messages for one replica, drained in batches.

    :meth:`put` never blocks: it accepts the message and, when the inbox is at
    capacity, returns a future the sender must await before sending more. So each
    sender overshoots by at most one message and memory stays bounded.
    """

    __slots__ = ("_getter", "_loop", "_putters", "_q", "capacity", "peak")

    def __init__(self, capacity: int) -> None:
        self._q: deque[Any] = deque()
        self.capacity = capacity
        self._getter: asyncio.Future[None] | None = None
        self._putters: list[asyncio.Future[None]] = []
        self.peak = 0
        self._loop = asyncio.get_running_loop()

    def __len__(self) -> int:
        return len(self._q)

    def put(self, msg: Any) -> asyncio.Future[None] | None:
        q = self._q
        q.append(msg)
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)
        n = len(q)
        if n > self.peak:
            self.peak = n
        if n >= self.capacity:
            fut = self._loop.create_future()
            self._putters.append(fut)
            return fut
        return None

    async def get_batch(self, max_items: int) -> list[Any]:
        q = self._q
        while not q:
            self._getter = self._loop.create_future()
            await self._getter
        if len(q) <= max_items:
            batch = list(q)
            q.clear()
        else:
            batch = [q.popleft() for _ in range(max_items)]
        if self._putters and len(q) < self.capacity:
            putters, self._putters = self._putters, []
            for fut in putters:
                if not fut.done():
                    fut.set_result(None)
        return batch


class _Replica:
    __slots__ = ("inbox", "index", "op", "spec", "task")

    def __init__(self, spec: StageSpec, index: int, inbox: Inbox) -> None:
        self.spec = spec
        self.index = index
        self.inbox = inbox
        self.op: Operator | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def load(self) -> int:
        return len(self.inbox) + (self.op.busy if self.op is not None else 0)


class LocalRuntime(Runtime):
    """Run a pipeline in this process.

    Args:
        pipeline: the pipeline (validated here, before anything starts).
        streaming: ``False`` runs the paper's baseline (whole levels buffered).
        inbox_capacity: messages a replica's inbox holds before senders wait.
        batch_size: most messages a replica takes from its inbox at once.
        max_requests: admission limit: requests in flight at once (others wait).
        sync_budget_s: a thread hop running a blocking function returns after this
            long, so results of slow calls go downstream at once.

    Use as an async context manager; :meth:`submit` runs one request, :meth:`stream`
    yields its output events as they are produced, :meth:`map` runs many.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        streaming: bool = True,
        inbox_capacity: int = 256,
        batch_size: int = 64,
        max_requests: int = 128,
        sync_budget_s: float = 0.002,
    ) -> None:
        pipeline.validate()
        if inbox_capacity < 1 or batch_size < 1 or max_requests < 1:
            raise ValueError("inbox_capacity, batch_size and max_requests must be >= 1")
        self.pipeline = pipeline
        self.streaming = streaming
        self.inbox_capacity = inbox_capacity
        self.batch_size = batch_size
        self.max_requests = max_requests
        self.sync_budget_s = sync_budget_s
        self.cancelled: set[int] = set()
        self.executor: ThreadPoolExecutor | None = None
        self._replicas: dict[str, list[_Replica]] = {}
        self._requests: Requests | None = None
        self._admission: asyncio.Semaphore | None = None
        self._inject: Callable[[Message], Awaitable[Any] | None] | None = None
        self._started = False
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> LocalRuntime:
        if self._started:
            raise RuntimeError("a LocalRuntime can be entered once; create a new one")
        self._started = True
        p = self.pipeline
        self._requests = Requests(p)
        self._admission = asyncio.Semaphore(self.max_requests)
        self.executor = ThreadPoolExecutor(max_workers=self._thread_count(), thread_name_prefix=f"alto-{p.name}")
        for spec in p.stages.values():
            if spec.kind != "input":
                self._replicas[spec.name] = [
                    _Replica(spec, i, Inbox(self.inbox_capacity)) for i in range(spec.replicas)
                ]
        consumers = p.downstream()
        for name, replicas in self._replicas.items():
            for rep in replicas:
                rep.op = make_operator(rep.spec, self, self._make_emit(name, consumers[name]))
        self._inject = self._make_emit("input", consumers["input"])
        try:
            await asyncio.gather(*(rep.op.setup() for reps in self._replicas.values() for rep in reps))  # type: ignore[union-attr]
        except BaseException:
            self.executor.shutdown(wait=True, cancel_futures=True)
            raise
        for reps in self._replicas.values():
            for rep in reps:
                rep.task = asyncio.get_running_loop().create_task(
                    self._worker(rep), name=f"alto:{rep.spec.name}[{rep.index}]"
                )
                rep.op.bind(rep.task)  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel open requests, stop every replica task and thread; wait for them."""
        if self._closed or not self._started:
            return
        self._closed = True
        assert self._requests is not None
        self._requests.close("the runtime was closed before this request finished")
        reps = [rep for reps in self._replicas.values() for rep in reps]
        for rep in reps:
            rep.op._closing = True  # type: ignore[union-attr]
            if rep.task is not None:
                rep.task.cancel()
        await asyncio.gather(*(rep.task for rep in reps if rep.task is not None), return_exceptions=True)
        await asyncio.gather(*(rep.op.close() for rep in reps if rep.op is not None), return_exceptions=True)
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    def _thread_count(self) -> int:
        n = 0
        for spec in self.pipeline.stages.values():
            if spec.fn is not None and (classify(spec.fn) == "sync" or is_class_stage(spec.fn)):
                n += spec.replicas * spec.concurrency
        return max(2, min(n + 1, 4 * (os.cpu_count() or 2) + 64))

    async def _worker(self, rep: _Replica) -> None:
        op = rep.op
        assert op is not None
        inbox = rep.inbox
        size = self.batch_size
        while True:
            batch = await inbox.get_batch(size)
            await op.process(batch)

    # -- wiring ----------------------------------------------------------------------

    def _make_emit(self, name: str, consumers: list[tuple[str, int]]) -> Callable[[Message], Any]:
        """The function a replica of ``name`` uses to send one message downstream."""
        targets: list[Callable[[Message], Any]] = [self._route_to(dest, port) for dest, port in consumers]
        if name in self.pipeline.outputs:
            requests = self._requests
            assert requests is not None

            def to_sink(msg: Message, _deliver: Callable[[str, Message], None] = requests.deliver) -> None:
                _deliver(name, msg)

            targets.append(to_sink)
        return fan_out(targets)

    def _route_to(self, dest: str, port: int) -> Callable[[Message], Any]:
        replicas = self._replicas[dest]
        spec = replicas[0].spec
        inboxes = [r.inbox for r in replicas]
        wrap = port == 1
        if len(replicas) == 1:
            put = inboxes[0].put
            if not wrap:
                return put
            return lambda msg: put(Right(msg))
        choose = replica_chooser(spec, len(replicas), lambda i: replicas[i].load)

        def send(msg: Message) -> Any:
            i = choose(msg)
            return inboxes[i].put(Right(msg) if wrap else msg)

        return send

    # -- StageContext ------------------------------------------------------------------

    def fail(self, error: StageError) -> None:
        """A stage failed on an item: fail its request and cancel the rest of its work."""
        assert self._requests is not None
        rid = error.path[0]
        if self._requests.fail(rid, error):
            self._cancel(rid)

    def _cancel(self, rid: int) -> None:
        self.cancelled.add(rid)
        for reps in self._replicas.values():
            for rep in reps:
                if rep.op is not None:
                    rep.op.cancel_request(rid)

    # -- requests ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._started or self._closed:
            raise RuntimeError("use the runtime inside `async with LocalRuntime(pipeline) as rt:`")

    async def submit(self, value: Any) -> Any:
        """Run one request and return its depth-0 result.

        Raises :class:`~alto.StageError` if a stage failed on it, and
        :class:`~alto.PipelineError` if the pipeline has no depth-0 output.
        """
        self._check_open()
        if not self.pipeline.final_outputs():
            self.pipeline.validate(require_final=True)
        assert self._admission is not None and self._requests is not None
        async with self._admission:
            req = self._requests.open()
            try:
                await self._send_input(req.rid, value)
                return await req.future
            finally:
                if not req.future.done():
                    self._requests.forget(req.rid)
                    self._cancel(req.rid)

    async def stream(self, value: Any) -> AsyncIterator[Event]:
        """Run one request, yielding an :class:`~alto.runtime.base.Event` per output item.

        Items of every output stream arrive in the order they are produced; the
        depth-0 result(s) come last. Leaving the loop early cancels the request's
        remaining work in every stage.
        """
        self._check_open()
        assert self._admission is not None and self._requests is not None
        async with self._admission:
            req = self._requests.open(events=True)
            try:
                await self._send_input(req.rid, value)
                async for ev in iterate_events(req):
                    yield ev
            finally:
                if not req.future.done():
                    self._requests.forget(req.rid)
                    self._cancel(req.rid)

    async def _send_input(self, rid: int, value: Any) -> None:
        assert self._inject is not None
        wait = self._inject(Item((rid,), value))
        if wait is not None:
            await wait

    # -- introspection -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Per-stage counters: items handled, inbox peak, current load, open groups."""
        out: dict[str, Any] = {}
        for name, reps in self._replicas.items():
            out[name] = {
                "replicas": len(reps),
                "handled": [r.op.handled if r.op else 0 for r in reps],
                "inbox_peak": [r.inbox.peak for r in reps],
                "load": [r.load for r in reps],
            }
        return out

    def peak_in_flight(self) -> int:
        """Upper bound on messages that were queued at once: the sum of inbox peaks."""
        return sum(r.inbox.peak for reps in self._replicas.values() for r in reps)
