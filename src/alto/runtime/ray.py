"""RayRuntime: the same pipelines on a Ray cluster, surviving lost replicas and nodes.

Every stage replica is an async Ray actor (:class:`ReplicaActor`) placed with the
stage's ``resources`` (``num_cpus``, ``num_gpus``, custom resources). It runs the same
:mod:`alto.operators`, :mod:`alto.routing` and :mod:`alto.ancestry` code as the local
runtime. Senders route every item themselves and push *batches* straight to the chosen
downstream replica (no central hop) over a direct TCP connection
(:mod:`alto.runtime.wire`; ``transport="ray"`` uses actor calls instead): messages
emitted in one turn of the event loop leave together, so a busy stage sends few,
large batches and a slow one sends at once.
Receivers answer each batch with their queue length, which the sender's router uses
(load reports piggybacked on acknowledgements). A window of unacknowledged batches
per link, and bounded inboxes, give backpressure.

One :class:`Gateway` actor, on the driver's node, admits requests, holds the output
sinks (:class:`~alto.runtime.base.Requests`, shared with the local runtime) and
supervises replicas.

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
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..ancestry import Item, Message
from ..errors import StageError
from ..operators import Operator, Right, make_operator
from ..pipeline import Pipeline, StageSpec
from .base import Ended, Event, Requests, Runtime, fan_out, replica_chooser
from .local import Inbox
from .wire import Endpoint, Pool

__all__ = ["RayRuntime", "ray_init"]

log = logging.getLogger("alto.ray")

WINDOW = 8  # unacknowledged batches per link before a sender waits


def ray_init(address: str | None = None, **kwargs: Any) -> None:
    """``ray.init`` with ALTO's defaults: loopback binding, no auth for local clusters."""
    import ray

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        kwargs.setdefault("include_dashboard", False)
        kwargs.setdefault("log_to_driver", False)
        ray.init(address=address, **kwargs)


def _user_modules(pipeline: Pipeline) -> list[Any]:
    """Modules of stage functions that worker processes may not be able to import
    (scripts, notebooks, test files): they are pickled by value."""
    import sysconfig

    system = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "purelib", "platlib")}
    alto_dir = Path(__file__).resolve().parents[1]
    found = {}
    for spec in pipeline.stages.values():
        mod = sys.modules.get(getattr(spec.fn, "__module__", "") or "")
        path = getattr(mod, "__file__", None)
        if mod is None or path is None or mod.__name__ == "__main__":
            continue
        p = Path(path).resolve()
        if alto_dir in p.parents or any(s in p.parents for s in system):
            continue
        found[mod.__name__] = mod
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


class _Link:
    """A sender's connection to one receiver: batching, a window of unacked batches."""

    __slots__ = ("buf", "dead", "gen", "inflight", "load", "send", "waiters")

    def __init__(self, send: Callable[[list[Any]], Any]) -> None:
        self.send = send
        self.gen = 0  # bumped when rewired to a replacement: late failures of old batches are ignored
        self.buf: list[Any] = []
        self.inflight = 0
        self.load = 0
        self.dead = False
        self.waiters: list[asyncio.Future[None]] = []


