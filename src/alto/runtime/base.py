"""What every runtime shares: requests, output sinks, events and :func:`alto.run`.

A runtime injects each input as ``Item((request_id,), value)`` and delivers what the
output stages emit to :class:`Requests`, which counts completion per output stream
(:class:`~alto.ancestry.CompletionTracker`) and resolves the request's future.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..ancestry import CompletionTracker, Item, Message
from ..pipeline import Pipeline, StageSpec
from ..routing import make_router

__all__ = ["Event", "Requests", "Runtime", "fan_out", "replica_chooser", "run", "run_async"]


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

    def add(self, rid: int) -> None:
        if rid >= self.low:
            self.above.add(rid)
            while self.low in self.above:
                self.above.discard(self.low)
                self.low += 1

    def update(self, rids: Iterable[int]) -> None:
        for rid in rids:
            self.add(rid)


def replica_chooser(spec: StageSpec, n: int, load: Callable[[int], float]) -> Callable[[Message], int]:
    """The replica index (of ``n``) that one sender picks for each message to ``spec``.

    A fresh router per sender; keyed stages route on the group part of the path
    (:meth:`StageSpec.route_key`), so every sender agrees on a group's replica.
    """
    router = make_router(spec.router, keyed=spec.keyed)
    choose = router.choose
    route_key = spec.route_key if spec.keyed else None

    def pick(msg: Message) -> int:
        key = route_key(msg.path) if route_key is not None else msg.path
        return choose(key, msg.value if msg.__class__ is Item else None, n, load)

    return pick


def fan_out(targets: list[Callable[[Message], Any]]) -> Callable[[Message], Any]:
    """One emit function sending each message to every target; it returns ``None`` or
    an awaitable for the targets that asked the sender to wait (backpressure)."""
    if len(targets) == 1:
        return targets[0]

    def emit(msg: Message) -> Any:
        waits = [w for w in (t(msg) for t in targets) if w is not None]
        if not waits:
            return None
        return waits[0] if len(waits) == 1 else asyncio.gather(*waits)

    return emit


class _Request:
    __slots__ = ("events", "finals", "future", "pending", "rid", "trackers")

    def __init__(self, rid: int, future: asyncio.Future[Any], outputs: list[str], events: bool) -> None:
        self.rid = rid
        self.future = future
        self.events: asyncio.Queue[Any] | None = asyncio.Queue() if events else None
        self.trackers = {name: CompletionTracker((rid,)) for name in outputs}
        self.finals: dict[str, Any] = {}
        self.pending = len(outputs)


class Requests:
    """Open requests of one runtime, and the sinks of the pipeline's output streams."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.outputs = pipeline.outputs
        self.finals = pipeline.final_outputs()
        self._open: dict[int, _Request] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._open)

    def open(self, *, events: bool = False) -> _Request:
        """Register a new request; returns its state (``rid``, ``future``, ``events``)."""
        rid = self._next
        self._next += 1
        req = _Request(rid, asyncio.get_running_loop().create_future(), self.outputs, events)
        self._open[rid] = req
        return req

    def get(self, rid: int) -> _Request | None:
        return self._open.get(rid)

    def deliver(self, output: str, msg: Message) -> None:
        """An output stage emitted ``msg``: record it, emit an event, count completion."""
        req = self._open.get(msg.path[0])
        if req is None:
            return  # the request already failed, was cancelled or is complete
        tracker = req.trackers[output]
        if tracker.seen(msg):
            return  # a duplicate (replayed after a failure): delivered once only
        final = output in self.finals
        if msg.__class__ is Item:
            if final:
                req.finals[output] = msg.value
            elif req.events is not None:
                req.events.put_nowait(Event(output, msg.path, msg.value))
        if not tracker.complete and tracker.feed(msg):
            req.pending -= 1
            if req.pending == 0:
                self._complete(req)

    def _complete(self, req: _Request) -> None:
        del self._open[req.rid]
        if req.events is not None:
            for name in self.finals:
                req.events.put_nowait(Event(name, (req.rid,), req.finals.get(name), final=True))
            req.events.put_nowait(_END)
        if not req.future.done():
            req.future.set_result(self.result_of(req))

    def result_of(self, req: _Request) -> Any:
        if len(self.finals) == 1:
            return req.finals.get(self.finals[0])
        if not self.finals:
            return None
        return {name: req.finals.get(name) for name in self.finals}

    def fail(self, rid: int, error: BaseException) -> bool:
        """Resolve request ``rid`` with ``error``; False if it was no longer open."""
        req = self._open.pop(rid, None)
        if req is None:
            return False
        if req.events is not None:
            req.events.put_nowait(error)
        if not req.future.done():
            req.future.set_exception(error)
            req.future.exception()  # mark retrieved: the caller may only read events
        return True

    def forget(self, rid: int) -> None:
        """Drop a request whose caller went away (no result will be delivered)."""
        req = self._open.pop(rid, None)
        if req is not None and not req.future.done():
            req.future.cancel()

    def close(self, reason: str) -> None:
        for rid in list(self._open):
            self.fail(rid, RuntimeError(reason))


