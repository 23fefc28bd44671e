"""RayRuntime: the same pipelines on a Ray cluster, surviving lost replicas and nodes.

Every stage replica is an async Ray actor (:mod:`alto.runtime.ray._replica`) placed
with the stage's ``resources`` (``num_cpus``, ``num_gpus``, custom resources). It runs
the same :mod:`alto.engine.operators`, :mod:`alto.routing` and :mod:`alto.dataflow` code as the
local runtime. Senders (:mod:`alto.runtime.ray._sender`) route every item themselves and
push *batches* straight to the chosen downstream replica (no central hop) over a
direct TCP connection (:mod:`alto.runtime.ray._wire`; ``transport="ray"`` uses actor calls
instead): messages emitted in one turn of the event loop leave together, so a busy
stage sends few, large batches and a slow one sends at once. Receivers answer each
batch with their queue length, which the sender's router uses (load reports
piggybacked on acknowledgements). A window of unacknowledged batches per link, and
bounded inboxes, give backpressure.

One gateway actor (:mod:`alto.runtime.ray._gateway`), on the driver's node, admits
requests, holds the output sinks (:class:`~alto.engine.Requests`, shared with
the local runtime) and supervises replicas.

**Failures.** A sender whose batch fails because its receiver died reports it to the
gateway (a health check finds the rest), which starts a replacement with the same
resources (on another live node if it can), rewires every sender to it in place and
*replays*: the gateway keeps the input of every request that has not completed (an
unacknowledged message, end to end); every sender records which open requests it sent
items of to each replica, so only the requests that reached the lost replica are sent
again. Receivers deduplicate by path -- aggregation groups count each child
index once, zip pairs each path once, output sinks resolve each path once -- so every
result is delivered exactly once, and aggregation state lost with a replica is rebuilt
from the replayed items. Replay assumes stages give the same output for the same
input (make LLM stages deterministic, e.g. temperature 0, or accept either result).
A replica that keeps dying (``max_restarts``) fails its requests with StageError;
every wait has a timeout with a message that says what was waited for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Unpack

from alto.dataflow._pipeline import Pipeline
from alto.engine._observe import request_span
from alto.engine._options import RuntimeKwargs, RuntimeOptions
from alto.engine._requests import Event
from alto.runtime._base import Runtime
from alto.runtime.ray._gateway import Gateway, RayOptions

log = logging.getLogger("alto.ray")

__all__ = ["RayRuntime", "ray_init"]


def ray_init(address: str | None = None, **kwargs: Any) -> None:
    """``ray.init`` with ALTO's defaults: loopback binding, no auth for local clusters."""
    import ray

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        kwargs.setdefault("include_dashboard", False)
        kwargs.setdefault("log_to_driver", False)
        # ray.init replaces the SIGTERM handler with one that exits at once; a driver that
        # handles SIGTERM itself (alto serve drains its runs in flight) keeps its own.
        main = threading.current_thread() is threading.main_thread()
        before = signal.getsignal(signal.SIGTERM) if main else None
        ray.init(address=address, **kwargs)
        if main and callable(before):
            signal.signal(signal.SIGTERM, before)


def _user_modules(pipeline: Pipeline) -> list[Any]:
    """Modules that worker processes may not be able to import (scripts, notebooks,
    test files and the helper modules beside them): every loaded module that is not
    part of Python, an installed package or ALTO. They are pickled by value; only the
    objects the pipeline actually references are sent."""
    import sysconfig

    system = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    ours = ("alto", "alto_apps")  # installed with ALTO: every worker imports them itself
    found = {}
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if path is None or name == "__main__" or "site-packages" in path or "dist-packages" in path:
            continue
        p = Path(path).resolve()
        if name.split(".")[0] in ours or any(s in p.parents for s in system):
            continue
        found[name] = mod
    return list(found.values())


def _dumps(obj: Any, pipeline: Pipeline) -> bytes:
    import cloudpickle

    modules = _user_modules(pipeline)
    for m in modules:
        cloudpickle.register_pickle_by_value(m)
    try:
        return cloudpickle.dumps(obj)
    finally:
        for m in modules:
            cloudpickle.unregister_pickle_by_value(m)


def _carrier(ctx: Any) -> dict[str, str] | None:
    """The W3C trace context of a request's span, for the replicas (``None``: tracing off)."""
    if ctx is None:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return carrier


class RayKwargs(RuntimeKwargs, total=False):
    """Keyword options of :class:`RayRuntime`: the shared runtime options plus Ray's own."""

    start_timeout_s: float
    max_restarts: int
    transport: str
    health_interval_s: float
    restart_timeout_s: float
    health_timeout_s: float
    trace_setup: Any