class _Sender:
    """Routes messages to downstream actors and flushes batches once per loop turn."""

    def __init__(self, on_dead: Callable[[str, int], None], sent: dict[tuple[str, int], set[int]]) -> None:
        self._loop = asyncio.get_running_loop()
        self._sent = sent  # open request ids sent on each link: who to replay if it dies
        self._links: dict[tuple[str, int], _Link] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._scheduled = False
        self._on_dead = on_dead
        self._acks: set[asyncio.Task[Any]] = set()

    def link(self, key: tuple[str, int], send: Callable[[list[Any]], Any]) -> _Link:
        """Connect ``key`` to ``send``; an existing link is rewired in place, so emit
        functions built earlier (still held by work in progress) reach the replacement."""
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = _Link(send)
        elif link.send != send:
            link.send = send
            link.dead = False
            link.gen += 1
        return link

    def put(self, key: tuple[str, int], msg: Any, rid: int | None = None) -> asyncio.Future[None] | None:
        link = self._links[key]
        if rid is not None:
            sent = self._sent.get(key)
            if sent is None:
                sent = self._sent[key] = set()
            sent.add(rid)
        if link.dead:
            return None  # the replay after the replacement regenerates it
        link.buf.append(msg)
        self._dirty.add(key)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)
        if link.inflight >= WINDOW:
            fut = self._loop.create_future()
            link.waiters.append(fut)
            return fut
        return None

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            link = self._links[key]
            if not link.buf or link.dead:
                link.buf = []
                continue
            batch, link.buf = link.buf, []
            link.inflight += 1
            try:
                ref = link.send(batch)
            except Exception as exc:
                self._acked(key, link, exc)
                continue
            task = self._loop.create_task(self._await_ack(key, link, link.gen, ref))
            self._acks.add(task)
            task.add_done_callback(self._acks.discard)

    async def _await_ack(self, key: tuple[str, int], link: _Link, gen: int, ref: Any) -> None:
        try:
            load = await ref
        except Exception as exc:
            self._acked(key, link, exc, gen)
        else:
            link.load = load if isinstance(load, int) else 0
            self._acked(key, link, None, gen)

    def _acked(self, key: tuple[str, int], link: _Link, error: BaseException | None, gen: int | None = None) -> None:
        link.inflight -= 1
        if error is not None and not link.dead and gen in (None, link.gen):
            link.dead = True
            log.warning("link to %s[%d] failed: %s", key[0], key[1], error)
            self._on_dead(*key)
        if link.inflight < WINDOW or link.dead:
            waiters, link.waiters = link.waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def load(self, key: tuple[str, int]) -> int:
        link = self._links[key]
        return link.load + link.inflight * 16 + len(link.buf)

    async def drain(self) -> None:
        self.flush()
        if self._acks:
            await asyncio.gather(*self._acks, return_exceptions=True)


Send = Callable[[list[Any]], Any]  # a batch -> an awaitable of the receiver's queue length


class Wiring:
    """Where every replica and the gateway listen, and how to send them batches.

    ``transport="tcp"`` (default): direct connections (:mod:`alto.runtime.wire`);
    ``"ray"``: Ray actor calls (slower; for clusters whose nodes cannot open ports to
    each other).
    """

    def __init__(self, handles: dict[str, list[Any]], addrs: dict[str, list[Any]], gateway: Any, gateway_addr: Any):
        self.handles = handles
        self.addrs = addrs
        self.gateway = gateway
        self.gateway_addr = gateway_addr

    async def senders(self, pool: Pool | None, downstream: list[str]) -> tuple[dict[str, list[Send]], Send]:
        """Send functions for every replica of the ``downstream`` stages and the sink."""
        if pool is None:
            sends = {d: [h.receive.remote for h in self.handles[d]] for d in downstream}
            return sends, self.gateway.deliver.remote
        conns = await asyncio.gather(*(pool.connect(a) for d in downstream for a in self.addrs[d]))
        it = iter(conns)
        sends = {d: [next(it).send for _ in self.addrs[d]] for d in downstream}
        return sends, (await pool.connect(self.gateway_addr)).send


def _build_emit(
    name: str,
    sender: _Sender,
    pipeline: Pipeline,
    sends: dict[str, list[Send]],
    sink: Send,
) -> Callable[[Message], Any]:
    """The emit function of stage ``name``: route to downstream replicas and sinks."""
    targets: list[Callable[[Message], Any]] = []
    for dest, port in pipeline.downstream()[name]:
        reps = sends[dest]
        spec = pipeline.stages[dest]
        for i, send in enumerate(reps):
            sender.link((dest, i), send)
        wrap = port == 1
        if len(reps) == 1:
            key0 = (dest, 0)
            targets.append((lambda k, w: lambda m: sender.put(k, Right(m) if w else m, m.path[0]))(key0, wrap))
            continue
        choose = replica_chooser(spec, len(reps), lambda j, dest=dest: sender.load((dest, j)))

        def route(msg: Message, dest: str = dest, choose: Any = choose, wrap: bool = wrap) -> Any:
            return sender.put((dest, choose(msg)), Right(msg) if wrap else msg, msg.path[0])

        targets.append(route)
    if name in pipeline.outputs:
        sink_key = ("__sink__", pipeline.outputs.index(name))
        sender.link(sink_key, sink)
        targets.append(lambda m: sender.put(sink_key, (name, m)))
    return fan_out(targets)


def _downstream(pipeline: Pipeline, name: str) -> list[str]:
    return list(dict.fromkeys(dest for dest, _ in pipeline.downstream()[name]))


