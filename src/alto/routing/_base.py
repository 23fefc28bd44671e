"""The :class:`Router` base: what every routing policy implements, with its hooks declared.

A sender (an emitting replica, or the runtime's input) owns one router per downstream
stage with several replicas and asks it, for every message, which replica gets it:

- :meth:`Router.choose` for an item (its routing key, value, the number of replicas,
  and ``load(i)``: the sender's view of replica ``i``'s outstanding work);
- :meth:`Router.choose_control` for a control message (``Open``/``Done``/tombstone):
  not work, so a policy that accounts for work need not count it;
- :meth:`Router.completed` when a replica reports an item finished, for policies that
  declare ``reports = True`` (only those get the reports).

Routers know nothing of runtimes. Also here: the hashing every keyed policy shares.

>>> stable_hash((1, 2)) == stable_hash((1, 2)) != stable_hash((2, 1))
True
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["LoadFn", "Router", "rendezvous", "rendezvous_top", "stable_hash"]

LoadFn = Callable[[int], float]  # replica index -> outstanding work, as this sender sees it
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

    >>> from alto.routing import PowerOfTwo
    >>> PowerOfTwo(seed=1).fork()._args
    {'seed': 1}
    """

    #: equal keys always map to the same replica (aggregation-aware routing needs this)
    keyed: ClassVar[bool] = False
    #: the policy learns from finished items: the sender delivers replicas' reports to
    #: :meth:`completed` (by default: whether the policy overrides it)
    reports: ClassVar[bool] = False
    #: the stage this router sends to (set when a sender makes it; for stats)
    stage: str = ""
    _args: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "reports" not in cls.__dict__:
            cls.reports = cls.completed is not Router.completed

    def __new__(cls, *args: Any, **kwargs: Any) -> Router:
        self = super().__new__(cls)
        # Record the constructor's arguments by name, so fork() can repeat them.
        bound = inspect.signature(cls.__init__).bind_partial(None, *args, **kwargs)
        bound.arguments.pop(next(iter(inspect.signature(cls.__init__).parameters)), None)
        self._args = dict(bound.arguments)
        return self

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        """The replica (of ``n``) for an item with routing ``key`` and ``value``."""
        raise NotImplementedError

    def choose_control(self, key: tuple[int, ...], n: int, load: LoadFn) -> int:
        """The replica for a control message (not work); by default routed as an item."""
        return self.choose(key, None, n, load)

    def completed(self, replica: int, key: tuple[int, ...], output_tokens: int | None) -> None:
        """Replica ``replica`` finished the item routed with ``key`` (``reports = True`` only)."""

    def state(self) -> dict[str, Any]:
        """What this router believes, as plain data (stats, ``/metrics``); empty by default."""
        return {}

    def fork(self) -> Router:
        """A fresh instance, constructed with the same arguments, for another sender."""
        return type(self)(**self._args)


def rendezvous(h: int, n: int) -> int:
    """The replica (of ``n``) of highest rendezvous weight for hash ``h``."""
    best, best_score = 0, -1
    for i in range(n):
        score = _mix(h ^ _mix(i + 1))
        if score > best_score:
            best, best_score = i, score
    return best


def rendezvous_top(h: int, n: int, k: int) -> list[int]:
    """The ``k`` replicas (of ``n``) of highest rendezvous weight for hash ``h``."""
    if k <= 1:
        return [rendezvous(h, n)]
    return sorted(range(n), key=lambda i: _mix(h ^ _mix(i + 1)), reverse=True)[:k]
