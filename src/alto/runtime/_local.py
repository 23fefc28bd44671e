"""LocalRuntime: the embedded default. One process, one asyncio loop, no server.

Placement: every stage replica is a :class:`~alto.engine.ReplicaExecutor` in
this process. Transport: a sender routes every message itself (``alto.routing``) and
appends it to the chosen replica's bounded inbox; when the inbox is full the sender
waits (backpressure). Blocking stage functions run in the runtime's own thread pool,
which is shut down with it.

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
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Unpack

from alto.dataflow import Item, Pipeline
from alto.dataflow._functions import ASYNC_CONCURRENCY, classify, is_class_stage
from alto.engine import ReplicaExecutor
from alto.engine._observe import group_replicas, request_span
from alto.engine._options import RuntimeKwargs, RuntimeOptions
from alto.engine._requests import Admission, Ended, Event, Requests, iterate_events
from alto.engine._transport import Send, Wired, build_emit
from alto.errors import StageError, StageStartError
from alto.routing import Report
from alto.runtime._base import Runtime

__all__ = ["LocalRuntime"]

log = logging.getLogger("alto")


def _unwired(msg: Any) -> None:
    raise AssertionError("a replica emitted before the runtime wired it")


class _Inboxes:
    """The local :class:`~alto.engine._transport.Transport`: a message is appended to the
    chosen replica's bounded inbox, in this process (a full inbox makes the sender wait)."""

    def __init__(self, replicas: dict[str, list[ReplicaExecutor]], requests: Requests) -> None:
        self.replicas = replicas
        self.requests = requests

    def send_to(self, stage: str, replica: int) -> Send:
        return self.replicas[stage][replica].inbox.put

    def load(self, stage: str, replica: int) -> float:
        return self.replicas[stage][replica].load

    def sink(self, output: str) -> Send:
        deliver = self.requests.deliver
        return lambda msg: deliver(output, msg)

    def watch(self, stage: str, report: Report) -> None:  # finished items reach the sender's router
        for i, r in enumerate(self.replicas[stage]):
            r.listeners.append(partial(report, i))


