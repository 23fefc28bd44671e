"""Routers: each sender picks the downstream replica for every item, locally.

Routers know nothing of runtimes. A runtime asks ``router.choose(key, value, n, load)``
where ``key`` is the item's routing key (its group path for keyed stages), ``n`` the
number of replicas and ``load(i)`` the sender's current view of replica ``i``'s
outstanding work (its own in-flight sends plus load reports piggybacked on replies).

>>> r = Rendezvous()
>>> a = r.choose((5, 1), None, 3, lambda i: 0.0)
>>> all(r.choose((5, 1), None, 3, lambda i: 0.0) == a for _ in range(10))
True
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from typing import Any, ClassVar

from .ancestry import Item

__all__ = [
    "ROUTER_NAMES",
    "PowerOfTwo",
    "PromptAware",
    "Rendezvous",
    "RoundRobin",
    "Router",
    "make_router",
    "replica_chooser",
    "router_is_keyed",
    "stable_hash",
]

LoadFn = Callable[[int], float]
_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def stable_hash(key: tuple[int, ...]) -> int:
    """Hash of an integer path that is identical in every process (unlike ``hash(str)``)."""
    h = 0x84222325CBF29CE4
    for part in key:
        h = _mix(h ^ (part & _MASK))
    return h


class Router:
    """Base class. ``keyed = True`` means equal keys always map to the same replica.

    Every sender gets its own instance (:meth:`fork`): routers keep per-sender state.
    The arguments a router was constructed with are kept, so forks are configured alike:

    >>> PowerOfTwo(seed=1).fork()._args
    {'seed': 1}
    """

    keyed: ClassVar[bool] = False
    _args: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Router:
        self = super().__new__(cls)
        # Record the constructor's arguments by name, so fork() can repeat them.
        bound = inspect.signature(cls.__init__).bind_partial(None, *args, **kwargs)
        bound.arguments.pop(next(iter(inspect.signature(cls.__init__).parameters)), None)
        self._args = dict(bound.arguments)
        return self

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        raise NotImplementedError

    def fork(self) -> Router:
        """A fresh instance, constructed with the same arguments, for another sender."""
        return type(self)(**self._args)


class RoundRobin(Router):
    """Cycle through replicas, ignoring load."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        i = self._next % n
        self._next = i + 1
        return i