class RayRuntime(Runtime):
    """Run a pipeline on Ray: ``async with RayRuntime(p, address="auto") as rt:``.

    Args:
        pipeline: the pipeline (validated before anything starts).
        address: a cluster to join (``"auto"``, ``"ray://..."``); ``None`` starts or
            reuses a local Ray instance.
        streaming: ``False`` runs the paper's baseline.
        start_timeout_s: longest wait for replicas to be placed and started.
        max_restarts: replacements per replica before its requests fail.
        transport: ``"tcp"`` (default): items travel on direct connections between
            replicas (each replica listens on its node's IP; nodes must reach each
            other's ports, as Ray's own workers do); ``"ray"``: as Ray actor calls
            (about 10x slower per hop; for networks that allow only Ray's ports).
        health_interval_s, restart_timeout_s, health_timeout_s: supervision timing.
        **options: the same :class:`~alto.engine.RuntimeOptions` as
            :class:`~alto.LocalRuntime` (``inbox_capacity``, ``batch_size``,
            ``max_requests``, ``sync_budget_s``, ``timeout_s``, ``event_buffer``,
            ``stage_metrics``, ``tracing``).
        trace_setup: with ``tracing=True``, a function of no arguments each replica
            runs at start to configure OpenTelemetry in its own process.

    Raises ``ImportError`` naming the extra to install when Ray is missing.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        address: str | None = None,
        streaming: bool = True,
        **options: Unpack[RayKwargs],
    ) -> None:
        try:
            import ray  # noqa: F401 -- fail here, with the fix, not deep inside start()
        except ImportError as exc:
            raise ImportError(
                "RayRuntime needs Ray: pip install 'alto-orchestrator[ray]' (or runtime='local')"
            ) from exc
        pipeline.validate()
        shared, rest = RuntimeOptions.split(dict(options))
        try:
            ray_options = RayOptions(**rest)
        except TypeError as exc:
            valid = sorted(set(RuntimeOptions.__dataclass_fields__) | set(RayKwargs.__annotations__))
            raise TypeError(f"RayRuntime: {exc}; valid options: {valid}") from None
        # Only replicas of this runtime know the token, so only they can feed each other;
        # no token means the Ray-call transport.
        token = secrets.token_bytes(16) if ray_options.transport == "tcp" else None
        setup = ray_options.trace_setup
        if setup is not None and not callable(setup):
            raise TypeError(f"RayRuntime: trace_setup= must be a function of no arguments, got {setup!r}")
        self.ray_options = dataclasses.replace(
            ray_options, token=token, trace_setup=_dumps(setup, pipeline) if setup is not None else None
        )
        self._traces: dict[int, Any] | None = {} if shared.tracing else None
        self.options = shared
        self.max_requests = shared.max_requests
        self.pipeline = pipeline
        self.address = address
        self.streaming = streaming
        self.gateway: Any = None
        self.placement: dict[str, list[str]] = {}

    async def _open(self) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray_init(self.address)
        payload = _dumps(self.pipeline, self.pipeline)
        here = ray.get_runtime_context().get_node_id()
        gateway_cls = ray.remote(Gateway).options(
            num_cpus=0,
            max_concurrency=10_000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        )
        self.gateway = gateway_cls.remote(payload, self.streaming, self.options, self.ray_options)
        try:
            self.placement = await self.gateway.start.remote()
        except BaseException as exc:
            await self._close()
            cause = getattr(exc, "cause", None)  # Ray's wrapper of the gateway's own error
            if isinstance(cause, Exception):
                raise cause from None  # "stage 'x' (replica 0) failed to start: ...", as locally
            raise

    async def _close(self) -> None:
        import ray

        if self.gateway is not None:
            try:
                await asyncio.wait_for(self.gateway.close.remote(), 30)
            except Exception as exc:  # the gateway is killed below either way
                log.warning("closing the Ray gateway failed (%r); killing it", exc)
            ray.kill(self.gateway)
            self.gateway = None

    async def submit(self, value: Any) -> Any:
        self._require_open()
        if not self.pipeline.final_outputs():
            self.pipeline.validate(require_final=True)
        with request_span(self.pipeline.name, self._traces) as ctx:
            ok, result = await self.gateway.submit.remote(value, _carrier(ctx))
            if not ok:
                raise result
            return result

    async def stream(self, value: Any) -> AsyncIterator[Event]:
        self._require_open()
        with request_span(self.pipeline.name, self._traces) as ctx:
            rid = await self.gateway.open_stream.remote(value, _carrier(ctx))
            done = False
            try:
                while not done:
                    events, done = await self.gateway.next_events.remote(rid)
                    for ev in events:
                        if isinstance(ev, BaseException):
                            raise ev
                        yield ev
            finally:
                if not done and self.gateway is not None:
                    self.gateway.cancel.remote(rid)

    async def replica(self, stage: str, index: int = 0) -> Any:
        """The actor handle of one replica (for inspection and fault drills)."""
        return await self.gateway.replica.remote(stage, index)

    async def stats(self) -> dict[str, Any]:
        """Admission (``"requests"``), replays and restarts, and :meth:`stage_stats`: the
        shape :meth:`LocalRuntime.stats <alto.LocalRuntime.stats>` has."""
        self._require_open()
        stats = await self.gateway.stats.remote()
        return {**stats, **await self.stage_stats()}

    async def stage_stats(self) -> dict[str, dict[str, Any]]:
        """Every replica's counters, by stage, as :meth:`LocalRuntime.stage_stats
        <alto.LocalRuntime.stage_stats>` gives them (asked of each replica actor)."""
        self._require_open()
        return await self.gateway.stage_stats.remote()

    async def debug_state(self) -> dict[str, Any]:
        """Open requests and every replica's inbox and links (for diagnosing a stall)."""
        return await self.gateway.debug_state.remote()
