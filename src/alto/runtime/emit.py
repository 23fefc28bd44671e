"""Emit functions: how a sender routes each message to one replica of every downstream
stage, the same in every runtime (the runtime supplies only the transport).

>>> calls = []
>>> emit = fan_out([calls.append, lambda m: calls.append(m * 10)])
>>> emit(1) is None, calls
(True, [1, 10])
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..ancestry import Message
from ..operators import Right
from ..pipeline import Pipeline
from ..routing import replica_chooser

__all__ = ["Emit", "build_emit", "fan_out", "router_state"]

Emit = Callable[[Message], "asyncio.Future[Any] | None"]


def fan_out(targets: list[Callable[[Message], Any]]) -> Callable[[Message], Any]:
    """One emit function sending each message to every target; it returns ``None`` or
    an awaitable for the targets that asked the sender to wait (backpressure)."""
    if len(targets) == 1:
        return targets[0]

    def emit(msg: Message) -> Any:
        waits = [w for w in (t(msg) for t in targets) if w is not None]
        if not waits:
            return None
        return waits[0] if len(waits) == 1 else asyncio.gather(*waits)

    return emit


def router_state(emit: Any) -> list[dict[str, Any]]:
    """What the routers of one sender believe (prompt-aware ones: items outstanding,
    finished items learnt from, spills), for stats and debugging."""
    out = []
    for r in getattr(emit, "routers", ()):
        state: dict[str, Any] = {"router": type(r).__name__, "stage": getattr(r, "stage", "")}
        if hasattr(r, "estimator"):
            state["outstanding"] = sum(len(m) for m in r._mine.values())
            state["learnt"] = sum(r.estimator.observed.values())
            state["spilled"] = r.spilled
        out.append(state)
    return out


def build_emit(
    pipeline: Pipeline,
    name: str,
    target: Callable[[str, int], Callable[[Any], Any]],
    load: Callable[[str, int], float],
    sink: Callable[[Message], Any] | None,
    watch: Callable[[str, Any], None] | None = None,
) -> Emit:
    """The emit function of stage ``name``: route each message to one replica of every
    downstream stage (the same :func:`~alto.routing.replica_chooser` in every runtime)
    and to ``sink`` if ``name`` is an output.

    The runtime supplies the transport: ``target(stage, i)`` sends one message to
    replica ``i`` of ``stage`` (returning ``None`` or a future to wait on), and
    ``load(stage, i)`` is this sender's view of that replica's outstanding work, and
    ``watch(stage, callback)`` (optional) delivers the replicas' reports of finished
    items to routers that learn from them (``callback(i, path, output_tokens)``).
    """
    targets: list[Callable[[Message], Any]] = []
    routers: list[Any] = []
    for dest, port in pipeline.downstream()[name]:
        spec = pipeline.stages[dest]
        sends = [target(dest, i) for i in range(spec.replicas)]
        if len(sends) == 1:
            one = sends[0]
            targets.append(one if port == 0 else (lambda m, one=one: one(Right(m))))
            continue
        on_finished = None if watch is None else (lambda cb, dest=dest: watch(dest, cb))
        choose = replica_chooser(spec, len(sends), lambda j, dest=dest: load(dest, j), on_finished)
        routers.append(choose.router)  # type: ignore[attr-defined]
        if port == 0:
            targets.append(lambda m, sends=sends, choose=choose: sends[choose(m)](m))
        else:
            targets.append(lambda m, sends=sends, choose=choose: sends[choose(m)](Right(m)))
    if sink is not None and name in pipeline.outputs:
        targets.append(sink)
    emit = fan_out(targets)
    if routers:  # a lambda or closure: keep this sender's routers visible (stats, tests)
        emit.routers = routers  # type: ignore[attr-defined]
    return emit