class ReplicaActor:
    """One replica of one stage, as an async Ray actor (see :func:`_actor_class`)."""

    def __init__(self, payload: bytes, stage: str, index: int, streaming: bool, options: dict[str, Any]) -> None:
        import cloudpickle

        self.pipeline: Pipeline = cloudpickle.loads(payload)
        self.spec = self.pipeline.stages[stage]
        self.index = index
        self.streaming = streaming
        # every request ends up here (finished ones too: replays may still bring their items)
        self.cancelled = Ended()
        self.sent: dict[tuple[str, int], set[int]] = {}
        self.sync_budget_s = options.get("sync_budget_s", 0.002)
        self.inbox_capacity = options.get("inbox_capacity", 256)
        self.batch_size = options.get("batch_size", 64)
        threads = self.spec.concurrency + 1
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"alto-{stage}")
        self.op: Operator | None = None
        self.gateway: Any = None
        self._task: asyncio.Task[None] | None = None
        self.token: bytes | None = options.get("token") if options.get("transport", "tcp") == "tcp" else None
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
        if getattr(self, "sender", None) is None:
            self.sender = _Sender(self._report_dead, self.sent)
        sends, sink = await wiring.senders(self.pool, _downstream(self.pipeline, self.spec.name))
        emit = _build_emit(self.spec.name, self.sender, self.pipeline, sends, sink)
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
        for sent in self.sent.values():
            sent.difference_update(rids)
        if self.op is not None:
            for rid in rids:
                if interrupt:
                    self.op.cancel_request(rid)
                else:
                    self.op.purge(rid)

    def sent_to(self, keys: list[tuple[str, int]]) -> set[int]:
        """Open requests this replica sent items of to any of the replicas ``keys``."""
        return set().union(*(self.sent.get(tuple(k), ()) for k in keys))  # type: ignore[arg-type]

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    async def ping(self) -> bool:
        return True

    def handled(self) -> int:
        return self.op.handled if self.op else 0

    def debug_state(self) -> dict[str, Any]:
        """Inbox, work in progress and the state of every outgoing link."""
        links = getattr(self, "sender", None)
        return {
            "inbox": len(self.inbox),
            "busy": self.op.busy if self.op else None,
            "handled": self.op.handled if self.op else None,
            "groups": getattr(self.op, "open_groups", None),
            "ended": {"below": self.cancelled.low, "listed": len(self.cancelled.above)},
            "links": {f"{k[0]}[{k[1]}]": (v.inflight, v.dead, len(v.buf)) for k, v in links._links.items()}
            if links
            else {},
        }


def _options_for(spec: StageSpec) -> dict[str, Any]:
    res = dict(spec.resources)
    opts: dict[str, Any] = {"num_cpus": res.pop("num_cpus", 0), "max_concurrency": 1000}
    if "num_gpus" in res:
        opts["num_gpus"] = res.pop("num_gpus")
    if "memory" in res:
        opts["memory"] = res.pop("memory")
    if res:
        opts["resources"] = res
    return opts


