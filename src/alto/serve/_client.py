"""Clients of ``alto serve`` (httpx): ``run(x)`` for the result, ``stream(x)`` for the
partial outputs as they happen, like ``rt.stream`` of a runtime.

    import alto
    with alto.Client("http://127.0.0.1:8000", token="...") as c:   # alto.serve.Client too
        print(c.run("How does e-mail work?"))
        for ev in c.stream("How does e-mail work?"):
            print(ev.stage, ev.path, ev.value)       # the last event is the result (ev.final)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from alto.errors import AltoError

__all__ = ["AsyncClient", "Client", "Event", "ServerError"]


@dataclass(frozen=True, slots=True)
class Event:
    """One partial output (``stage``, ``path``, ``value``), or the result (``final``)."""

    stage: str
    path: tuple[int, ...]
    value: Any
    final: bool = False


class ServerError(AltoError):
    """The server refused or failed the run: ``status``, ``message``, and ``stage`` /
    ``path`` when a stage failed on the input."""

    def __init__(self, status: int, message: str, stage: str | None = None, path: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.stage = status, message, stage
        self.path = tuple(path) if path is not None else None


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            err = response.json().get("error", {})
        except ValueError:
            err = {"message": response.text}
        raise ServerError(response.status_code, err.get("message", ""), err.get("stage"), err.get("path"))


def _event(kind: str, data: dict[str, Any]) -> Event:
    if kind == "partial":
        return Event(data["stage"], tuple(data["path"]), data["value"])
    if kind == "result":
        return Event("result", (), data["output"], final=True)
    raise ServerError(200, data.get("message", "the run failed"), data.get("stage"), data.get("path"))


class _SSE:
    """Server-Sent Events, line by line: ``feed`` returns an event when one is complete."""

    def __init__(self) -> None:
        self.kind, self.data = "message", ""

    def feed(self, line: str) -> Event | None:
        if line.startswith("event:"):
            self.kind = line[6:].strip()
        elif line.startswith("data:"):
            self.data += line[5:].strip()
        elif not line and self.data:
            ev = _event(self.kind, json.loads(self.data))
            self.kind, self.data = "message", ""
            return ev
        return None


class Client:
    """A blocking client (``with Client(url) as c: c.run(x)``)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 120.0) -> None:
        self._http = httpx.Client(base_url=base_url, headers=_headers(token), timeout=timeout)

    def run(self, value: Any) -> Any:
        r = self._http.post("/v1/runs", json={"input": value})
        _raise_for(r)
        return r.json()["output"]

    def stream(self, value: Any) -> Iterator[Event]:
        with self._http.stream("POST", "/v1/runs", json={"input": value, "stream": True}) as r:
            if r.status_code >= 400:
                r.read()
                _raise_for(r)
            sse = _SSE()
            for line in r.iter_lines():
                ev = sse.feed(line)
                if ev is not None:
                    yield ev

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient:
    """The same for asyncio (``async with AsyncClient(url) as c: await c.run(x)``)."""

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = 120.0, transport: Any = None
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(token), timeout=timeout, transport=transport)

    async def run(self, value: Any) -> Any:
        r = await self._http.post("/v1/runs", json={"input": value})
        _raise_for(r)
        return r.json()["output"]

    async def stream(self, value: Any) -> AsyncIterator[Event]:
        async with self._http.stream("POST", "/v1/runs", json={"input": value, "stream": True}) as r:
            if r.status_code >= 400:
                await r.aread()
                _raise_for(r)
            sse = _SSE()
            async for line in r.aiter_lines():
                ev = sse.feed(line)
                if ev is not None:
                    yield ev

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
