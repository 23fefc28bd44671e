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
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

from .ancestry import Item
from .scheduling import LLMCall, OutputEstimator, item_meta, llm_call_of

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
        return _rendezvous(stable_hash(key), n)


class PromptAware(Router):
    """Prompt-aware routing for LLM stages: least estimated outstanding *tokens*, with
    prefix affinity.

    Each sender keeps its own estimate per replica -- the tokens of the items it sent
    there that are not reported finished (predicted output tokens of the item's kind,
    plus its prompt tokens times ``prefill_weight``, less the shared prefix where the
    replica is believed to hold it) -- plus, for items of other senders, the replica's reported queue
    length at the mean item cost. Replicas report each finished item with its real
    output tokens (:meth:`completed`, carried on acknowledgements), which removes it
    from the estimate and teaches the :class:`~alto.scheduling.OutputEstimator`. No
    shared state between senders, no central scheduler.

    **Prefix affinity** (the approach of SGLang's cache-aware router, Zheng et al.,
    "SGLang: Efficient Execution of Structured Language Model Programs", 2024): items
    whose prompts share a prefix (the first ``prefix_chars`` characters) go to the less
    loaded of the prefix's ``affinity`` *home* replicas -- chosen by rendezvous hashing,
    so every sender agrees with no coordination -- where the KV cache likely holds the
    prefix. An item leaves home only when another replica would finish it sooner by
    more than ``spill`` mean item costs *plus* the prefill it would cost there; each
    sender remembers the last ``prefix_memory`` prefixes it sent to each replica, so
    spilled items of one prefix gather where that prefix already is. How long the
    shared prefix is (what a cache hit saves) is learnt by comparing each prompt with
    the last one of the same prefix: a long system prompt holds items at home, a short
    shared instruction barely does.

    ``prefill_weight`` (0.25) prices a prompt token in output tokens of engine time: a
    7B model on one A100 prefills ~5,000 tokens/s (0.2 ms a token) and spends ~0.8 ms
    of engine time per output token of a sequence at a batch of 32 (vLLM, Kwon et al.
    2023).

    >>> r = PromptAware(prompt=str, spill=2)
    >>> homes = r.homes("same system prompt, question 1", 4)   # same for every sender
    >>> picks = [r.choose((k,), f"same system prompt, question {k}", 4, lambda i: 0) for k in range(4)]
    >>> sorted(set(picks)) == sorted(homes)   # affinity: the prefix is shared
    True
    >>> r.spilled
    0
    """

    def __init__(
        self,
        *,
        prompt: Callable[[Any], str] | None = None,
        kind: Callable[[Any], str] | None = None,
        output_hint: float | None = None,
        stage: str = "llm",
        prefix_chars: int = 16,
        chars_per_token: float = 4.0,
        prefill_weight: float = 0.25,
        spill: float = 0.5,
        prefix_memory: int = 8,
        affinity: int = 2,
    ) -> None:
        self.call = LLMCall(prompt or str, kind, output_hint)
        self.stage = stage
        self.prefix_chars = prefix_chars
        self.chars_per_token = chars_per_token
        self.prefill_weight = prefill_weight
        self.spill = spill
        self.prefix_memory = prefix_memory
        self.affinity = affinity
        self.estimator = OutputEstimator(output_hint)
        self._mine: dict[int, dict[tuple[int, ...], tuple[float, str]]] = {}  # replica -> key -> (cost, kind)
        self._mine_cost: dict[int, float] = {}
        # replica -> the prefixes this sender sent there lately: what its KV cache likely holds
        self._sent_prefixes: dict[int, OrderedDict[int, None]] = {}
        # prefix hash -> (the last prompt with it, characters it shared with the one before)
        self._shared: OrderedDict[int, tuple[str, int]] = OrderedDict()
        self._mean_cost = self.estimator.hint
        self.spilled = 0  # items sent away from their preferred replica (for stats and tests)
        self.max_tracked = 4096  # per replica: bounded memory when finished items go unreported

    def cost(self, meta: Any, cached_tokens: float = 0.0) -> float:
        """Estimated work of an item, in output tokens: its predicted output plus the
        prefill of the prompt tokens the replica's cache does not hold, at ``prefill_weight``."""
        prefill = max(0.0, meta.prompt_tokens - cached_tokens) * self.prefill_weight
        return prefill + self.estimator.predict(meta.kind)

    def shared_tokens(self, meta: Any) -> float:
        """How many prompt tokens items with this prefix share (what a cache hit saves),
        learnt by comparing each prompt with the last one that had the same prefix."""
        last = self._shared.get(meta.prefix)
        text = meta.prompt
        if last is None:
            shared = min(len(text), self.prefix_chars)
        else:
            shared = _common_prefix_len(last[0], text)
            self._shared.move_to_end(meta.prefix)
        self._shared[meta.prefix] = (text, shared)
        if len(self._shared) > 1024:
            self._shared.popitem(last=False)
        return shared / self.chars_per_token

    def outstanding(self, i: int, reported: float) -> float:
        """Estimated tokens at replica ``i``: this sender's unfinished items, plus the
        other items the replica reports queued, at the mean cost."""
        mine = self._mine.get(i)
        n_mine = len(mine) if mine else 0
        return self._mine_cost.get(i, 0.0) + max(reported - n_mine, 0.0) * self._mean_cost

    def homes(self, value: Any, n: int) -> list[int]:
        """The replicas (of ``n``) that items sharing ``value``'s prompt prefix prefer."""
        meta = item_meta(self.call, self.stage, value, prefix_chars=self.prefix_chars)
        return _rendezvous_top(meta.prefix, n, self.affinity)

    def _holds(self, i: int, prefix: int) -> bool:
        sent = self._sent_prefixes.get(i)
        return sent is not None and prefix in sent

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        meta = item_meta(
            self.call, self.stage, value, prefix_chars=self.prefix_chars, chars_per_token=self.chars_per_token
        )
        est = [self.outstanding(i, load(i)) for i in range(n)]
        # the prefix's home replicas, the same for every sender (no coordination)
        homes = _rendezvous_top(meta.prefix, n, self.affinity)
        preferred = min(homes, key=est.__getitem__)
        # leaving home costs the shared prefix's prefill where it is not cached, and the margin
        shared = self.shared_tokens(meta)
        prefill = shared * self.prefill_weight
        margin = self.spill * self._mean_cost

        def finish(i: int) -> float:
            if i in homes:
                return est[i]
            return est[i] + margin + (0.0 if self._holds(i, meta.prefix) else prefill)

        pick = min(range(n), key=lambda i: (finish(i), i != preferred))
        if pick != preferred:
            self.spilled += 1
        cost = self.cost(meta, shared if self._holds(pick, meta.prefix) else 0.0)
        sent = self._sent_prefixes.setdefault(pick, OrderedDict())
        sent[meta.prefix] = None
        sent.move_to_end(meta.prefix)
        if len(sent) > self.prefix_memory:
            sent.popitem(last=False)
        mine = self._mine.setdefault(pick, {})
        mine[key] = (cost, meta.kind)
        self._mine_cost[pick] = self._mine_cost.get(pick, 0.0) + cost
        if len(mine) > self.max_tracked:  # reports lost (a replaced replica, an ended request)
            old_cost, _ = mine.pop(next(iter(mine)))
            self._mine_cost[pick] = max(0.0, self._mine_cost[pick] - old_cost)
        self._mean_cost = 0.95 * self._mean_cost + 0.05 * cost
        return pick

    def choose_control(self, key: tuple[int, ...], n: int, load: LoadFn) -> int:
        """A control message (not work): the replica least loaded now; nothing recorded."""
        return min(range(n), key=lambda i: self.outstanding(i, load(i)))

    def completed(self, replica: int, key: tuple[int, ...], output_tokens: int | None) -> None:
        """Replica ``replica`` finished the item routed with ``key`` (any sender's: an
        item this sender did not send is ignored), having generated ``output_tokens``."""
        mine = self._mine.get(replica)
        entry = mine.pop(key, None) if mine else None
        if entry is None:
            return
        cost, kind = entry
        self._mine_cost[replica] = max(0.0, self._mine_cost.get(replica, 0.0) - cost)
        if output_tokens is not None:
            self.estimator.observe(kind, output_tokens)


