"""Sending: how a replica's output reaches one replica of every downstream stage.

The engine decides *which* replica (the routers of :mod:`alto.routing`, the same in
every runtime); a runtime supplies only *how* a message gets there, as a
:class:`Transport`: in-process inboxes locally, batched TCP links on Ray.
:func:`build_emit` joins the two into the emit function of one sender.

>>> calls = []
>>> emit = fan_out([calls.append, lambda m: calls.append(m * 10)])
>>> emit(1) is None, calls
(True, [1, 10])
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NamedTuple, Protocol

from alto.dataflow import Message, Pipeline
from alto.engine.operators import Right
from alto.routing import Report, Route, Router, replica_chooser

__all__ = ["Emit", "Send", "Transport", "Wired", "build_emit", "fan_out", "router_state"]

#: sends one message on; ``None``, or an awaitable the sender must wait on (backpressure)
Send = Callable[[Any], "Awaitable[Any] | None"]
Emit = Callable[[Message], "Awaitable[Any] | None"]


class Transport(Protocol):
    """What a runtime gives the engine's senders: the way to each replica, and what it knows of them.

    ``send_to(stage, i)`` is called once per link when a sender is wired; the function it
    returns is called for every message. The engine never looks behind it.
    """

    def send_to(self, stage: str, replica: int) -> Send:
        """A function sending one message to replica ``replica`` of ``stage``."""
        ...

    def load(self, stage: str, replica: int) -> float:
        """This sender's view of that replica's outstanding work (for the routers)."""
        ...

    def sink(self, output: str) -> Send | None:
        """Where the output stage ``output``'s messages go (the requests' results)."""
        ...

    def watch(self, stage: str, report: Report) -> None:
        """Deliver the replicas of ``stage``'s reports of finished items to ``report``
        (``report(replica, path, output_tokens)``), for routers that learn from them."""
        ...


class Wired(NamedTuple):
    """A sender's emit function, and the routers it consults (for stats and tests)."""

    emit: Emit
    routers: list[Router]


def fan_out(targets: list[Send]) -> Send:
    """One emit function sending each message to every target; it returns ``None`` or
    an awaitable for the targets that asked the sender to wait (backpressure)."""
    if len(targets) == 1:
        return targets[0]

    def emit(msg: Any) -> Any:
        waits = [w for w in (t(msg) for t in targets) if w is not None]
        if not waits:
            return None
        return waits[0] if len(waits) == 1 else asyncio.gather(*waits)

    return emit


def router_state(routers: list[Router]) -> list[dict[str, Any]]:
    """What the routers of one sender believe (prompt-aware ones: items outstanding,
    finished items learnt from, spills), for stats and debugging."""
    return [{"router": type(r).__name__, "stage": r.stage, **r.state()} for r in routers]


def _right(send: Send) -> Send:
    """``send``, for a zip's second input: each message arrives wrapped in :class:`Right`."""
    return lambda msg: send(Right(msg))


def _routed(sends: list[Send], route: Route, port: int) -> Send:
    """Send each message to the replica ``route`` picks (wrapped for a zip's port 1)."""
    if port == 0:
        return lambda msg: sends[route(msg)](msg)
    return lambda msg: sends[route(msg)](Right(msg))


def build_emit(pipeline: Pipeline, name: str, transport: Transport) -> Wired:
    """The emit function of stage ``name``: route each message to one replica of every
    downstream stage (:func:`~alto.routing.replica_chooser`, the same in every runtime)
    and to the transport's sink if ``name`` is an output."""
    targets: list[Send] = []
    routers: list[Router] = []
    for dest, port in pipeline.downstream()[name]:
        spec = pipeline.stages[dest]
        sends = [transport.send_to(dest, i) for i in range(spec.replicas)]
        if len(sends) == 1:
            targets.append(sends[0] if port == 0 else _right(sends[0]))
            continue
        route = replica_chooser(spec, len(sends), partial(transport.load, dest), partial(transport.watch, dest))
        routers.append(route.router)
        targets.append(_routed(sends, route, port))
    sink = transport.sink(name) if name in pipeline.outputs else None
    if sink is not None:
        targets.append(sink)
    return Wired(fan_out(targets), routers)
