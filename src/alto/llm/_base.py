"""The LLM interface every backend implements: stream text token by token.

>>> import asyncio
>>> from alto.llm import Simulated
>>> llm = Simulated(time_scale=0.0, seed=1)
>>> text = asyncio.run(llm.complete("Say something", max_tokens=5))
>>> len(text.split()) <= 5
True
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from alto.engine._context import count_tokens
from alto.errors import AltoError

__all__ = ["LLM", "LLMError", "LLMUnavailable", "Prompt", "Usage", "to_messages"]

Prompt = str | Sequence[dict[str, str]]


class LLMError(AltoError, RuntimeError):
    """A backend failed to generate."""


class LLMUnavailable(LLMError):
    """The backend cannot be reached or loaded; the message says how to fix it."""


def to_messages(prompt: Prompt, system: str | None = None) -> list[dict[str, str]]:
    """Chat messages for a prompt: a string becomes one user message."""
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [dict(m) for m in prompt]
    if system and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return messages


@dataclass
class Usage:
    """Counters a backend keeps: generations, tokens (chunks) out, seconds generating."""

    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0
    first_token_s: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "tokens": self.tokens, "seconds": self.seconds, "tokens_per_s": self.tokens_per_s}


class LLM:
    """Base class of the backends. Subclasses implement :meth:`_stream`."""

    name = "llm"

    def __init__(self) -> None:
        self.usage = Usage()

    async def stream(
        self,
        prompt: Prompt,
        *,
        max_tokens: int = 256,
        stop: Sequence[str] | None = None,
        temperature: float = 0.0,
        system: str | None = None,
        priority: int = 0,
    ) -> AsyncIterator[str]:
        """Yield generated text chunk by chunk (one token each, for most backends).

        ``priority``: backends that queue work (llama.cpp) serve lower values first;
        give stages near the end of a pipeline a lower value so results finish sooner.
        """
        messages = to_messages(prompt, system)
        start = time.perf_counter()
        n = 0
        options: dict[str, Any] = {"max_tokens": max_tokens, "stop": list(stop or []), "temperature": temperature}
        if priority:
            options["priority"] = priority
        try:
            async for chunk in self._stream(messages, **options):
                if n == 0:
                    self.usage.first_token_s.append(time.perf_counter() - start)
                    del self.usage.first_token_s[:-1000]
                n += 1
                yield chunk
        finally:
            self.usage.calls += 1
            self.usage.tokens += n
            self.usage.seconds += time.perf_counter() - start
            count_tokens(n)  # the item's own count: replicas report it to prompt-aware routers

    async def complete(self, prompt: Prompt, **options: Any) -> str:
        """The whole generated text."""
        return "".join([chunk async for chunk in self.stream(prompt, **options)])

    def _stream(
        self, messages: list[dict[str, str]], *, max_tokens: int, stop: list[str], temperature: float, **extra: Any
    ) -> AsyncIterator[str]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the backend's resources (threads, connections)."""
