"""The ``router=`` option: policies by name, the default per stage, one router per sender.

>>> from alto.dataflow import Pipeline
>>> p = Pipeline("r")
>>> _ = p.output(p.input().map(abs, replicas=3))
>>> choose = replica_chooser(p.stages["abs"], 3, lambda i: 0.0)
>>> type(choose.router).__name__
'PowerOfTwo'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alto.dataflow import Item
from alto.dataflow._functions import router_keyed
from alto.routing._base import LoadFn, Router
from alto.routing._cost import llm_call_of
from alto.routing._power_of_two import PowerOfTwo
from alto.routing._prompt_aware import PromptAware
from alto.routing._rendezvous import Rendezvous
from alto.routing._round_robin import RoundRobin

__all__ = ["ROUTER_NAMES", "Report", "Route", "make_router", "replica_chooser", "router_is_keyed"]

# The names dataflow accepts for router= (ROUTER_POLICIES, checked when a pipeline is
# built) are exactly these; a test pins that the two agree.
_BY_NAME: dict[str, type[Router]] = {
    "round_robin": RoundRobin,
    "p2c": PowerOfTwo,
    "rendezvous": Rendezvous,
    "prompt_aware": PromptAware,
}
ROUTER_NAMES = tuple(_BY_NAME)


def router_is_keyed(spec: Any) -> bool:
    """Whether the ``router=`` option ``spec`` maps equal keys to one replica (the check
    the pipeline makes when it is built, :func:`~alto.dataflow._functions.router_keyed`).

    Raises ``ValueError`` (with the valid choices) for anything that is not a router.
    """
    keyed = router_keyed(spec)
    if keyed is None:
        raise ValueError(f"router= must be one of {ROUTER_NAMES} or a Router, got {spec!r}")
    return keyed


def make_router(spec: Any, *, keyed: bool, llm: Any = None, stage: str = "llm") -> Router:
    """A router instance for one sender from a stage's ``router=`` option.

    ``None`` picks the default: :class:`Rendezvous` for keyed (aggregate / zip /
    stateful) stages, :class:`PromptAware` for LLM stages (``llm``: the stage's
    :class:`~alto.routing.LLMCall`), :class:`PowerOfTwo` otherwise.
    """
    if spec is None and keyed:
        return Rendezvous()
    if spec in (None, "prompt_aware") and llm is not None:
        return PromptAware(prompt=llm.prompt, kind=llm.kind, output_hint=llm.output_hint, stage=stage)
    if spec is None:
        return PowerOfTwo()
    if isinstance(spec, str):
        return _BY_NAME[spec]()
    if isinstance(spec, Router):
        return spec.fork()
    return spec()


Report = Callable[[int, tuple[int, ...], "int | None"], None]  # (replica, path, output tokens)
Watch = Callable[[Report], None]


class Route:
    """One sender's routing of messages to the replicas of one stage: ``route(msg)`` is
    the replica index. Keyed stages route on the group part of the path
    (``spec.route_key``), so every sender agrees on a group's replica."""

    __slots__ = ("_choose", "_control", "_key", "load", "n", "router")

    def __init__(
        self, router: Router, n: int, load: LoadFn, route_key: Callable[[tuple[int, ...]], Any] | None
    ) -> None:
        self.router = router  # for stats and tests
        self.n = n
        self.load = load
        self._key = route_key
        self._choose = router.choose
        self._control = router.choose_control

    def __call__(self, msg: Any) -> int:
        key = self._key(msg.path) if self._key is not None else msg.path
        if msg.__class__ is Item:
            return self._choose(key, msg.value, self.n, self.load)
        # control messages (Open, Done, Tombstone) are not work: routers that account for
        # work route them apart, so they never enter the accounts
        return self._control(key, self.n, self.load)


def replica_chooser(spec: Any, n: int, load: LoadFn, watch: Watch | None = None) -> Route:
    """How one sender picks the replica (of ``n``) of stage ``spec`` for each message.

    A fresh router per sender. Messages are anything with ``path`` (and ``value`` for
    items). ``watch(callback)``, given by the runtime, delivers the replicas' reports of
    finished items to a router that declares ``reports``
    (``callback(replica, path, output_tokens)``).
    """
    router = make_router(spec.router, keyed=spec.keyed, llm=llm_call_of(spec.fn), stage=spec.name)
    router.stage = spec.name
    if watch is not None and router.reports:
        watch(router.completed)
    return Route(router, n, load, spec.route_key if spec.keyed else None)
