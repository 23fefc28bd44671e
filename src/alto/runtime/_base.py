"""The runtime contract: one lifecycle (start, use, close), requests, and introspection.

A runtime is opened once and closed once, like an ``httpx.AsyncClient``: ``async
with`` or explicit ``await rt.start()`` / ``await rt.aclose()`` for a long-lived
service. Every runtime implements the same contract, declared here:

- ``_open()`` / ``_close()``: placement (start every replica) and its undoing;
- ``submit(x)``, ``stream(x)``: one request; :meth:`Runtime.map` runs many;
- ``await stats()``, ``await stage_stats()``: the same shape on every runtime.
"""

from __future__ import annotations

import asyncio
import enum
import warnings
from collections.abc import AsyncIterator, Iterable
from typing import Any, Self

from alto.dataflow import Pipeline
from alto.engine import Event

__all__ = ["Runtime", "State"]


class State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class Runtime:
    """Interface of a runtime (see :class:`~alto.runtime.LocalRuntime`).

    >>> import asyncio, alto
    >>> p = alto.Pipeline("inc")
    >>> _ = p.output(p.input().map(lambda x: x + 1))
    >>> async def main():
    ...     rt = alto.LocalRuntime(p)
    ...     await rt.start()
    ...     try:
    ...         return await rt.map(range(3))
    ...     finally:
    ...         await rt.aclose()
    >>> asyncio.run(main())
    [1, 2, 3]
    """

    pipeline: Pipeline
    max_requests: int = 128
    _state: State = State.UNOPENED

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> Self:
        """Place and start every replica; returns once all have started (a stage whose
        setup fails raises here, naming the stage)."""
        if self._state is State.OPEN:
            raise RuntimeError(f"this {type(self).__name__} is already started; start it once")
        if self._state is State.CLOSED:
            raise RuntimeError(f"this {type(self).__name__} was closed; create a new one")
        await self._open()
        self._state = State.OPEN
        return self

    async def aclose(self) -> None:
        """Cancel open requests, stop every replica; idempotent."""
        state, self._state = self._state, State.CLOSED
        if state is State.OPEN:
            await self._close()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if self._state is State.OPEN:
            warnings.warn(
                f"{type(self).__name__} for pipeline {self.pipeline.name!r} was never closed: "
                "use `async with` or `await rt.aclose()`",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )

    def _require_open(self) -> None:
        if self._state is not State.OPEN:
            what = "was closed" if self._state is State.CLOSED else "is not started"
            raise RuntimeError(
                f"this {type(self).__name__} {what}: use `async with {type(self).__name__}(pipeline) as rt:` "
                "or `await rt.start()` first"
            )

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    # -- requests ------------------------------------------------------------------

    async def submit(self, value: Any) -> Any:
        """Run one request; return its depth-0 result (raise StageError if it failed)."""
        raise NotImplementedError

    def stream(self, value: Any) -> AsyncIterator[Event]:
        """Run one request, yielding its output events as they are produced."""
        raise NotImplementedError

    # -- introspection -------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """``{"requests": {"max_requests", "open", "ended_listed"}, "replays",
        "replayed_requests", "restarts", <stage>: <its stage_stats()>...}``."""
        raise NotImplementedError

    async def stage_stats(self) -> dict[str, dict[str, Any]]:
        """Per stage, each replica's counters as lists over replicas: items ``handled``,
        ``failures``, ``inbox_peak``, ``load``, ``lanes``, ``routers`` (what prompt-aware
        routers believe) and ``timing`` (histogram snapshots; ``None`` unless
        ``stage_metrics=True``)."""
        raise NotImplementedError

    async def map(self, inputs: Iterable[Any], *, return_exceptions: bool = False) -> list[Any]:
        """Run every input (at most ``max_requests`` at once); results in input order.

        Inputs are pulled as requests finish, so a million inputs never become a
        million tasks. Without ``return_exceptions`` the first failed request's error
        (in input order) is raised once all have ended.
        """
        self._require_open()
        results: dict[int, Any] = {}
        source = enumerate(inputs)

        async def worker() -> None:
            for i, x in source:  # workers share the iterator: each takes the next input
                try:
                    results[i] = await self.submit(x)
                except Exception as exc:
                    results[i] = exc

        async with asyncio.TaskGroup() as group:
            for _ in range(self.max_requests):
                group.create_task(worker())
        out = [results[i] for i in range(len(results))]
        if not return_exceptions:
            for r in out:
                if isinstance(r, BaseException):
                    raise r
        return out
