"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, Ollama) via ``openai``.

>>> from alto.llm import OpenAICompatible
>>> llm = OpenAICompatible(base_url="http://127.0.0.1:8000/v1", model="my-model")
>>> llm.base_url
'http://127.0.0.1:8000/v1'

The base URL, model and key come from the arguments or from the environment
(``ALTO_OPENAI_BASE_URL`` / ``OPENAI_BASE_URL``, ``ALTO_OPENAI_MODEL``,
``ALTO_OPENAI_API_KEY`` / ``OPENAI_API_KEY``; local servers accept any key). The
``openai`` client retries connection errors, 408, 409, 429 and 5xx responses with
exponential backoff (``max_retries``); each request has a ``timeout``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from alto.llm._base import LLM, LLMError, LLMUnavailable

__all__ = ["OpenAICompatible"]


class OpenAICompatible(LLM):
    """Streaming chat completions from an OpenAI-compatible HTTP server."""

    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        env = os.environ
        self.base_url = base_url or env.get("ALTO_OPENAI_BASE_URL") or env.get("OPENAI_BASE_URL")
        if not self.base_url:
            raise LLMUnavailable(
                "OpenAICompatible needs a server: pass base_url='http://HOST:PORT/v1' or set ALTO_OPENAI_BASE_URL"
            )
        self.model = model or env.get("ALTO_OPENAI_MODEL") or "default"
        self._api_key = api_key or env.get("ALTO_OPENAI_API_KEY") or env.get("OPENAI_API_KEY") or "not-needed"
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_body = extra_body or {}
        self._clients: dict[int, Any] = {}

    def _client(self) -> Any:
        # httpx clients belong to one event loop; alto.run() makes a loop per call.
        import asyncio

        import openai

        key = id(asyncio.get_running_loop())
        client = self._clients.get(key)
        if client is None:
            self._clients.clear()
            client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=self.max_retries
            )
            self._clients[key] = client
        return client

    async def _stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        stop: list[str],
        temperature: float,
        **extra: Any,
    ) -> AsyncIterator[str]:
        import openai

        try:
            response = await self._client().chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop or None,
                stream=True,
                extra_body=self.extra_body or None,
            )
            async with response:
                async for chunk in response:
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta.content
                    if delta:
                        yield delta
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(
                f"cannot reach the OpenAI-compatible server at {self.base_url} ({type(exc).__name__}: {exc}) "
                f"after {self.max_retries} retries. Start the server (for example "
                "`python -m llama_cpp.server --model MODEL.gguf --host 127.0.0.1 --port 8000`) "
                "or set ALTO_OPENAI_BASE_URL to a running one."
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMError(
                f"the server at {self.base_url} answered HTTP {exc.status_code} for model {self.model!r}: {exc.message}"
            ) from exc