async def iterate_events(req: _Request) -> AsyncIterator[Event]:
    """Yield a request's events until its end marker; raise its StageError if it failed."""
    assert req.events is not None
    while True:
        ev = await req.events.get()
        if ev is _END:
            return
        if isinstance(ev, BaseException):
            raise ev
        yield ev


class Runtime:
    """Interface of a runtime (see :class:`~alto.runtime.local.LocalRuntime`)."""

    async def __aenter__(self) -> Runtime:
        raise NotImplementedError

    async def __aexit__(self, *exc: Any) -> None:
        raise NotImplementedError

    async def submit(self, value: Any) -> Any:
        """Run one request; return its depth-0 result (raise StageError if it failed)."""
        raise NotImplementedError

    def stream(self, value: Any) -> AsyncIterator[Event]:
        """Run one request, yielding its output events as they are produced."""
        raise NotImplementedError

    async def map(self, inputs: Iterable[Any], *, return_exceptions: bool = False) -> list[Any]:
        """Submit all inputs concurrently (bounded by admission); results in input order."""
        tasks = [asyncio.ensure_future(self.submit(x)) for x in inputs]
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for t in tasks:
                t.cancel()
        if not return_exceptions:
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        return list(results)


def _make_runtime(pipeline: Pipeline, runtime: Any, streaming: bool, options: dict[str, Any]) -> Runtime:
    if runtime == "local":
        from .local import LocalRuntime

        return LocalRuntime(pipeline, streaming=streaming, **options)
    if runtime == "ray":
        try:
            from .ray import RayRuntime  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ValueError("runtime='ray' needs the Ray runtime (alto.runtime.ray), not installed here") from exc
        return RayRuntime(pipeline, streaming=streaming, **options)
    if isinstance(runtime, type):
        return runtime(pipeline, streaming=streaming, **options)
    raise ValueError(f"runtime= must be 'local', 'ray' or a Runtime class, got {runtime!r}")


async def run_async(
    pipeline: Pipeline,
    inputs: Iterable[Any],
    *,
    runtime: Any = "local",
    streaming: bool = True,
    return_exceptions: bool = False,
    **options: Any,
) -> list[Any]:
    """``await``-able :func:`run`, for code already inside an event loop."""
    pipeline.validate(require_final=True)
    rt = _make_runtime(pipeline, runtime, streaming, options)
    async with rt:
        return await rt.map(list(inputs), return_exceptions=return_exceptions)


def run(
    pipeline: Pipeline,
    inputs: Iterable[Any],
    *,
    runtime: Any = "local",
    streaming: bool = True,
    return_exceptions: bool = False,
    **options: Any,
) -> list[Any]:
    """Run every input through ``pipeline``; one depth-0 result per input, in order.

    A request whose stage raised fails with :class:`~alto.StageError` (raised here, or
    left in its slot with ``return_exceptions=True``); other requests are unaffected.
    ``streaming=False`` runs the paper's baseline: each expand's children are held back
    until the whole level is generated. Extra keyword options go to the runtime.

    >>> import alto
    >>> p = alto.Pipeline("double")
    >>> _ = p.output(p.input().map(lambda x: 2 * x))
    >>> alto.run(p, [1, 2, 3])
    [2, 4, 6]
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        options.update(runtime=runtime, streaming=streaming, return_exceptions=return_exceptions)
        return asyncio.run(run_async(pipeline, inputs, **options))
    raise RuntimeError("alto.run() cannot be called inside a running event loop; use `await alto.run_async(...)`")
