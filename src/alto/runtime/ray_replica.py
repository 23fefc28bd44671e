"""One replica of one stage, as an async Ray actor (placed and supervised by the Gateway)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import StageError
from ..operators import Operator, make_operator
from ..pipeline import Pipeline, StageSpec
from .base import Ended
from .local import Inbox
from .ray_sender import Sender, Wiring, build_emit, downstream_stages
from .wire import Endpoint, Pool


class ReplicaActor:
    """One replica of one stage, as an async Ray actor: an inbox, the stage's operator,
    a listening :class:`~alto.runtime.wire.Endpoint` and a :class:`~alto.runtime.ray_sender.Sender`."""

    def __init__(self, payload: bytes, stage: str, index: int, streaming: bool, options: dict[str, Any]) -> None:
        import cloudpickle

        self.pipeline: Pipeline = cloudpickle.loads(payload)
        self.spec = self.pipeline.stages[stage]
        self.index = index
        self.streaming = streaming
        # every request ends up here (finished ones too: replays may still bring their items)
        self.cancelled = Ended()
        self.sender: Sender | None = None  # made in wire(): it needs the running loop
        self.sync_budget_s = options.get("sync_budget_s", 0.002)
        self.inbox_capacity = options.get("inbox_capacity", 256)
        self.batch_size = options.get("batch_size", 64)
        threads = self.spec.concurrency + 1
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"alto-{stage}")
        self.op: Operator | None = None
        self.gateway: Any = None
        self._task: asyncio.Task[None] | None = None
        self.token: bytes | None = options["token"]  # None: the Ray-call transport
        self.pool = Pool(self.token) if self.token else None

    # StageContext
    def fail(self, error: StageError) -> None:
        self.gateway.fail.remote(error)

    async def setup(self) -> tuple[str, Any]:
        """Start listening; returns (node id, address senders connect to)."""
        import ray

        self.inbox = Inbox(self.inbox_capacity)
        addr = None
        if self.token is not None:
            self.endpoint = Endpoint(self.receive, self.token, f"{self.spec.name}[{self.index}]")
            addr = await self.endpoint.start(ray.util.get_node_ip_address())
        return ray.get_runtime_context().get_node_id(), addr

    async def wire(self, wiring: Wiring) -> None:
        """Connect to every downstream replica and the gateway (again after a replacement)."""
        self.gateway = wiring.gateway
        self.handles = wiring.handles
        if self.sender is None:
            self.sender = Sender(self._report_dead)
        sends, sink = await wiring.senders(self.pool, downstream_stages(self.pipeline, self.spec.name))
        emit = build_emit(self.spec.name, self.sender, self.pipeline, sends, sink)
        if self.op is None:
            self.op = make_operator(self.spec, self, emit)
            await self.op.setup()
            self._task = asyncio.get_running_loop().create_task(self._worker())
            self.op.bind(self._task)
        else:
            self.op.emit = emit

    def _report_dead(self, stage: str, index: int) -> None:
        if stage != "__sink__":
            self.gateway.report_dead.remote(stage, index, self.handles[stage][index]._actor_id.hex())

    async def _worker(self) -> None:
        assert self.op is not None
        while True:
            batch = await self.inbox.get_batch(self.batch_size)
            await self.op.process(batch)

    async def receive(self, batch: list[Any]) -> int:
        """Accept a batch; returns (after any backpressure wait) the queue length."""
        wait = None
        for msg in batch:
            w = self.inbox.put(msg)
            wait = w or wait
        if wait is not None:
            await wait
        return len(self.inbox)

    async def cancel(self, rids: list[int], interrupt: bool) -> None:
        """Forget finished requests (purge state), or cancel failed ones (interrupt work)."""
        self.cancelled.update(rids)
        if self.sender is not None:
            self.sender.forget(rids)
        if self.op is not None:
            for rid in rids:
                if interrupt:
                    self.op.cancel_request(rid)
                else:
                    self.op.purge(rid)

    def sent_to(self, keys: list[tuple[str, int]]) -> set[int]:
        """Open requests this replica sent items of to any of the replicas ``keys``."""
        return self.sender.sent_to(keys) if self.sender is not None else set()

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    async def ping(self) -> bool:
        return True

    def handled(self) -> int:
        return self.op.handled if self.op else 0

    def debug_state(self) -> dict[str, Any]:
        """Inbox, work in progress and the state of every outgoing link."""
        return {
            "inbox": len(self.inbox),
            "busy": self.op.busy if self.op else None,
            "handled": self.op.handled if self.op else None,
            "groups": getattr(self.op, "open_groups", None),
            "ended": {"below": self.cancelled.low, "listed": len(self.cancelled.above)},
            "links": self.sender.describe() if self.sender is not None else {},
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