class PowerOfTwo(Router):
    """Power of two choices: sample two replicas, send to the one with less outstanding work.

    Near-optimal balance with no global state (Mitzenmacher 2001).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        if n == 2:
            return 0 if load(0) <= load(1) else 1
        a = int(self._rng.random() * n)
        b = int(self._rng.random() * (n - 1))
        if b >= a:
            b += 1
        return a if load(a) <= load(b) else b


class Rendezvous(Router):
    """Highest-random-weight hashing of the key: every sender picks the same replica.

    This is aggregation-aware routing: all children of a group (same parent path) reach
    one replica even when they come from different upstream replicas, with no
    coordination; groups spread evenly over replicas.
    """

    keyed = True

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        h = stable_hash(key)
        best, best_score = 0, -1
        for i in range(n):
            score = _mix(h ^ _mix(i + 1))
            if score > best_score:
                best, best_score = i, score
        return best


class PromptAware(Router):
    """Prompt-aware routing for LLM stages: least estimated outstanding *tokens*.

    The cost of an item is its prompt tokens (``len(text) / chars_per_token``) plus a
    running estimate of output tokens for the stage. The sender keeps, per replica, the
    items it sent and their summed cost; the runtime's ``load(i)`` (items queued or in
    progress there, from load reports) corrects it: when a replica reports fewer items
    than this sender believes it holds, the difference has completed and its share of
    the cost is removed, so the estimate falls as work completes. Items of other senders
    count at the mean cost. :meth:`completed` refines the output-length estimate from
    real output token counts. Prefix affinity:
    an item whose first ``prefix_chars`` characters were routed before goes back to the
    same replica (its KV cache may hold the prefix) unless that replica is more than
    ``slack`` tokens busier than the least loaded one.
    """

    def __init__(self, *, chars_per_token: float = 4.0, prefix_chars: int = 64, slack: float = 512.0) -> None:
        self.chars_per_token = chars_per_token
        self.prefix_chars = prefix_chars
        self.slack = slack
        self.output_estimate = 128.0
        self._mean_cost = self.output_estimate
        self._items: dict[int, int] = {}  # this sender's items believed outstanding, per replica
        self._cost: dict[int, float] = {}  # their estimated tokens
        self._prefix: dict[str, int] = {}

    def cost(self, value: Any) -> float:
        text = value if isinstance(value, str) else str(value)
        return len(text) / self.chars_per_token + self.output_estimate

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        mean = self._mean_cost
        loads = [self._estimate(i, load(i), mean) for i in range(n)]
        best = min(range(n), key=loads.__getitem__)
        text = value if isinstance(value, str) else str(value)
        prefix = text[: self.prefix_chars]
        pick = self._prefix.get(prefix)
        if pick is None or pick >= n or loads[pick] - loads[best] > self.slack:
            pick = best
        self._prefix[prefix] = pick
        if len(self._prefix) > 4096:  # bounded memory: forget the oldest prefixes
            for old in list(self._prefix)[:1024]:
                del self._prefix[old]
        cost = self.cost(value)
        self._items[pick] = self._items.get(pick, 0) + 1
        self._cost[pick] = self._cost.get(pick, 0.0) + cost
        self._mean_cost = 0.9 * mean + 0.1 * cost
        return pick

    def _estimate(self, i: int, reported: float, mean: float) -> float:
        """Outstanding tokens at replica ``i``: ours (less what completed) plus others' at the mean cost."""
        mine = self._items.get(i, 0)
        if reported < mine:  # the replica holds fewer items than we sent: some completed
            kept = max(int(reported), 0)
            self._cost[i] = self._cost.get(i, 0.0) * (kept / mine) if mine else 0.0
            self._items[i] = mine = kept
        return self._cost.get(i, 0.0) + (reported - mine) * mean

    def completed(self, replica: int, value: Any, output_tokens: int | None = None) -> None:
        """A finished item: ``output_tokens`` refines the estimate of output length."""
        if output_tokens is not None:
            self.output_estimate = 0.9 * self.output_estimate + 0.1 * output_tokens


_BY_NAME: dict[str, type[Router]] = {
    "round_robin": RoundRobin,
    "p2c": PowerOfTwo,
    "rendezvous": Rendezvous,
    "prompt_aware": PromptAware,
}
ROUTER_NAMES = tuple(_BY_NAME)


def router_is_keyed(spec: Any) -> bool:
    """Whether the ``router=`` option ``spec`` maps equal keys to one replica.

    Raises ``ValueError`` (with the valid choices) for anything that is not a router.
    """
    if isinstance(spec, str):
        if spec not in _BY_NAME:
            raise ValueError(f"router= must be one of {ROUTER_NAMES} or a Router, got {spec!r}")
        return _BY_NAME[spec].keyed
    if isinstance(spec, Router) or (inspect.isclass(spec) and issubclass(spec, Router)):
        return bool(spec.keyed)
    raise ValueError(f"router= must be one of {ROUTER_NAMES} or a Router, got {spec!r}")


def make_router(spec: Any, *, keyed: bool) -> Router:
    """A router instance for one sender from a stage's ``router=`` option.

    ``None`` picks the default: :class:`Rendezvous` for keyed (aggregate / zip /
    stateful) stages, :class:`PowerOfTwo` otherwise.
    """
    if spec is None:
        return Rendezvous() if keyed else PowerOfTwo()
    if isinstance(spec, str):
        return _BY_NAME[spec]()
    if isinstance(spec, Router):
        return spec.fork()
    return spec()


def replica_chooser(spec: Any, n: int, load: LoadFn) -> Callable[[Any], int]:
    """The replica index (of ``n``) that one sender picks for each message to stage ``spec``.

    A fresh router per sender; keyed stages route on the group part of the path
    (``spec.route_key``), so every sender agrees on a group's replica. Messages are
    anything with ``path`` (and ``value`` for items).
    """
    router = make_router(spec.router, keyed=spec.keyed)
    choose = router.choose
    route_key = spec.route_key if spec.keyed else None

    def pick(msg: Any) -> int:
        key = route_key(msg.path) if route_key is not None else msg.path
        return choose(key, msg.value if msg.__class__ is Item else None, n, load)

    return pick
