"""The Gateway actor of a RayRuntime: admission, output sinks, replica supervision."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from alto.dataflow import Item, Message, Pipeline, StageSpec
from alto.engine import RuntimeOptions
from alto.engine._observe import group_replicas
from alto.engine._requests import Admission, Requests, take_events
from alto.errors import StageError, StageStartError
from alto.runtime.ray._replica import ReplicaActor, options_for
from alto.runtime.ray._sender import Sender, Wiring, downstream_stages, wire_emit
from alto.runtime.ray._wire import Endpoint, Pool

log = logging.getLogger("alto.ray")


@dataclass(frozen=True, kw_only=True, slots=True)
class RayOptions:
    """Options only the Ray runtime has (see :class:`~alto.runtime.ray.RayRuntime`)."""

    start_timeout_s: float = 60.0
    max_restarts: int = 5
    transport: str = "tcp"
    health_interval_s: float = 0.5
    restart_timeout_s: float = 15.0
    health_timeout_s: float = 10.0
    token: bytes | None = None
    #: with ``tracing=True``: a function each replica runs at start to configure
    #: OpenTelemetry in its process (replicas make their stage spans there); pickled
    trace_setup: Any = None

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "ray"):
            raise ValueError(
                f"transport={self.transport!r}: use 'tcp' (direct connections, default) or 'ray' (actor calls)"
            )
        for name in ("start_timeout_s", "health_interval_s", "restart_timeout_s", "health_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}= must be a number of seconds > 0, got {getattr(self, name)!r}")
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ValueError(f"max_restarts= must be an integer >= 0, got {self.max_restarts!r}")


class Gateway:
    """Admission, output sinks and replica supervision for one RayRuntime."""

    def __init__(self, payload: bytes, streaming: bool, options: RuntimeOptions, ray_options: RayOptions) -> None:
        import cloudpickle

        self.payload = payload
        self.pipeline: Pipeline = cloudpickle.loads(payload)
        self.streaming = streaming
        self.options = options
        self.timeout_s = options.timeout_s
        self.start_timeout_s = ray_options.start_timeout_s
        self.max_restarts = ray_options.max_restarts
        self.handles: dict[str, list[Any]] = {}
        self.nodes: dict[str, list[str]] = {}
        self.restarts: dict[tuple[str, int], int] = {}
        self.inputs: dict[int, Any] = {}
        self.finished: list[int] = []
        self.replays = 0
        self.replayed_requests = 0
        self._streams: dict[int, Any] = {}
        self._topology_lock = asyncio.Lock()
        self.suspect_nodes: set[str] = set()
        self.failed_starts: dict[tuple[str, int], int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.health_interval_s = ray_options.health_interval_s
        self.restart_timeout_s = ray_options.restart_timeout_s
        self.health_timeout_s = ray_options.health_timeout_s
        self.addrs: dict[str, list[Any]] = {}
        self.token: bytes | None = ray_options.token  # None: the Ray-call transport
        self.trace_setup: bytes | None = ray_options.trace_setup  # pickled by RayRuntime
        self.pool = Pool(self.token) if self.token else None
        self.gateway_addr: Any = None
        self.sender: Sender | None = None  # made in start(): it needs the running loop

    async def start(self) -> dict[str, list[str]]:
        import ray

        self.requests = Requests(
            self.pipeline, timeout_s=self.timeout_s, event_buffer=self.options.event_buffer, on_end=self._ended
        )
        self.admission = Admission(self.requests, self.options.max_requests)
        self.me = ray.get_runtime_context().current_actor
        for spec in self.pipeline.stages.values():
            if spec.kind != "input":
                self.handles[spec.name] = [self._spawn(spec, i) for i in range(spec.replicas)]
        if self.token is not None:
            self.endpoint = Endpoint(self._deliver, self.token, "gateway")
            self.gateway_addr = await self.endpoint.start(ray.util.get_node_ip_address())
        for name, hs in self.handles.items():
            started = await self._await_all([h.setup.remote() for h in hs], f"starting stage {name!r}", name)
            self.nodes[name] = [node for node, _ in started]
            self.addrs[name] = [addr for _, addr in started]
        wiring = self._wiring()
        calls = [h.wire.remote(wiring) for hs in self.handles.values() for h in hs]
        await self._await_all(calls, "wiring replicas", None)
        await self._rewire_self()
        loop = asyncio.get_running_loop()
        self._janitor = loop.create_task(self._forget_loop())
        self._health = loop.create_task(self._health_loop())
        return {k: list(v) for k, v in self.nodes.items()}

    def _spawn(self, spec: StageSpec, index: int, avoid: set[str] | None = None) -> Any:
        import ray

        options = options_for(spec)
        if avoid:
            # Prefer nodes other than those where replicas just died (the GCS may not know
            # yet that a node is gone); a soft rule, so a one-node cluster still works.
            from ray.util.scheduling_strategies import NodeLabelSchedulingStrategy, NotIn

            options["scheduling_strategy"] = NodeLabelSchedulingStrategy(
                hard={}, soft={"ray.io/node-id": NotIn(*avoid)}
            )
        actor = ray.remote(ReplicaActor).options(**options)
        return actor.remote(self.payload, spec.name, index, self.streaming, self.options, self.token, self.trace_setup)

    async def _await_all(self, refs: list[Any], what: str, stage: str | None) -> list[Any]:
        """The answers of ``refs``; for a stage's replicas, an error names the stage and
        replica and carries the stage's own exception (not Ray's wrapper), as locally."""
        try:
            answers = await asyncio.wait_for(asyncio.gather(*refs, return_exceptions=True), self.start_timeout_s)
        except TimeoutError:
            res = dict(self.pipeline.stages[stage].resources) if stage else {}
            raise TimeoutError(
                f"{what} did not finish within {self.start_timeout_s:.0f}s"
                + (f": no live node may offer the resources {res} this stage asks for" if res else "")
                + " (check `ray status`; pass start_timeout_s= to wait longer)"
            ) from None
        for i, answer in enumerate(answers):
            if isinstance(answer, BaseException):
                if stage is None:
                    raise answer
                cause = getattr(answer, "cause", None) or answer  # RayTaskError -> the stage's exception
                raise StageStartError(stage, i, cause) from cause
        return answers

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wiring(self) -> Wiring:
        return Wiring(self.handles, self.addrs, self.me, self.gateway_addr)

    async def _rewire_self(self) -> None:
        if self.sender is None:
            self.sender = Sender(lambda stage, i: self._spawn_task(self._replace_current(stage, i)))
        name = "input"  # the pipeline's single input stage
        sends, sink = await self._wiring().senders(self.pool, downstream_stages(self.pipeline, name))
        self.inject = wire_emit(name, self.sender, self.pipeline, sends, sink).emit

    # -- requests ------------------------------------------------------------------------

    async def _inject(self, req: Any, value: Any, trace: dict[str, str] | None = None) -> None:
        """Send an admitted request's input to the first stages (remembered for replays)."""
        self.inputs[req.rid] = value
        if trace and self.options.tracing:  # every replica knows the request's span before its items
            calls = [h.trace.remote(req.rid, trace) for hs in self.handles.values() for h in hs]
            await asyncio.gather(*calls, return_exceptions=True)  # a dead replica: no spans, no failure
        wait = self.inject(Item((req.rid,), value))
        if wait is not None:
            await wait

    def _ended(self, rid: int, interrupt: bool) -> None:
        """A request ended (Requests calls this once): stop its work now if it failed or
        was abandoned; otherwise let replicas forget it with the next batch."""
        self.inputs.pop(rid, None)
        if interrupt:
            self._broadcast([rid], interrupt=True)
        else:
            self.finished.append(rid)

    async def submit(self, value: Any, trace: dict[str, str] | None = None) -> tuple[bool, Any]:
        """``(True, result)`` or ``(False, exception)``: errors travel as values so the
        caller re-raises the original StageError (with its cause), not a Ray wrapper.
        ``trace``: the W3C trace context of the request's span (``tracing=True``)."""
        async with self.admission.admit() as req:  # the caller going away stops its work
            await self._inject(req, value, trace)
            try:
                return True, await req.future
            except Exception as exc:  # StageError, RequestTimeout, closed runtime
                return False, exc

    async def open_stream(self, value: Any, trace: dict[str, str] | None = None) -> int:
        req = await self.admission.hold(events=True)
        await self._inject(req, value, trace)
        self._streams[req.rid] = req
        return req.rid

    async def next_events(self, rid: int) -> tuple[list[Any], bool]:
        """Events of a streamed request so far (waiting for at least one; the request's
        own timeout ends the wait with its error)."""
        out, done = await take_events(self._streams[rid])
        if done:
            self._streams.pop(rid, None)
        return out, done

    def cancel(self, rid: int) -> None:
        """The caller left: drop the request and stop its work on every replica."""
        self.requests.forget(rid)
        self._streams.pop(rid, None)

    async def deliver(self, batch: list[tuple[str, Message]]) -> int:
        """Output messages, as ``(output stage, message)`` pairs (the Ray-call transport)."""
        return await self._deliver(batch)

    async def _deliver(self, batch: list[tuple[str, Message]]) -> int:
        waits = [w for w in (self.requests.deliver(output, msg) for output, msg in batch) if w is not None]
        if waits:  # a stream's reader is behind: the ack waits, so the senders' windows fill
            await asyncio.gather(*waits)
        return 0

    async def fail(self, error: StageError) -> None:
        self.requests.fail(error.path[0], error)  # ends it: _ended stops its work

    def _broadcast(self, rids: list[int], interrupt: bool) -> None:
        for hs in self.handles.values():
            for h in hs:
                h.cancel.remote(rids, interrupt)

    async def _forget_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self.finished:
                rids, self.finished = self.finished, []
                if self.sender is not None:
                    self.sender.forget(rids)
                self._broadcast(rids, interrupt=False)

    # -- supervision -----------------------------------------------------------------------

    async def report_dead(self, stage: str, index: int, actor_id: str) -> None:
        """A sender's batch to ``stage[index]`` failed: replace that replica."""
        if self.handles[stage][index]._actor_id.hex() == actor_id:
            await self._replace({(stage, index): actor_id})

    async def _replace_current(self, stage: str, index: int) -> None:
        await self._replace({(stage, index): self.handles[stage][index]._actor_id.hex()})

    async def _health_loop(self) -> None:
        """Find dead replicas that no sender is talking to (e.g. a whole node died
        together with every replica that would have noticed)."""
        while True:
            await asyncio.sleep(self.health_interval_s)
            current = [(name, i, h) for name, hs in self.handles.items() for i, h in enumerate(hs)]
            results = await asyncio.gather(
                *(asyncio.wait_for(h.ping.remote(), self.health_timeout_s) for _, _, h in current),
                return_exceptions=True,
            )
            dead = {
                (name, i): h._actor_id.hex()
                for (name, i, h), r in zip(current, results, strict=True)
                if isinstance(r, BaseException) and not isinstance(r, TimeoutError)
            }
            if dead:
                try:
                    await self._replace(dead)
                except Exception:  # the supervisor must outlive any one failed repair
                    log.exception("replacing %s failed; retrying at the next health check", sorted(dead))

    async def _replace(self, dead: dict[tuple[str, int], str]) -> None:
        """Replace dead replicas, rewire every sender to them, replay open requests.

        Topology changes are serialised; replicas replaced meanwhile are skipped.
        """
        import ray

        async with self._topology_lock:
            dead = {k: a for k, a in dead.items() if self.handles[k[0]][k[1]]._actor_id.hex() == a}
            if not dead:
                return
            for stage, index in dead:
                # restarts counts replacements that started; a start that failed (placed
                # on a node Ray does not yet know is gone) is retried without counting
                n = self.restarts.get((stage, index), 0) + 1
                if n > self.max_restarts:
                    err = RuntimeError(
                        f"replica {index} of stage {stage!r} died {n} times (max_restarts={self.max_restarts})"
                    )
                    for rid in list(self.inputs):
                        await self.fail(StageError(stage, (rid,), err))
                    return
            log.warning("replacing %s", ", ".join(f"{s}[{i}]" for s, i in dead))
            self.suspect_nodes.update(self.nodes[s][i] for s, i in dead)
            new = {k: self._spawn(self.pipeline.stages[k[0]], k[1], self.suspect_nodes) for k in dead}
            try:
                # A replacement scheduled onto a node that is dying (before Ray knows it)
                # never starts: give up on it soon and let the next health check retry.
                # ... but a busy machine can take long to start a worker: each failed
                # attempt doubles the wait (up to start_timeout_s).
                tries = max(self.failed_starts.get(k, 0) for k in new)
                nodes = await asyncio.wait_for(
                    asyncio.gather(*(h.setup.remote() for h in new.values()), return_exceptions=True),
                    min(self.start_timeout_s, self.restart_timeout_s * 2**tries),
                )
            except TimeoutError:
                nodes = [TimeoutError("no node could host the replacement")] * len(new)
            fresh = set()
            for (stage, index), started in zip(new, nodes, strict=True):
                if isinstance(started, BaseException):
                    # e.g. placed on a node that was dying: the next health check retries.
                    # Kill it so a late start cannot hold the resources the retry needs.
                    log.warning("replacement for %s[%d] failed to start: %s", stage, index, started)
                    ray.kill(new[(stage, index)])
                    self.failed_starts[(stage, index)] = self.failed_starts.get((stage, index), 0) + 1
                    continue
                self.failed_starts.pop((stage, index), None)
                self.handles[stage][index] = new[(stage, index)]
                self.nodes[stage][index], self.addrs[stage][index] = started
                self.restarts[(stage, index)] = self.restarts.get((stage, index), 0) + 1
                fresh.add(new[(stage, index)])
            if not fresh:
                return
            wiring = self._wiring()
            calls = [h.wire.remote(wiring) for hs in self.handles.values() for h in hs]
            # Replicas that died meanwhile are found by the next health check.
            try:
                await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), self.start_timeout_s)
            except TimeoutError:
                log.warning("rewiring after a restart timed out; the health check will retry")
            await self._rewire_self()
            self.replays += 1
            affected = await self._affected([k for k, h in new.items() if h in fresh])
            for rid, value in list(self.inputs.items()):
                if affected is None or rid in affected:
                    self.replayed_requests += 1
                    wait = self.inject(Item((rid,), value))
                    if wait is not None:
                        await wait

    async def _affected(self, keys: list[tuple[str, int]]) -> set[int] | None:
        """Open requests that had items sent to the replicas ``keys`` (only those can have
        lost anything with them); ``None`` -- replay everything -- if a sender cannot say.

        A request whose sender died too is found through that sender's own replacement
        (every path of lost work starts at a live sender or at the gateway).
        """
        handles = [h for hs in self.handles.values() for h in hs]
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(h.sent_to.remote(keys) for h in handles)), self.health_timeout_s
            )
        except Exception as exc:
            log.warning("replaying every open request: a replica could not say what it sent (%s)", exc)
            return None
        assert self.sender is not None
        return set().union(*answers, self.sender.sent_to(keys))

    async def debug_state(self) -> dict[str, Any]:
        """Everything a stuck run would need explaining: open requests, every replica's
        inbox and links (inflight batches, dead flag, buffered)."""
        replicas: dict[str, Any] = {}
        for name, hs in self.handles.items():
            for i, h in enumerate(hs):
                try:
                    replicas[f"{name}[{i}]"] = await asyncio.wait_for(h.debug_state.remote(), 5)
                except Exception as exc:
                    replicas[f"{name}[{i}]"] = f"unreachable: {type(exc).__name__}"
        return {
            "open_requests": sorted(self.inputs),
            **self.stats(),
            "gateway_links": self.sender.describe() if self.sender is not None else {},
            "replicas": replicas,
        }

    def placement(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.nodes.items()}

    def replica(self, stage: str, index: int) -> Any:
        return self.handles[stage][index]

    async def stage_stats(self) -> dict[str, dict[str, Any]]:
        """Every replica's counters, grouped by stage as the local runtime's
        ``stage_stats()`` (a replica that does not answer within 2 s -- being replaced,
        say -- gives ``None``: a Prometheus scrape must not wait out a restart)."""

        async def one(h: Any) -> dict[str, Any] | None:
            try:
                return await asyncio.wait_for(h.snapshot.remote(), min(2.0, self.health_timeout_s))
            except Exception:
                return None

        out = {}
        for name, hs in self.handles.items():
            out[name] = group_replicas(list(await asyncio.gather(*(one(h) for h in hs))))
        return out

    def stats(self) -> dict[str, Any]:
        requests = {**self.admission.stats(), "ended_listed": 0} if hasattr(self, "admission") else {}
        return {
            "requests": requests,
            "replays": self.replays,
            "replayed_requests": self.replayed_requests,
            "restarts": {f"{s}[{i}]": n for (s, i), n in self.restarts.items()},
        }

    async def close(self) -> None:
        import ray

        if hasattr(self, "requests"):  # (a start that failed early made none of these)
            self.requests.close("the runtime was closed before this request finished")
        for task in (getattr(self, "_janitor", None), getattr(self, "_health", None)):
            if task is not None:
                task.cancel()
        if self.sender is not None:
            self.sender.close()
        if self.pool is not None:
            await self.pool.close()
            if hasattr(self, "endpoint"):
                await self.endpoint.close()
        if self.options.tracing:  # spans a batching exporter still holds would die with the actors
            flushes = [h.flush_traces.remote() for hs in self.handles.values() for h in hs]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*flushes, return_exceptions=True), self.health_timeout_s)
        for hs in self.handles.values():
            for h in hs:
                ray.kill(h)
