"""What a sender knows about LLM work: item metadata and output-length prediction.

An LLM stage's items differ wildly in cost: a verdict is 5 tokens, an answer 500. A
router that counts requests overloads the replicas that drew long generations. The
pieces here let each sender estimate *tokens* instead, with no shared state:

* :class:`LLMCall` marks a stage function as an LLM call (the stage helpers
  ``generate`` / ``generate_split`` attach it) and says how to see an item's prompt
  and its *kind* (by default the stage; ``kind=`` gives a finer key);
* :func:`item_meta` gives an item's prompt tokens, kind and prefix hash;
* :class:`OutputEstimator` predicts output tokens per kind online (an exponentially
  weighted mean and a high quantile), seeded by a hint, refined by the output tokens
  that replicas report for finished items.

>>> est = OutputEstimator(hint=100)
>>> est.predict("answer")
100.0
>>> for n in [300] * 50:
...     est.observe("answer", n)
>>> round(est.predict("answer")), est.predict("short") == 100.0
(300, True)
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ItemMeta", "LLMCall", "OutputEstimator", "item_meta", "llm_call_of"]


@dataclass(frozen=True, slots=True)
class LLMCall:
    """Marks a stage function as an LLM call and says how to read its items."""

    prompt: Callable[[Any], str]  # item value -> prompt text (for length and prefix)
    kind: Callable[[Any], str] | None = None  # item value -> prompt kind (default: the stage)
    output_hint: float | None = None  # expected output tokens before any are observed
    max_tokens: int | None = None


def llm_call_of(fn: Any) -> LLMCall | None:
    """The :class:`LLMCall` a stage function carries, if it is an LLM stage."""
    call = getattr(fn, "__alto_llm__", None)
    return call if isinstance(call, LLMCall) else None


@dataclass(frozen=True, slots=True)
class ItemMeta:
    """What a router sees of one item of an LLM stage."""

    prompt_tokens: int
    kind: str
    prefix: int  # hash of the prompt's first characters (items sharing it share a KV prefix)
    prompt: str = ""  # the prompt text (for the length of the prefix it shares with others)


def item_meta(
    call: LLMCall, stage: str, value: Any, *, prefix_chars: int = 64, chars_per_token: float = 4.0
) -> ItemMeta:
    """The metadata of one item (never raises: an unreadable prompt counts as empty)."""
    try:
        text = call.prompt(value)
    except Exception:  # a template that does not fit this value: route it as an empty prompt
        text = ""
    try:
        kind = f"{stage}:{call.kind(value)}" if call.kind is not None else stage
    except Exception:  # the user's kind= function failed on this value: use the stage
        kind = stage
    prefix = zlib.crc32(text[:prefix_chars].encode("utf-8", "replace"))
    return ItemMeta(max(1, round(len(text) / chars_per_token)), kind, prefix, text)


class OutputEstimator:
    """Online output length per prompt kind: a weighted mean and a high quantile.

    ``alpha`` weighs each new observation in the mean; the quantile (``q``, default
    0.9) follows by stochastic approximation, in steps proportional to the mean.
    """

    def __init__(self, hint: float | None = None, *, alpha: float = 0.1, q: float = 0.9) -> None:
        self.hint = float(hint) if hint is not None else 128.0
        self.alpha = alpha
        self.q = q
        self._mean: dict[str, float] = {}
        self._high: dict[str, float] = {}
        self.observed: dict[str, int] = {}

    def predict(self, kind: str) -> float:
        """Expected output tokens of an item of ``kind``."""
        return self._mean.get(kind, self.hint)

    def high(self, kind: str) -> float:
        """The ``q`` quantile of output tokens of ``kind`` (a pessimistic estimate)."""
        return self._high.get(kind, 2.0 * self.predict(kind))

    def observe(self, kind: str, tokens: float) -> None:
        n = self.observed.get(kind, 0)
        mean = self._mean.get(kind)
        # the first observations count fully, so a poor hint is forgotten quickly
        a = max(self.alpha, 1.0 / (n + 1))
        mean = tokens if mean is None else (1 - a) * mean + a * tokens
        self._mean[kind] = mean
        high = self._high.get(kind, tokens)
        step = 0.2 * mean
        self._high[kind] = max(0.0, high + step * (self.q - (tokens <= high)))
        self.observed[kind] = n + 1
