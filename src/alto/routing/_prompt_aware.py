"""Prompt-aware routing for LLM stages: estimated outstanding tokens, with prefix affinity.

The cost model it prices items with (prompt tokens, predicted output per kind) is
:mod:`alto.routing._cost`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

from alto.routing._base import LoadFn, Router, rendezvous_top
from alto.routing._cost import LLMCall, OutputEstimator, item_meta

__all__ = ["PromptAware"]


class PromptAware(Router):
    """Prompt-aware routing for LLM stages: least estimated outstanding *tokens*, with
    prefix affinity.

    Each sender keeps its own estimate per replica -- the tokens of the items it sent
    there that are not reported finished (predicted output tokens of the item's kind,
    plus its prompt tokens times ``prefill_weight``, less the shared prefix where the
    replica is believed to hold it) -- plus, for items of other senders, the replica's reported queue
    length at the mean item cost. Replicas report each finished item with its real
    output tokens (:meth:`completed`, carried on acknowledgements), which removes it
    from the estimate and teaches the :class:`~alto.routing.OutputEstimator`. No
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

    reports: ClassVar[bool] = True

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
        return rendezvous_top(meta.prefix, n, self.affinity)

    def _holds(self, i: int, prefix: int) -> bool:
        sent = self._sent_prefixes.get(i)
        return sent is not None and prefix in sent

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        meta = item_meta(
            self.call, self.stage, value, prefix_chars=self.prefix_chars, chars_per_token=self.chars_per_token
        )
        est = [self.outstanding(i, load(i)) for i in range(n)]
        # the prefix's home replicas, the same for every sender (no coordination)
        homes = rendezvous_top(meta.prefix, n, self.affinity)
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

    def state(self) -> dict[str, Any]:
        """Items this sender believes outstanding, finished items learnt from, spills."""
        return {
            "outstanding": sum(len(m) for m in self._mine.values()),
            "learnt": sum(self.estimator.observed.values()),
            "spilled": self.spilled,
        }

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