class LocalRuntime(Runtime):
    """Run a pipeline in this process.

    Args:
        pipeline: the pipeline (validated here, before anything starts).
        streaming: ``False`` runs the paper's baseline (whole levels buffered).
        **options: :class:`~alto.engine.RuntimeOptions`: ``inbox_capacity``,
            ``batch_size``, ``max_requests`` (admission limit), ``sync_budget_s``,
            ``timeout_s`` (per request), ``event_buffer``, ``stage_metrics`` (time every
            item: :meth:`stage_stats` histograms) and ``tracing`` (OpenTelemetry spans).

    Use as an async context manager (or ``await rt.start()`` ... ``await rt.aclose()``);
    :meth:`submit` runs one request, :meth:`stream` yields its output events as they are
    produced, :meth:`map` runs many.
    """

    def __init__(self, pipeline: Pipeline, *, streaming: bool = True, **options: Unpack[RuntimeKwargs]) -> None:
        pipeline.validate()
        try:
            self.options = RuntimeOptions(**options)
        except TypeError as exc:
            raise TypeError(f"LocalRuntime: {exc}; valid options: {sorted(RuntimeOptions.__dataclass_fields__)}")
        self.pipeline = pipeline
        self.streaming = streaming
        self.max_requests = self.options.max_requests
        self.cancelled = Ended()  # every request that is over: its items are dropped on sight
        self.executor: ThreadPoolExecutor | None = None
        self.replicas: dict[str, list[ReplicaExecutor]] = {}
        self._requests: Requests | None = None
        self._admission: Admission | None = None
        self._input: Wired | None = None
        self._inject: Any = None
        self._traces: dict[int, Any] | None = {} if self.options.tracing else None

    # -- lifecycle -----------------------------------------------------------------

    async def _open(self) -> None:
        p = self.pipeline
        self._requests = Requests(
            p, timeout_s=self.options.timeout_s, event_buffer=self.options.event_buffer, on_end=self._ended
        )
        self._admission = Admission(self._requests, self.max_requests)
        self.executor = ThreadPoolExecutor(max_workers=self._thread_count(), thread_name_prefix=f"alto-{p.name}")
        replicas = self.replicas
        stages = [spec for spec in p.stages.values() if spec.kind != "input"]
        for spec in stages:  # placement first, then the transport between replicas
            replicas[spec.name] = [ReplicaExecutor(spec, i, self, _unwired) for i in range(spec.replicas)]
        transport = _Inboxes(replicas, self._requests)
        for spec in stages:
            for r in replicas[spec.name]:  # each replica is a sender with routers of its own
                r.wire(build_emit(p, spec.name, transport))
        self._input = build_emit(p, "input", transport)  # the gateway's sender: the input stage's routers
        self._inject = self._input.emit
        every = [r for reps in replicas.values() for r in reps]
        outcomes = await asyncio.gather(*(r.setup() for r in every), return_exceptions=True)
        for r, outcome in zip(every, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                await self._close()
                raise StageStartError(r.name, r.index, outcome) from outcome
        for r in every:
            r.start()

    async def _close(self) -> None:
        if self._requests is not None:
            self._requests.close("the runtime was closed before this request finished")
        every = [r for reps in self.replicas.values() for r in reps]
        await asyncio.gather(*(r.close() for r in every))
        if self.executor is not None:
            # Threads cannot be interrupted: wait for running calls in a helper thread
            # (bounded), so a hung blocking function cannot hang the event loop too.
            shutdown = asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)
            try:
                await asyncio.wait_for(shutdown, 30)
            except TimeoutError:
                log.warning("pipeline %r: blocking stage calls still running 30 s after close", self.pipeline.name)
        errors = [e for r in every for e in r.errors]
        if errors:
            raise BaseExceptionGroup(f"internal errors in ALTO while running pipeline {self.pipeline.name!r}", errors)

    def _thread_count(self) -> int:
        n = 0
        for spec in self.pipeline.stages.values():
            if spec.fn is not None and (classify(spec.fn) == "sync" or is_class_stage(spec.fn)):
                n += spec.replicas * (spec.max_in_flight or ASYNC_CONCURRENCY)
        return max(2, min(n + 1, 4 * (os.cpu_count() or 2) + 64))

    # -- the host of the replica executors ---------------------------------------------

    def fail(self, error: StageError) -> None:
        """A stage failed on an item: fail its request (which cancels the rest of its work)."""
        if self._requests is not None:
            self._requests.fail(error.path[0], error)

    def _ended(self, rid: int, interrupt: bool) -> None:
        self.cancelled.add(rid)
        if interrupt:
            for reps in self.replicas.values():
                for r in reps:
                    r.cancel_request(rid)

    # -- requests ----------------------------------------------------------------------

    async def submit(self, value: Any) -> Any:
        """Run one request and return its depth-0 result.

        Raises :class:`~alto.StageError` if a stage failed on it,
        :class:`~alto.RequestTimeout` after ``timeout_s``, and
        :class:`~alto.PipelineError` if the pipeline has no depth-0 output.
        """
        self._require_open()
        if not self.pipeline.final_outputs():
            self.pipeline.validate(require_final=True)
        assert self._admission is not None
        async with self._admission.admit() as req:  # the caller leaving first stops its work
            with request_span(self.pipeline.name, self._traces, req.rid):
                await self._send_input(req.rid, value)
                return await req.future

    async def stream(self, value: Any) -> AsyncIterator[Event]:
        """Run one request, yielding an :class:`~alto.engine.Event` per output item.

        Items of every output stream arrive in the order they are produced; the
        depth-0 result(s) come last. Leaving the loop early cancels the request's
        remaining work in every stage; a reader that falls behind slows the stages
        (``event_buffer`` events are held for it).
        """
        self._require_open()
        assert self._admission is not None
        async with self._admission.admit(events=True) as req:
            with request_span(self.pipeline.name, self._traces, req.rid):
                await self._send_input(req.rid, value)
                async for ev in iterate_events(req):
                    yield ev

    async def _send_input(self, rid: int, value: Any) -> None:
        wait = self._inject(Item((rid,), value))
        if wait is not None:
            await wait

    # -- introspection -----------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """Admission (``"requests"``), replays and restarts (none in one process), and
        :meth:`stage_stats` -- the shape :meth:`RayRuntime.stats <alto.RayRuntime.stats>` has."""
        admission = self._admission.stats() if self._admission is not None else {"max_requests": self.max_requests}
        requests = {"open": 0, **admission, "ended_listed": len(self.cancelled)}
        return {"requests": requests, "replays": 0, "replayed_requests": 0, "restarts": {}, **await self.stage_stats()}

    async def stage_stats(self) -> dict[str, dict[str, Any]]:
        """Per stage, each replica's counters as lists over replicas: items ``handled``,
        ``failures``, ``inbox_peak``, ``load``, ``lanes``, ``routers`` (what prompt-aware
        routers believe) and ``timing`` (histogram snapshots; ``None`` unless
        ``stage_metrics=True``). :class:`~alto.RayRuntime` returns the same shape.
        """
        return {name: group_replicas([r.snapshot() for r in reps]) for name, reps in self.replicas.items()}

    def trace_parent(self, rid: int) -> Any:
        """The context of request ``rid``'s span (``tracing=True``): its stage spans' parent."""
        return self._traces.get(rid) if self._traces is not None else None

    def peak_in_flight(self) -> int:
        """Upper bound on messages that were queued at once: the sum of inbox peaks."""
        return sum(r.inbox.peak for reps in self.replicas.values() for r in reps)
