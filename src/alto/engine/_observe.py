"""Measuring stages: each replica's time per item (a histogram), items in and out,
failures, and OpenTelemetry spans -- all off by default, because each costs a clock
read per item on the hot path. ``stage_metrics=True`` and ``tracing=True`` (runtime
options) turn them on; ``alto serve`` turns on the first.

The histogram has power-of-two buckets in microseconds, so one ``int.bit_length`` files
an item (no search): bucket ``k`` holds times in ``[2**(k-1), 2**k)`` µs.

>>> t = StageTimer()
>>> t.observe(0.0000015, failed=False); t.observe(0.003, failed=True)
>>> s = t.snapshot()
>>> s["count"], s["errors"], [BOUNDS_S[k] for k, n in enumerate(s["counts"]) if n]
(2, 1, [2e-06, 0.004096])
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "BOUNDS_S",
    "Observer",
    "StageTimer",
    "console_tracing",
    "group_replicas",
    "merge_snapshots",
    "request_span",
    "tracer",
]

_BUCKETS = 28  # 2**0 .. 2**26 µs (67 s), then everything longer
BOUNDS_S: tuple[float, ...] = tuple(2**k / 1e6 for k in range(_BUCKETS - 1))  #: upper bounds ("le")
_LAST = _BUCKETS - 1


class StageTimer:
    """One replica's counts: time per item (histogram), items emitted, failed items."""

    __slots__ = ("count", "counts", "errors", "items_out", "sum_s")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.sum_s = 0.0
        self.count = 0
        self.errors = 0
        self.items_out = 0

    def observe(self, seconds: float, failed: bool) -> None:
        k = int(seconds * 1e6).bit_length()
        self.counts[k if k < _LAST else _LAST] += 1
        self.sum_s += seconds
        self.count += 1
        if failed:
            self.errors += 1

    def snapshot(self) -> dict[str, Any]:
        """Plain data (it crosses process boundaries on Ray)."""
        return {
            "counts": list(self.counts),
            "sum_s": self.sum_s,
            "count": self.count,
            "errors": self.errors,
            "items_out": self.items_out,
        }


def merge_snapshots(snaps: list[dict[str, Any]]) -> dict[str, Any]:
    """One stage's histogram from its replicas' snapshots.

    >>> a, b = StageTimer(), StageTimer()
    >>> a.observe(0.001, False); b.observe(0.001, False)
    >>> merge_snapshots([a.snapshot(), b.snapshot()])["count"]
    2
    """
    out = StageTimer().snapshot()
    for s in snaps:
        out["counts"] = [x + y for x, y in zip(out["counts"], s["counts"], strict=True)]
        for key in ("sum_s", "count", "errors", "items_out"):
            out[key] += s[key]
    return out


def group_replicas(snaps: list[dict[str, Any] | None]) -> dict[str, Any]:
    """One stage's entry in ``stats()``: each replica counter as a list over replicas
    (``None`` for a replica that could not answer).

    >>> group_replicas([{"handled": 3}, None])
    {'replicas': 2, 'handled': [3, None]}
    """
    keys = next((list(s) for s in snaps if s is not None), [])
    out: dict[str, Any] = {"replicas": len(snaps)}
    for key in keys:
        out[key] = [s[key] if s is not None else None for s in snaps]
    return out


def console_tracing() -> None:
    """Configure OpenTelemetry in this process to print every span as one JSON line on
    stderr (``alto serve --trace console``; on Ray, each replica runs it too). Does
    nothing where an SDK tracer provider is already set.
    """
    import sys

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider()
    exporter = ConsoleSpanExporter(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def tracer() -> Any:
    """ALTO's OpenTelemetry tracer (a no-op until the application configures an SDK)."""
    from opentelemetry import trace

    return trace.get_tracer("alto")


class Observer:
    """What a replica records when it finishes an item: its time (``timer``) and, with
    tracing on, a span under its request's span (``parent(rid)`` gives that context)."""

    __slots__ = ("_offset", "index", "parent", "stage", "timer", "tracer")

    def __init__(
        self,
        stage: str,
        index: int,
        timer: StageTimer | None,
        parent: Callable[[int], Any] | None,
    ) -> None:
        self.stage, self.index, self.timer, self.parent = stage, index, timer, parent
        self.tracer = tracer() if parent is not None else None
        # spans want wall-clock nanoseconds; items are timed with perf_counter (cheaper, monotonic)
        self._offset = time.time() - time.perf_counter()

    def done(self, path: tuple[int, ...], t0: float, failed: bool) -> None:
        """The item at ``path``, started at ``t0`` (``perf_counter``), is finished."""
        t1 = time.perf_counter()
        if self.timer is not None:
            self.timer.observe(t1 - t0, failed)
        if self.tracer is not None:
            self._span(path, t0, t1, failed)

    def _span(self, path: tuple[int, ...], t0: float, t1: float, failed: bool) -> None:
        from opentelemetry.trace import Status, StatusCode

        assert self.parent is not None and self.tracer is not None
        span = self.tracer.start_span(
            f"alto.stage {self.stage}",
            context=self.parent(path[0]),
            start_time=int((t0 + self._offset) * 1e9),
            attributes={
                "alto.stage": self.stage,
                "alto.replica": self.index,
                "alto.path": list(path),
                "alto.request": path[0],
            },
        )
        if failed:
            span.set_status(Status(StatusCode.ERROR, f"stage {self.stage!r} failed on item {path}"))
        span.end(end_time=int((t1 + self._offset) * 1e9))


@contextlib.contextmanager
def request_span(pipeline: str, traces: dict[int, Any] | None, rid: int | None = None) -> Iterator[Any]:
    """The span of one request while it runs (a child of the caller's current span).

    Yields the span's context (``None`` when ``traces`` is ``None``: tracing is off);
    with ``rid`` it is also kept in ``traces[rid]``, where the replicas of the local
    runtime find the parent of their stage spans. The span is ended explicitly rather
    than made current, because it lives across the ``yield``s of an async generator.
    """
    if traces is None:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    span = tracer().start_span(f"alto.request {pipeline}", attributes={"alto.pipeline": pipeline})
    ctx = trace.set_span_in_context(span)
    if rid is not None:
        span.set_attribute("alto.request", rid)
        traces[rid] = ctx
    try:
        yield ctx
    except BaseException as exc:
        left = isinstance(exc, (GeneratorExit, asyncio.CancelledError))
        span.set_status(Status(StatusCode.ERROR, "the caller left first" if left else f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        if rid is not None:
            traces.pop(rid, None)
        span.end()
