"""The sending side of a Ray replica (and of the gateway): routing, batching, windows.

Each sender routes every message itself (the same :func:`~alto.engine.build_emit`
and routers as the local runtime) and puts it on the :class:`Link` to the chosen replica; all links
with new messages are flushed once per turn of the event loop, so a busy stage sends
few, large batches and a quiet one sends at once. A window of unacknowledged batches
per link gives backpressure; the acknowledgements carry the receiver's queue length,
which feeds the router. Links are rewired in place when a replica is replaced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from alto.dataflow import Item, Pipeline
from alto.engine._transport import Wired, build_emit
from alto.engine.operators import Right
from alto.routing import Report
from alto.runtime.ray._wire import Pool

log = logging.getLogger("alto.ray")

WINDOW = 8  # unacknowledged batches per link before a sender waits
POLL_S = 0.02  # an idle link with unreported LLM items is asked for its reports this often


class Link:
    """A sender's connection to one receiver: batching, a window of unacked batches."""

    __slots__ = ("buf", "dead", "gen", "inflight", "inflight_msgs", "load", "pending", "send", "sent", "waiters")

    def __init__(self, send: Callable[[list[Any]], Any]) -> None:
        self.send = send
        self.gen = 0  # bumped when rewired to a replacement: late failures of old batches are ignored
        self.buf: list[Any] = []
        self.inflight = 0  # batches sent, not acknowledged
        self.inflight_msgs = 0  # the messages in them
        self.load = 0
        self.pending = 0  # LLM items sent here whose finish is not reported yet
        self.dead = False
        self.waiters: list[asyncio.Future[None]] = []
        self.sent: set[int] = set()  # open requests with items sent here: who to replay if it dies


