"""Requests of one runtime: ids, output sinks, events, counted completion, timeouts.

A runtime injects each input as ``Item((request_id,), value)`` and hands what the
output stages emit to :meth:`Requests.deliver`, which counts completion per output
stream (:class:`~alto.dataflow.CompletionTracker`) and resolves the request's future.
Every request ends exactly once -- completed, failed, timed out or abandoned by its
caller -- and the runtime hears of it through ``on_end`` (to cancel its work or forget it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from alto.dataflow import CompletionTracker, Item, Message, Pipeline
from alto.engine._inbox import Inbox
from alto.errors import RequestTimeout

__all__ = ["Admission", "Ended", "Event", "Requests", "iterate_events", "take_events"]


@dataclass(frozen=True, slots=True)
class Event:
    """One output item of a request, as produced.

    ``stage`` is the output stage, ``path`` the item's ancestry path, ``value`` its
    value; ``final`` is True for the request's depth-0 result(s), which come last.
    """

    stage: str
    path: tuple[int, ...]
    value: Any
    final: bool = False


_END = object()
_ALL = 1 << 62  # take every buffered event at once


class Ended:
    """Ids of requests that are over (finished, failed or cancelled), in memory that
    grows with the requests still open, not with all requests ever served.

    Request ids are handed out in order and every request ends, so all ids below a
    low-water mark are over and need no entry of their own:

    >>> ended = Ended()
    >>> ended.update([1, 3])
    >>> 1 in ended, 0 in ended, 3 in ended
    (True, False, True)
    >>> ended.add(0); ended.add(2)
    >>> ended.low, len(ended.above), 2 in ended
    (4, 0, True)
    """

    __slots__ = ("above", "low")

    def __init__(self) -> None:
        self.low = 0
        self.above: set[int] = set()

    def __contains__(self, rid: object) -> bool:
        return isinstance(rid, int) and (rid < self.low or rid in self.above)

    def __len__(self) -> int:
        return len(self.above)

    def add(self, rid: int) -> None:
        if rid >= self.low:
            self.above.add(rid)
            while self.low in self.above:
                self.above.discard(self.low)
                self.low += 1

    def update(self, rids: Iterable[int]) -> None:
        for rid in rids:
            self.add(rid)


class _Request:
    __slots__ = ("events", "finals", "future", "pending", "rid", "timer", "trackers")

    def __init__(self, rid: int, future: asyncio.Future[Any], outputs: list[str], events: Inbox | None) -> None:
        self.rid = rid
        self.future = future
        self.events = events
        self.trackers = {name: CompletionTracker((rid,)) for name in outputs}
        self.finals: dict[str, Any] = {}
        self.pending = len(outputs)
        self.timer: asyncio.TimerHandle | None = None


class Requests:
    """Open requests of one runtime, and the sinks of the pipeline's output streams.

    Args:
        pipeline: the pipeline whose outputs are counted.
        timeout_s: a request still open after this long fails with
            :class:`~alto.errors.RequestTimeout`.
        event_buffer: events of one streamed request held for its reader.
        on_end: ``on_end(rid, interrupt)`` once per request when it ends; ``interrupt``
            is True when its work must be stopped (failed, timed out, abandoned).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        timeout_s: float,
        event_buffer: int = 1024,
        on_end: Callable[[int, bool], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.outputs = pipeline.outputs
        self.finals = pipeline.final_outputs()
        self.timeout_s = timeout_s
        self.event_buffer = event_buffer
        self.on_end = on_end or (lambda rid, interrupt: None)
        self._open: dict[int, _Request] = {}
        self._next = 0
        self._loop = asyncio.get_running_loop()

    def __len__(self) -> int:
        return len(self._open)

    def open(self, *, events: bool = False) -> _Request:
        """Register a new request; returns its state (``rid``, ``future``, ``events``)."""
        rid = self._next
        self._next += 1
        req = _Request(rid, self._loop.create_future(), self.outputs, Inbox(self.event_buffer) if events else None)
        req.timer = self._loop.call_later(self.timeout_s, self._expire, rid)
        self._open[rid] = req
        return req

    def get(self, rid: int) -> _Request | None:
        return self._open.get(rid)

    def deliver(self, output: str, msg: Message) -> asyncio.Future[None] | None:
        """An output stage emitted ``msg``: record it, emit an event, count completion.

        Returns a future to wait on when the request's reader is behind.
        """
        req = self._open.get(msg.path[0])
        if req is None:
            return None  # the request already failed, was cancelled or is complete
        tracker = req.trackers[output]
        if tracker.seen(msg):
            return None  # a duplicate (replayed after a failure): delivered once only
        wait = None
        if msg.__class__ is Item:
            if output in self.finals:
                req.finals[output] = msg.value
            elif req.events is not None:
                wait = req.events.put(Event(output, msg.path, msg.value))
        if not tracker.complete and tracker.feed(msg):
            req.pending -= 1
            if req.pending == 0:
                self._complete(req)
        return wait

    def _end(self, req: _Request, interrupt: bool) -> None:
        del self._open[req.rid]
        if req.timer is not None:
            req.timer.cancel()
        if interrupt and req.events is not None:
            req.events.release()  # its reader may be gone: stages must not wait for it
        self.on_end(req.rid, interrupt)

    def _complete(self, req: _Request) -> None:
        self._end(req, False)
        if req.events is not None:
            for name in self.finals:
                req.events.put(Event(name, (req.rid,), req.finals.get(name), final=True))
            req.events.put(_END)
        if not req.future.done():
            req.future.set_result(self.result_of(req))

    def result_of(self, req: _Request) -> Any:
        if len(self.finals) == 1:
            return req.finals.get(self.finals[0])
        if not self.finals:
            return None
        return {name: req.finals.get(name) for name in self.finals}

    def fail(self, rid: int, error: BaseException) -> bool:
        """Resolve request ``rid`` with ``error`` and stop its work; False if it was no longer open."""
        req = self._open.get(rid)
        if req is None:
            return False
        self._end(req, True)
        if req.events is not None:
            req.events.put(error)
        if not req.future.done():
            req.future.set_exception(error)
            req.future.exception()  # mark retrieved: the caller may only read events
        return True

    def _expire(self, rid: int) -> None:
        req = self._open.get(rid)
        if req is not None:
            waiting = [name for name, t in req.trackers.items() if not t.complete]
            self.fail(rid, RequestTimeout(rid, self.timeout_s, waiting))

    def forget(self, rid: int) -> None:
        """Drop a request whose caller went away (no result will be delivered); stop its work."""
        req = self._open.get(rid)
        if req is not None:
            self._end(req, True)
            if not req.future.done():
                req.future.cancel()

    def close(self, reason: str) -> None:
        for rid in list(self._open):
            self.fail(rid, RuntimeError(reason))


async def take_events(req: _Request) -> tuple[list[Any], bool]:
    """Every event buffered for a streamed request (waiting for at least one), and
    whether the request has ended (its result or its error is among them)."""
    assert req.events is not None, "not a streamed request: open it with events=True"
    out = await req.events.get_batch(_ALL)
    done = any(e is _END or isinstance(e, BaseException) for e in out)
    return [e for e in out if e is not _END], done


async def iterate_events(req: _Request) -> AsyncIterator[Event]:
    """Yield a request's events until it ends; raise its error if it failed."""
    while True:
        events, done = await take_events(req)
        for ev in events:
            if isinstance(ev, BaseException):
                raise ev
            yield ev
        if done:
            return


class Admission:
    """Admission of one runtime's requests: at most ``limit`` in flight, the rest wait.

    The one place a request gets a slot and an open :class:`Requests` entry, and loses
    both; both runtimes admit through it (the local runtime in its process, the Ray
    runtime in its gateway).
    """

    def __init__(self, requests: Requests, limit: int) -> None:
        self.requests = requests
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)

    @asynccontextmanager
    async def admit(self, *, events: bool = False) -> AsyncIterator[_Request]:
        """A slot and an open request for the block; a request still open when the block
        is left (its caller went away) is forgotten, which stops its work."""
        async with self._slots:
            req = self.requests.open(events=events)
            try:
                yield req
            finally:
                if self.requests.get(req.rid) is not None:
                    self.requests.forget(req.rid)

    async def hold(self, *, events: bool = False) -> _Request:
        """A slot and an open request that keep until the request ends (a stream read in
        several calls, across processes): the slot is given back when its future is done."""
        await self._slots.acquire()
        req = self.requests.open(events=events)
        req.future.add_done_callback(lambda _f: self._slots.release())
        return req

    def stats(self) -> dict[str, int]:
        """``max_requests`` (the limit) and ``open`` (requests in flight now)."""
        return {"max_requests": self.limit, "open": len(self.requests)}
