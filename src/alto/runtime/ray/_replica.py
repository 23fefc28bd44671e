"""One replica of one stage, as an async Ray actor (placed and supervised by the Gateway).

Everything a replica does with its messages is the shared
:class:`~alto.engine.ReplicaExecutor`; the actor adds placement (it is a Ray
actor) and transport (a listening :class:`~alto.runtime.ray._wire.Endpoint` in, a
:class:`~alto.runtime.ray._sender.Sender` out).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alto.dataflow import Item, Pipeline, StageSpec
from alto.dataflow._functions import ASYNC_CONCURRENCY
from alto.engine import Ended, ReplicaExecutor, RuntimeOptions
from alto.engine._transport import router_state
from alto.errors import StageError
from alto.runtime.ray._sender import Sender, Wiring, downstream_stages, wire_emit
from alto.runtime.ray._wire import Endpoint, Pool


class _Peer:
    """One sender's connection: its finished items, reported on its next ack."""

    __slots__ = ("finished",)

    def __init__(self) -> None:
        self.finished: list[tuple[tuple[int, ...], int | None]] = []


def _unwired(msg: Any) -> None:
    raise AssertionError("a replica emitted before the gateway wired it")


class ReplicaActor:
    """One replica of one stage, as an async Ray actor: a :class:`ReplicaExecutor`, a
    listening :class:`~alto.runtime.ray._wire.Endpoint` and a :class:`~alto.runtime.ray._sender.Sender`."""

    def __init__(
        self,
        payload: bytes,
        stage: str,
        index: int,
        streaming: bool,
        options: RuntimeOptions,
        token: bytes | None,
        trace_setup: bytes | None = None,
    ) -> None:
        import cloudpickle

        self.trace_setup = trace_setup if options.tracing else None  # run in setup(): errors reach the caller
        self._traces: dict[int, Any] = {}  # request -> its span's context (tracing=True)

        self.pipeline: Pipeline = cloudpickle.loads(payload)
        self.spec = self.pipeline.stages[stage]
        self.index = index
        self.streaming = streaming
        self.options = options
        # every request ends up here (finished ones too: replays may still bring their items)
        self.cancelled = Ended()
        self.sender: Sender | None = None  # made in wire(): it needs the running loop
        threads = (self.spec.max_in_flight or ASYNC_CONCURRENCY) + 1
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"alto-{stage}")
        self.replica: ReplicaExecutor | None = None
        self.gateway: Any = None
        self.token = token  # None: the Ray-call transport
        self.pool = Pool(self.token) if self.token else None
        self._wired = False
        self._origin: dict[tuple[int, ...], _Peer] = {}  # LLM stage: which sender sent each item

    # the host of the replica executor
    def fail(self, error: StageError) -> None:
        self.gateway.fail.remote(error)

    async def setup(self) -> tuple[str, Any]:
        """Construct the stage (a class stage may load a model) and start listening;
        returns (node id, address senders connect to)."""
        import cloudpickle
        import ray

        if self.trace_setup is not None:
            try:  # the user's OpenTelemetry configuration, in this process
                cloudpickle.loads(self.trace_setup)()
            except Exception as exc:
                raise RuntimeError(f"trace_setup= raised {exc!r}") from exc
        self.replica = ReplicaExecutor(self.spec, self.index, self, _unwired)
        await self.replica.setup()
        addr = None
        if self.token is not None:
            peer = _Peer if self.replica.metered else None
            self.endpoint = Endpoint(self.receive, self.token, f"{self.spec.name}[{self.index}]", peer)
            if self.replica.metered:  # finished items go back on their sender's acknowledgements
                self.replica.listeners.append(self._finished)
            addr = await self.endpoint.start(ray.util.get_node_ip_address())
        return ray.get_runtime_context().get_node_id(), addr

    async def wire(self, wiring: Wiring) -> None:
        """Connect to every downstream replica and the gateway (again after a replacement)."""
        assert self.replica is not None
        self.gateway = wiring.gateway
        self.handles = wiring.handles
        if self.sender is None:
            self.sender = Sender(self._report_dead)
        sends, sink = await wiring.senders(self.pool, downstream_stages(self.pipeline, self.spec.name))
        self.replica.wire(wire_emit(self.spec.name, self.sender, self.pipeline, sends, sink))
        if not self._wired:
            self._wired = True
            self.replica.start()

    def _report_dead(self, stage: str, index: int) -> None:
        if stage != "__sink__":
            self.gateway.report_dead.remote(stage, index, self.handles[stage][index]._actor_id.hex())

    async def receive(self, batch: list[Any], peer: _Peer | None = None) -> Any:
        """Accept a batch; returns (after any backpressure wait) the queue length, and
        for an LLM stage also the items of this sender finished since its last ack,
        with their output tokens (for its prompt-aware router)."""
        assert self.replica is not None
        inbox = self.replica.inbox
        wait = None
        for msg in batch:
            w = inbox.put(msg)
            wait = w or wait
            if peer is not None and msg.__class__ is Item:
                self._origin[msg.path] = peer
        if wait is not None:
            await wait
        if peer is None:
            return len(inbox)
        finished, peer.finished = peer.finished, []
        return len(inbox) + self.replica.busy, finished

    def _finished(self, path: tuple[int, ...], output_tokens: int | None) -> None:
        peer = self._origin.pop(path, None)
        if peer is not None:
            peer.finished.append((path, output_tokens))

    def trace(self, rid: int, carrier: dict[str, str]) -> None:
        """Request ``rid``'s span, as a W3C trace context: the parent of its stage spans here."""
        from opentelemetry import propagate

        self._traces[rid] = propagate.extract(carrier)

    def trace_parent(self, rid: int) -> Any:
        return self._traces.get(rid)

    def flush_traces(self) -> None:
        """Export the spans this process's tracer provider still holds (before the actor is killed)."""
        from opentelemetry import trace

        flush = getattr(trace.get_tracer_provider(), "force_flush", None)
        if flush is not None:
            flush()

    def snapshot(self) -> dict[str, Any] | None:
        """This replica's counters (``None`` before setup)."""
        return self.replica.snapshot() if self.replica is not None else None

    async def cancel(self, rids: list[int], interrupt: bool) -> None:
        """Forget finished requests (purge state), or cancel failed ones (interrupt work)."""
        self.cancelled.update(rids)
        for rid in rids:
            self._traces.pop(rid, None)
        if self.sender is not None:
            self.sender.forget(rids)
        if self.replica is not None:
            for rid in rids:
                if interrupt:
                    self.replica.cancel_request(rid)
                else:
                    self.replica.purge(rid)

    def sent_to(self, keys: list[tuple[str, int]]) -> set[int]:
        """Open requests this replica sent items of to any of the replicas ``keys``."""
        return self.sender.sent_to(keys) if self.sender is not None else set()

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    async def ping(self) -> bool:
        return True

    def handled(self) -> int:
        return self.replica.handled if self.replica else 0

    def debug_state(self) -> dict[str, Any]:
        """Inbox, work in progress and the state of every outgoing link."""
        r = self.replica
        return {
            "inbox": len(r.inbox) if r else None,
            "busy": r.busy if r else None,
            "handled": r.handled if r else None,
            "lanes": len(r.lanes) if r else None,
            "internal_errors": [repr(e) for e in r.errors] if r else [],
            "groups": getattr(r.op, "open_groups", None) if r else None,
            "ended": {"below": self.cancelled.low, "listed": len(self.cancelled.above)},
            "links": self.sender.describe() if self.sender is not None else {},
            "routers": router_state(r.routers) if r else [],
        }


def options_for(spec: StageSpec) -> dict[str, Any]:
    res = dict(spec.resources)
    opts: dict[str, Any] = {"num_cpus": res.pop("num_cpus", 0), "max_concurrency": 1000}
    if "num_gpus" in res:
        opts["num_gpus"] = res.pop("num_gpus")
    if "memory" in res:
        opts["memory"] = res.pop("memory")
    if res:
        opts["resources"] = res
    return opts