class Gateway:
    """Admission, output sinks and replica supervision for one RayRuntime."""

    def __init__(self, payload: bytes, streaming: bool, options: dict[str, Any]) -> None:
        import cloudpickle

        self.payload = payload
        self.pipeline: Pipeline = cloudpickle.loads(payload)
        self.streaming = streaming
        self.options = options
        self.timeout_s = options.get("timeout_s", 300.0)
        self.start_timeout_s = options.get("start_timeout_s", 60.0)
        self.max_restarts = options.get("max_restarts", 5)
        self.handles: dict[str, list[Any]] = {}
        self.nodes: dict[str, list[str]] = {}
        self.restarts: dict[tuple[str, int], int] = {}
        self.inputs: dict[int, Any] = {}
        self.finished: list[int] = []
        self.replays = 0
        self.replayed_requests = 0
        self.sent: dict[tuple[str, int], set[int]] = {}
        self._streams: dict[int, Any] = {}
        self._topology_lock = asyncio.Lock()
        self.suspect_nodes: set[str] = set()
        self.failed_starts: dict[tuple[str, int], int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.health_interval_s = options.get("health_interval_s", 0.5)
        self.restart_timeout_s = options.get("restart_timeout_s", 15.0)
        self.health_timeout_s = options.get("health_timeout_s", 10.0)
        self.addrs: dict[str, list[Any]] = {}
        self.token: bytes | None = options.get("token") if options.get("transport", "tcp") == "tcp" else None
        self.pool = Pool(self.token) if self.token else None
        self.gateway_addr: Any = None

    async def start(self) -> dict[str, list[str]]:
        import ray

        self.requests = Requests(self.pipeline)
        self.admission = asyncio.Semaphore(self.options.get("max_requests", 128))
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

        options = _options_for(spec)
        if avoid:
            # Prefer nodes other than those where replicas just died (the GCS may not know
            # yet that a node is gone); a soft rule, so a one-node cluster still works.
            from ray.util.scheduling_strategies import NodeLabelSchedulingStrategy, NotIn

            options["scheduling_strategy"] = NodeLabelSchedulingStrategy(
                hard={}, soft={"ray.io/node-id": NotIn(*avoid)}
            )
        actor = ray.remote(ReplicaActor).options(**options)
        return actor.remote(self.payload, spec.name, index, self.streaming, self.options)

    async def _await_all(self, refs: list[Any], what: str, stage: str | None) -> list[Any]:
        try:
            return await asyncio.wait_for(asyncio.gather(*refs), self.start_timeout_s)
        except TimeoutError:
            res = dict(self.pipeline.stages[stage].resources) if stage else {}
            raise TimeoutError(
                f"{what} did not finish within {self.start_timeout_s:.0f}s"
                + (f": no live node may offer the resources {res} this stage asks for" if res else "")
                + " (check `ray status`; pass start_timeout_s= to wait longer)"
            ) from None

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wiring(self) -> Wiring:
        return Wiring(self.handles, self.addrs, self.me, self.gateway_addr)

    async def _rewire_self(self) -> None:
        if getattr(self, "sender", None) is None:
            self.sender = _Sender(lambda stage, i: self._spawn_task(self._replace_current(stage, i)), self.sent)
        name = "input"  # the pipeline's single input stage
        sends, sink = await self._wiring().senders(self.pool, _downstream(self.pipeline, name))
        self.inject = _build_emit(name, self.sender, self.pipeline, sends, sink)

    # -- requests ------------------------------------------------------------------------

    async def _admit(self, value: Any, events: bool) -> Any:
        req = self.requests.open(events=events)
        self.inputs[req.rid] = value
        req.future.add_done_callback(lambda _f, rid=req.rid: self._finish(rid))
        wait = self.inject(Item((req.rid,), value))
        if wait is not None:
            await wait
        return req

    def _finish(self, rid: int) -> None:
        self.inputs.pop(rid, None)
        self.finished.append(rid)
        for sent in self.sent.values():
            sent.discard(rid)

    async def submit(self, value: Any) -> tuple[bool, Any]:
        """``(True, result)`` or ``(False, exception)``: errors travel as values so the
        caller re-raises the original StageError (with its cause), not a Ray wrapper."""
        async with self.admission:
            req = await self._admit(value, events=False)
            try:
                return True, await asyncio.wait_for(asyncio.shield(req.future), self.timeout_s)
            except (StageError, RuntimeError) as exc:
                return False, exc
            except TimeoutError:
                error = TimeoutError(
                    f"request {req.rid} did not complete within {self.timeout_s:.0f}s (pass timeout_s= to wait longer)"
                )
                self.requests.fail(req.rid, error)
                self._broadcast([req.rid], interrupt=True)
                return False, error

    async def open_stream(self, value: Any) -> int:
        await self.admission.acquire()
        req = await self._admit(value, events=True)
        req.future.add_done_callback(lambda _f: self.admission.release())
        self._streams[req.rid] = req
        return req.rid

    async def next_events(self, rid: int) -> tuple[list[Any], bool]:
        """Events of a streamed request so far (waiting for at least one)."""
        req = self._streams[rid]
        try:
            first = await asyncio.wait_for(req.events.get(), self.timeout_s)
        except TimeoutError:
            self.cancel(rid)
            raise TimeoutError(f"no output for request {rid} within {self.timeout_s:.0f}s") from None
        out = [first]
        while not req.events.empty():
            out.append(req.events.get_nowait())
        from .base import _END

        done = any(e is _END or isinstance(e, BaseException) for e in out)
        out = [e for e in out if e is not _END]
        if done:
            self._streams.pop(rid, None)
        return out, done

    def cancel(self, rid: int) -> None:
        """The caller left: drop the request and stop its work on every replica."""
        if rid in self.inputs:
            self.requests.forget(rid)
            self._broadcast([rid], interrupt=True)
        self._streams.pop(rid, None)

    async def deliver(self, batch: list[tuple[str, Message]]) -> int:
        """Output messages, as ``(output stage, message)`` pairs (the Ray-call transport)."""
        return await self._deliver(batch)

    async def _deliver(self, batch: list[tuple[str, Message]]) -> int:
        for output, msg in batch:
            self.requests.deliver(output, msg)
        return 0

    async def fail(self, error: StageError) -> None:
        if self.requests.fail(error.path[0], error):
            self._broadcast([error.path[0]], interrupt=True)

    def _broadcast(self, rids: list[int], interrupt: bool) -> None:
        for hs in self.handles.values():
            for h in hs:
                h.cancel.remote(rids, interrupt)

    async def _forget_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self.finished:
                rids, self.finished = self.finished, []
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
        return set().union(*answers, *(self.sent.get(k, ()) for k in keys))

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
            "replays": self.replays,
            "replayed_requests": self.replayed_requests,
            "restarts": {f"{s}[{i}]": n for (s, i), n in self.restarts.items()},
            "gateway_links": {
                f"{k[0]}[{k[1]}]": (v.inflight, v.dead, len(v.buf)) for k, v in self.sender._links.items()
            },
            "replicas": replicas,
        }

    def placement(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.nodes.items()}

    def replica(self, stage: str, index: int) -> Any:
        return self.handles[stage][index]

    def stats(self) -> dict[str, Any]:
        return {
            "replays": self.replays,
            "replayed_requests": self.replayed_requests,
            "restarts": {f"{s}[{i}]": n for (s, i), n in self.restarts.items()},
        }

    async def close(self) -> None:
        import ray

        self._janitor.cancel()
        self._health.cancel()
        self.requests.close("the runtime was closed before this request finished")
        if self.pool is not None:
            await self.pool.close()
            await self.endpoint.close()
        for hs in self.handles.values():
            for h in hs:
                ray.kill(h)


