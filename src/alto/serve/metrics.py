"""Prometheus metrics of a served pipeline (``GET /metrics``), in the app's own registry.

Requests: in flight, finished by outcome, rejected (429), latency and time to the first
partial output (histograms). Stages, read from the runtime when scraped: items
handled, queue depth (load) and peak inbox per replica.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

__all__ = ["Metrics"]

_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class _Stages:
    """A collector of the runtime's per-replica counters, as read at the last scrape."""

    def __init__(self, runtime: Callable[[], Any]) -> None:
        self.runtime = runtime
        self.stats: dict[str, Any] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rt = self.runtime()
        stats = self.stats
        families = {
            "handled": GaugeMetricFamily(
                "alto_stage_items_handled", "items a replica has handled", labels=["stage", "replica"]
            ),
            "load": GaugeMetricFamily(
                "alto_stage_queue_depth", "items queued or running at a replica", labels=["stage", "replica"]
            ),
            "inbox_peak": GaugeMetricFamily(
                "alto_stage_inbox_peak", "most items ever queued at a replica", labels=["stage", "replica"]
            ),
        }
        for stage, s in stats.items():
            if stage == "requests" or not isinstance(s, dict):
                continue
            for key, family in families.items():
                for i, v in enumerate(s.get(key, [])):
                    family.add_metric([stage, str(i)], float(v))
        yield from families.values()
        yield from _router_families(rt)


def _router_families(rt: Any) -> Iterator[GaugeMetricFamily]:
    """Router decisions of the local runtime's senders: prompt-aware spills and the
    items each sender believes outstanding, per (sender stage, destination stage)."""
    spilled = GaugeMetricFamily(
        "alto_router_spilled", "items sent away from their preferred replica", labels=["sender", "stage"]
    )
    outstanding = GaugeMetricFamily(
        "alto_router_outstanding", "items a sender believes unfinished", labels=["sender", "stage"]
    )
    from ..runtime.emit import router_state

    for name, reps in getattr(rt, "replicas", {}).items():
        for rep in reps:
            routers = getattr(rep.emit, "routers", ())
            for router, state in zip(routers, router_state(rep.emit), strict=True):
                if "spilled" in state:
                    where = [f"{name}[{rep.index}]", getattr(router, "stage", "")]
                    spilled.add_metric(where, float(state["spilled"]))
                    outstanding.add_metric(where, float(state["outstanding"]))
    yield spilled
    yield outstanding


class Metrics:
    def __init__(self, pipeline: Any, runtime: Callable[[], Any], inflight: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.in_flight = Gauge("alto_requests_in_flight", "requests being run", registry=r)
        self.in_flight.set_function(inflight)
        self.finished = Counter("alto_requests", "finished requests by outcome", ["outcome"], registry=r)
        self.rejected = Counter("alto_requests_rejected", "requests refused with 429 (too many in flight)", registry=r)
        self.stage_errors = Counter("alto_stage_errors", "runs failed by a stage, by stage", ["stage"], registry=r)
        self.latency = Histogram("alto_request_seconds", "request latency", buckets=_BUCKETS, registry=r)
        self.first = Histogram(
            "alto_first_output_seconds", "time to the first partial output", buckets=_BUCKETS, registry=r
        )
        self._stages = _Stages(runtime)
        r.register(self._stages)
        self._runtime = runtime

    def done(self, outcome: str, t0: float) -> None:
        self.finished.labels(outcome).inc()
        self.latency.observe(time.perf_counter() - t0)

    def first_output(self, t0: float) -> None:
        """A run that started at ``t0`` sent its first partial output now."""
        self.first.observe(time.perf_counter() - t0)

    async def render(self) -> bytes:
        """The metrics text; reads the runtime's counters first (the local runtime's
        ``stats()`` is a function, Ray's a coroutine: it asks the gateway)."""
        rt = self._runtime()
        stats: Any = rt.stats() if rt is not None and hasattr(rt, "stats") else {}
        if inspect.isawaitable(stats):
            stats = await stats
        self._stages.stats = stats if isinstance(stats, dict) else {}
        return generate_latest(self.registry)