def _common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix (binary search on slices: C-speed compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _rendezvous_top(h: int, n: int, k: int) -> list[int]:
    """The ``k`` replicas (of ``n``) of highest rendezvous weight for hash ``h``."""
    if k <= 1:
        return [_rendezvous(h, n)]
    return sorted(range(n), key=lambda i: _mix(h ^ _mix(i + 1)), reverse=True)[:k]


def _rendezvous(h: int, n: int) -> int:
    best, best_score = 0, -1
    for i in range(n):
        score = _mix(h ^ _mix(i + 1))
        if score > best_score:
            best, best_score = i, score
    return best


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


def make_router(spec: Any, *, keyed: bool, llm: Any = None, stage: str = "llm") -> Router:
    """A router instance for one sender from a stage's ``router=`` option.

    ``None`` picks the default: :class:`Rendezvous` for keyed (aggregate / zip /
    stateful) stages, :class:`PromptAware` for LLM stages (``llm``: the stage's
    :class:`~alto.scheduling.LLMCall`), :class:`PowerOfTwo` otherwise.
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


Watch = Callable[[Callable[[int, tuple[int, ...], "int | None"], None]], None]


def replica_chooser(spec: Any, n: int, load: LoadFn, watch: Watch | None = None) -> Callable[[Any], int]:
    """The replica index (of ``n``) that one sender picks for each message to stage ``spec``.

    A fresh router per sender; keyed stages route on the group part of the path
    (``spec.route_key``), so every sender agrees on a group's replica. Messages are
    anything with ``path`` (and ``value`` for items). ``watch(callback)``, given by the
    runtime, delivers the replicas' reports of finished items to a router that wants
    them (``callback(replica, path, output_tokens)``).
    """
    router = make_router(spec.router, keyed=spec.keyed, llm=llm_call_of(spec.fn), stage=spec.name)
    if watch is not None and hasattr(router, "completed"):
        watch(router.completed)
    choose = router.choose
    # control messages (Open, Done, Tombstone) are not work: routers that account for
    # work route them apart, so they never enter the accounts
    control = getattr(router, "choose_control", None)
    route_key = spec.route_key if spec.keyed else None

    def pick(msg: Any) -> int:
        key = route_key(msg.path) if route_key is not None else msg.path
        if msg.__class__ is Item:
            return choose(key, msg.value, n, load)
        if control is not None:
            return control(key, n, load)
        return choose(key, None, n, load)

    pick.router = router  # type: ignore[attr-defined]  # for stats and tests
    return pick