class RayRuntime(Runtime):
    """Run a pipeline on Ray: ``async with RayRuntime(p, address="auto") as rt:``.

    Args:
        pipeline: the pipeline (validated before anything starts).
        address: a cluster to join (``"auto"``, ``"ray://..."``); ``None`` starts or
            reuses a local Ray instance.
        streaming: ``False`` runs the paper's baseline.
        timeout_s: longest wait for one request (error message on expiry).
        start_timeout_s: longest wait for replicas to be placed and started.
        max_restarts: replacements per replica before its requests fail.
        transport: ``"tcp"`` (default): items travel on direct connections between
            replicas (each replica listens on its node's IP; nodes must reach each
            other's ports, as Ray's own workers do); ``"ray"``: as Ray actor calls
            (about 10x slower per hop; for networks that allow only Ray's ports).
        inbox_capacity, batch_size, max_requests, sync_budget_s: as for LocalRuntime.
    """

    def __init__(
        self, pipeline: Pipeline, *, address: str | None = None, streaming: bool = True, **options: Any
    ) -> None:
        pipeline.validate()
        transport = options.setdefault("transport", "tcp")
        if transport not in ("tcp", "ray"):
            raise ValueError(f"transport={transport!r}: use 'tcp' (direct connections, default) or 'ray' (actor calls)")
        # Only replicas of this runtime know the token, so only they can feed each other.
        options.setdefault("token", secrets.token_bytes(16))
        self.pipeline = pipeline
        self.address = address
        self.streaming = streaming
        self.options = options
        self.gateway: Any = None
        self.placement: dict[str, list[str]] = {}

    async def __aenter__(self) -> RayRuntime:
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
        self.gateway = gateway_cls.remote(payload, self.streaming, self.options)
        try:
            self.placement = await self.gateway.start.remote()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        import ray

        if self.gateway is not None:
            try:
                await asyncio.wait_for(self.gateway.close.remote(), 30)
            except Exception:
                pass
            ray.kill(self.gateway)
            self.gateway = None

    async def submit(self, value: Any) -> Any:
        if not self.pipeline.final_outputs():
            self.pipeline.validate(require_final=True)
        ok, result = await self.gateway.submit.remote(value)
        if not ok:
            raise result
        return result

    async def stream(self, value: Any) -> AsyncIterator[Event]:
        rid = await self.gateway.open_stream.remote(value)
        done = False
        try:
            while not done:
                events, done = await self.gateway.next_events.remote(rid)
                for ev in events:
                    if isinstance(ev, BaseException):
                        raise ev
                    yield ev
        finally:
            if not done:
                self.gateway.cancel.remote(rid)

    async def replica(self, stage: str, index: int = 0) -> Any:
        """The actor handle of one replica (for inspection and fault drills)."""
        return await self.gateway.replica.remote(stage, index)

    async def stats(self) -> dict[str, Any]:
        return await self.gateway.stats.remote()

    async def debug_state(self) -> dict[str, Any]:
        """Open requests and every replica's inbox and links (for diagnosing a stall)."""
        return await self.gateway.debug_state.remote()