class Sender:
    """Routes messages to downstream actors and flushes batches once per loop turn.

    One per replica (and one in the gateway) for its whole life: rewiring updates its
    links in place, so what a link records survives a replacement.
    """

    def __init__(self, on_dead: Callable[[str, int], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._links: dict[tuple[str, int], Link] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._scheduled = False
        self._on_dead = on_dead
        self._acks: set[asyncio.Task[Any]] = set()
        self._watchers: dict[str, list[Report]] = {}
        self._poller: asyncio.Task[None] | None = None

    def link(self, key: tuple[str, int], send: Callable[[list[Any]], Any]) -> Link:
        """Connect ``key`` to ``send``; an existing link is rewired in place, so emit
        functions built earlier (still held by work in progress) reach the replacement."""
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = Link(send)
        elif link.send != send:
            link.send = send
            link.dead = False
            link.gen += 1
            link.pending = 0  # the old replica's reports are lost with it
        return link

    def put(self, key: tuple[str, int], msg: Any, rid: int | None = None) -> asyncio.Future[None] | None:
        link = self._links[key]
        if rid is not None:
            link.sent.add(rid)  # recorded even if dropped below: the replay must include it
        if link.dead:
            return None  # the replay after the replacement regenerates it
        if msg.__class__ is Item and key[0] in self._watchers:
            link.pending += 1
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
            self._send(key, link, batch)

    def _send(self, key: tuple[str, int], link: Link, batch: list[Any]) -> None:
        link.inflight += 1
        link.inflight_msgs += len(batch)
        try:
            ref = link.send(batch)
        except Exception as exc:
            self._acked(key, link, exc, n=len(batch))
            return
        task = self._loop.create_task(self._await_ack(key, link, link.gen, ref, len(batch)))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _await_ack(self, key: tuple[str, int], link: Link, gen: int, ref: Any, n: int) -> None:
        try:
            load = await ref
        except Exception as exc:
            self._acked(key, link, exc, gen, n)
        else:
            if isinstance(load, tuple):  # an LLM stage: (queue length, [(path, output tokens)])
                load, finished = load
                if gen == link.gen:
                    link.pending = max(0, link.pending - len(finished))
                for report in self._watchers.get(key[0], ()):
                    for path, tokens in finished:
                        report(key[1], path, tokens)
            link.load = load if isinstance(load, int) else 0
            self._acked(key, link, None, gen, n)

    async def _poll(self) -> None:
        """Ask idle links for the reports of finished LLM items: they ride on acks, and a
        sender that stopped sending to a replica (it looked busy) would otherwise never
        learn that it is free again."""
        while True:
            await asyncio.sleep(POLL_S)
            for key, link in self._links.items():
                if link.pending > 0 and not link.inflight and not link.buf and not link.dead:
                    self._send(key, link, [])

    def _acked(
        self, key: tuple[str, int], link: Link, error: BaseException | None, gen: int | None = None, n: int = 0
    ) -> None:
        link.inflight -= 1
        link.inflight_msgs -= n
        if error is not None and not link.dead and gen in (None, link.gen):
            link.dead = True
            log.warning("link to %s[%d] failed: %s", key[0], key[1], error)
            self._on_dead(*key)
        if link.inflight < WINDOW or link.dead:
            waiters, link.waiters = link.waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def sent_to(self, keys: list[tuple[str, int]]) -> set[int]:
        """Open requests this sender sent items of to any of the replicas ``keys``."""
        return set().union(*(self._links[k].sent for k in map(tuple, keys) if k in self._links))

    def forget(self, rids: list[int]) -> None:
        """Requests that ended: nothing of theirs needs replaying any more."""
        for link in self._links.values():
            link.sent.difference_update(rids)

    def describe(self) -> dict[str, tuple[int, bool, int]]:
        """Per link: (batches in flight, dead, messages buffered) -- for debug_state."""
        return {f"{k[0]}[{k[1]}]": (v.inflight, v.dead, len(v.buf)) for k, v in self._links.items()}

    def watch(self, stage: str, report: Report) -> None:
        """Deliver the finished items that replicas of ``stage`` report on their acks."""
        self._watchers.setdefault(stage, []).append(report)
        if self._poller is None:
            self._poller = self._loop.create_task(self._poll(), name="alto:report-poll")

    def load(self, key: tuple[str, int]) -> int:
        """Messages at or on their way to ``key``: its queue at the last ack, plus what
        is in flight and buffered since."""
        link = self._links[key]
        return link.load + link.inflight_msgs + len(link.buf)

    async def drain(self) -> None:
        self.flush()
        if self._acks:
            await asyncio.gather(*self._acks, return_exceptions=True)

    def close(self) -> None:
        """Stop polling for reports (the owner is shutting down)."""
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None


Send = Callable[[list[Any]], Any]  # a batch -> an awaitable of the receiver's queue length


class Wiring:
    """Where every replica and the gateway listen, and how to send them batches.

    ``transport="tcp"`` (default): direct connections (:mod:`alto.runtime.ray._wire`);
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


class _Links:
    """The Ray :class:`~alto.engine._transport.Transport` of one sender: each message
    goes on the :class:`Link` to the chosen replica (batched per loop turn)."""

    def __init__(self, name: str, sender: Sender, pipeline: Pipeline, sends: dict[str, list[Send]], sink: Send) -> None:
        self.name = name
        self.sender = sender
        self.sends = sends
        self.sink_key = ("__sink__", pipeline.outputs.index(name)) if name in pipeline.outputs else None
        if self.sink_key is not None:
            sender.link(self.sink_key, sink)

    def send_to(self, stage: str, replica: int) -> Callable[[Any], Any]:
        key = (stage, replica)
        sender = self.sender
        sender.link(key, self.sends[stage][replica])
        return lambda m: sender.put(key, m, (m.msg if m.__class__ is Right else m).path[0])

    def load(self, stage: str, replica: int) -> float:
        return self.sender.load((stage, replica))

    def sink(self, output: str) -> Callable[[Any], Any] | None:
        key, sender = self.sink_key, self.sender
        if key is None:
            return None
        return lambda m: sender.put(key, (output, m))

    def watch(self, stage: str, report: Report) -> None:
        self.sender.watch(stage, report)


def wire_emit(name: str, sender: Sender, pipeline: Pipeline, sends: dict[str, list[Send]], sink: Send) -> Wired:
    """The emit function of stage ``name`` on Ray: the shared
    :func:`~alto.engine.build_emit` over this sender's links."""
    sender._watchers.clear()  # (re)wiring builds new routers: the old ones stop listening
    return build_emit(pipeline, name, _Links(name, sender, pipeline, sends, sink))


def downstream_stages(pipeline: Pipeline, name: str) -> list[str]:
    return list(dict.fromkeys(dest for dest, _ in pipeline.downstream()[name]))
