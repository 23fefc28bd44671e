"""SIMULATED LLM: a timing model of a GPU serving engine with continuous batching.

For scheduling tests and cluster-scale benchmarks only. Numbers produced with it are
simulated and must be labelled so.

What it models (per engine instance, one "GPU"):

* **Continuous batching** (Orca/vLLM style): sequences join the running batch at any
  decode step, up to ``max_batch`` sequences and ``kv_tokens`` of KV cache (prompt +
  maximum output tokens reserved per sequence); the rest wait in FIFO order.
* **Prefill**: a step that admits new sequences takes an extra
  ``prefill_s_per_token`` per prompt token admitted.
* **Decode**: every step emits one token to every running sequence and takes
  ``step_s + step_s_per_seq * batch_size`` — per-token latency grows with batch size
  while throughput rises, the shape measured for real engines.
* **Prefix cache** (``prefix_cache=N``, off by default): an engine remembers the last
  ``N`` prompt prefixes (the first ``prefix_chars`` characters) it served; a prompt
  whose prefix it holds skips that part of prefill, as with a KV prefix cache (vLLM's
  automatic prefix caching, SGLang's RadixAttention).
* **Output length** depends on the prompt *kind* (answer, list, short verdict):
  log-normal with a per-kind median, drawn deterministically from ``seed`` and the
  prompt, so the same prompt always yields the same text and length.

Default constants are of the order published for a 7B model on one A100-80GB with
vLLM (Kwon et al., SOSP 2023: ~15-30 ms per decode step at moderate batch sizes,
prefill of several thousand tokens per second); they are illustrative, not a
calibration of any machine. ``time_scale`` stretches or shrinks all times (0 = as fast
as possible, for tests).

Tokens are real words, with sentence ends and list markers, so splitters work on them.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from alto.llm._base import LLM

__all__ = ["Simulated", "default_kind"]

_WORDS = [
    "the",
    "protocol",
    "server",
    "client",
    "mail",
    "message",
    "network",
    "packet",
    "address",
    "host",
    "data",
    "system",
    "memory",
    "program",
    "language",
    "compiler",
    "kernel",
    "process",
    "file",
    "stream",
    "query",
    "index",
    "model",
    "cache",
    "request",
    "response",
    "layer",
    "route",
    "node",
    "graph",
    "token",
    "vector",
    "database",
    "transfer",
    "channel",
]


def default_kind(prompt: str) -> str:
    """Guess the kind of output a prompt asks for: ``list``, ``short`` or ``answer``."""
    p = prompt.lower()
    if re.search(r"\b(verdict|supported|refuted|yes or no|one word|classify)\b", p):
        return "short"
    if re.search(r"\b(list|claims|queries|bullet|enumerate)\b", p):
        return "list"
    return "answer"


@dataclass
class _Seq:
    prompt_tokens: int
    tokens: list[str]
    queue: asyncio.Queue[str | None]
    sent: int = 0
    cancelled: bool = False

    @property
    def reserved(self) -> int:
        return self.prompt_tokens + len(self.tokens)


class Simulated(LLM):
    """A SIMULATED continuous-batching engine (see the module docstring)."""

    name = "simulated"

    def __init__(
        self,
        *,
        prefill_s_per_token: float = 0.0002,
        step_s: float = 0.015,
        step_s_per_seq: float = 0.0002,
        max_batch: int = 64,
        kv_tokens: int = 65536,
        median_tokens: dict[str, float] | None = None,
        sigma: float = 0.5,
        kind_of: Callable[[str], str] = default_kind,
        seed: int = 0,
        time_scale: float = 1.0,
        prefix_cache: int = 0,
        prefix_chars: int = 2048,
    ) -> None:
        super().__init__()
        self.prefix_cache = prefix_cache
        self.prefix_chars = prefix_chars
        self._prefixes: OrderedDict[str, None] = OrderedDict()
        self.prefix_hits = 0
        self.prefill_s_per_token = prefill_s_per_token
        self.step_s = step_s
        self.step_s_per_seq = step_s_per_seq
        self.max_batch = max_batch
        self.kv_tokens = kv_tokens
        self.median_tokens = {"answer": 120.0, "list": 60.0, "short": 6.0, **(median_tokens or {})}
        self.sigma = sigma
        self.kind_of = kind_of
        self.seed = seed
        self.time_scale = time_scale
        self._waiting: deque[_Seq] = deque()
        self._running: list[_Seq] = []
        self._kv_used = 0
        self._engine: asyncio.Task[None] | None = None
        self.steps = 0
        self.max_batch_seen = 0
        # the clock's lag: steps that woke more than one step late (a busy CPU), and the
        # largest lateness seen; benchmarks record them to show the timing held
        self.late_steps = 0
        self.max_lag_s = 0.0

    # -- text --------------------------------------------------------------------------

    def script(self, prompt_text: str, max_tokens: int) -> list[str]:
        """The tokens this engine generates for a prompt (deterministic)."""
        rng = random.Random(f"{self.seed}:{prompt_text}")
        kind = self.kind_of(prompt_text)
        median = self.median_tokens.get(kind, self.median_tokens["answer"])
        n = max(1, min(max_tokens, round(math.exp(rng.gauss(math.log(median), self.sigma)))))
        if kind == "short":
            words = [rng.choice(["SUPPORTED", "REFUTED", "NOT_ENOUGH_INFO"])]
            return (words + ["."])[:n]
        tokens: list[str] = []
        item = 1
        while len(tokens) < n:
            length = rng.randint(5, 12)
            if kind == "list":
                tokens.append(f"{item}. ")
                item += 1
            sentence = [rng.choice(_WORDS) for _ in range(length)]
            sentence[0] = sentence[0].capitalize()
            tokens.extend(w + " " for w in sentence[:-1])
            tokens.append(sentence[-1] + (".\n" if kind == "list" else ". "))
        return tokens[:n]

    # -- engine ------------------------------------------------------------------------

    async def _stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        stop: list[str],
        temperature: float,
        **extra: Any,
    ) -> AsyncIterator[str]:
        text = "\n".join(m["content"] for m in messages)
        prefill = max(1, len(text) // 4)
        if self.prefix_cache:
            prefix = text[: self.prefix_chars]
            if prefix in self._prefixes:
                self._prefixes.move_to_end(prefix)
                self.prefix_hits += 1
                prefill = max(1, prefill - len(prefix) // 4)  # the cached prefix is not recomputed
            else:
                self._prefixes[prefix] = None
                if len(self._prefixes) > self.prefix_cache:
                    self._prefixes.popitem(last=False)
        seq = _Seq(prefill, self.script(text, max_tokens), asyncio.Queue())
        self._waiting.append(seq)
        if self._engine is None or self._engine.done():
            self._engine = asyncio.get_running_loop().create_task(self._run())
        emitted = ""
        try:
            while True:
                tok = await seq.queue.get()
                if tok is None:
                    return
                emitted += tok
                if stop and any(s in emitted for s in stop):
                    return
                yield tok
        finally:
            seq.cancelled = True

    async def _run(self) -> None:
        """The engine loop: admit, sleep one step, emit a token to every running sequence.

        Steps are timed against a running deadline, not slept one after another: the
        event loop wakes a sleeper late by a fraction of a millisecond, and over the
        hundreds of steps of a long generation that lateness would add up to a slower
        engine than the one modelled (at most one step of lag is caught up)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while self._waiting or self._running:
            admitted = 0
            while self._waiting and len(self._running) < self.max_batch:
                seq = self._waiting[0]
                if seq.cancelled:
                    self._waiting.popleft()
                    continue
                if self._running and self._kv_used + seq.reserved > self.kv_tokens:
                    break
                self._waiting.popleft()
                self._running.append(seq)
                self._kv_used += seq.reserved
                admitted += seq.prompt_tokens
            batch = len(self._running)
            self.max_batch_seen = max(self.max_batch_seen, batch)
            dt = (self.step_s + self.step_s_per_seq * batch + self.prefill_s_per_token * admitted) * self.time_scale
            deadline += dt
            now = loop.time()
            if deadline < now - dt:  # behind by more than a step (a busy CPU): do not race to catch up
                self.late_steps += 1
                self.max_lag_s = max(self.max_lag_s, (now - deadline) / (self.time_scale or 1.0))
                deadline = now
            await asyncio.sleep(max(0.0, deadline - now))
            self.steps += 1
            still = []
            for seq in self._running:
                if not seq.cancelled and seq.sent < len(seq.tokens):
                    seq.queue.put_nowait(seq.tokens[seq.sent])
                    seq.sent += 1
                if seq.cancelled or seq.sent >= len(seq.tokens):
                    seq.queue.put_nowait(None)
                    self._kv_used -= seq.reserved
                else:
                    still.append(seq)
            self._running = still

    def holds_prefix(self, text: str) -> bool:
        """Whether this engine's prefix cache holds the prefix of prompt ``text`` now."""
        return text[: self.prefix_chars] in self._prefixes

    @property
    def queued(self) -> int:
        """Sequences waiting for a batch slot."""
        return len(self._waiting)
