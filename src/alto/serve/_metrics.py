"""Prometheus metrics of a served pipeline (``GET /metrics``), in the app's own registry.

Requests: in flight, finished by outcome, rejected (429), latency and time to the first
partial output (histograms). Stages, per replica, read from the runtime when scraped
(on Ray, from every replica actor): items handled and emitted, failures, queue depth,
peak inbox, a histogram of each item's time in the stage, and the decisions of
prompt-aware routers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from alto.engine._observe import BOUNDS_S

__all__ = ["Metrics"]

_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class _Stages:
    """A collector of the runtime's per-replica counters (``stage_stats()``), as read at
    the last scrape: the same on both runtimes (Ray's replicas are asked in their actors)."""

    def __init__(self) -> None:
        self.stats: dict[str, Any] = {}

    def collect(self) -> Iterator[Any]:
        labels = ["stage", "replica"]
        # counts since the replica started are counters (a replaced Ray replica starts from
        # zero: rate() reads that as a reset); the rest are gauges
        gauges: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "handled": CounterMetricFamily("alto_stage_items_handled", "items a replica has handled", labels=labels),
            "failures": CounterMetricFamily("alto_stage_failures", "items a replica's stage failed on", labels=labels),
            "load": GaugeMetricFamily("alto_stage_queue_depth", "items queued or running at a replica", labels=labels),
            "inbox_peak": GaugeMetricFamily(
                "alto_stage_inbox_peak", "most items ever queued at a replica", labels=labels
            ),
        }
        items_out = CounterMetricFamily("alto_stage_items_out", "items a replica has emitted", labels=labels)
        seconds = HistogramMetricFamily(
            "alto_stage_seconds",
            "time a replica spent on each item (aggregates and zips: each message, group ends included)",
            labels=labels,
        )
        spilled = CounterMetricFamily(
            "alto_router_spilled", "items sent away from their preferred replica", labels=["sender", "stage"]
        )
        outstanding = GaugeMetricFamily(
            "alto_router_outstanding", "items a sender believes unfinished", labels=["sender", "stage"]
        )
        for stage, s in self.stats.items():
            # stage_stats() holds a list over replicas per counter: one row per replica
            rows = [{key: v[i] for key, v in s.items() if key != "replicas"} for i in range(s["replicas"])]
            for i, row in enumerate(rows):
                if row.get("handled") is None:
                    continue  # a Ray replica that did not answer this scrape
                where = [stage, str(i)]
                for key, family in gauges.items():
                    family.add_metric(where, float(row[key]))
                timing = row["timing"]
                if timing is not None:
                    items_out.add_metric(where, float(timing["items_out"]))
                    seconds.add_metric(where, _buckets(timing["counts"]), timing["sum_s"])
                for state in row["routers"]:
                    if "spilled" in state:
                        sender = [f"{stage}[{i}]", state["stage"]]
                        spilled.add_metric(sender, float(state["spilled"]))
                        outstanding.add_metric(sender, float(state["outstanding"]))
        yield from gauges.values()
        yield from (items_out, seconds, spilled, outstanding)


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets from a replica's power-of-two counts."""
    out, total = [], 0
    for bound, n in zip((*BOUNDS_S, float("inf")), counts, strict=True):
        total += n
        out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
    return out


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
        self._stages = _Stages()
        r.register(self._stages)
        self._runtime = runtime

    def done(self, outcome: str, t0: float) -> None:
        self.finished.labels(outcome).inc()
        self.latency.observe(time.perf_counter() - t0)

    def first_output(self, t0: float) -> None:
        """A run that started at ``t0`` sent its first partial output now."""
        self.first.observe(time.perf_counter() - t0)

    async def render(self) -> bytes:
        """The metrics text; reads the runtime's counters first (on Ray, from every replica)."""
        rt = self._runtime()
        self._stages.stats = await rt.stage_stats() if rt is not None else {}
        return generate_latest(self.registry)
