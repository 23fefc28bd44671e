"""The transform operators: ``map``, ``filter`` (a map with a predicate) and ``expand``.

They pass control messages through unchanged (``forward``); ``expand`` emits
``Open``, each child the moment it is generated, then ``Done(count)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, nullcontext
from typing import Any

from alto.dataflow import Done, Item, Message, Open, Tombstone
from alto.engine._invoke import SKIPPED, AsyncResult, Handoff, attempts, iterate_in_thread, run_sync_batch
from alto.engine.operators._base import Operator
from alto.errors import StageError

__all__ = ["ExpandOperator", "FilterOperator", "MapOperator"]

log = logging.getLogger("alto")


class MapOperator(Operator):
    """``map``: one output per input. ``filter`` reuses it with a predicate."""

    async def setup(self) -> None:
        await super().setup()
        # Blocking functions one at a time: one thread hop per batch (returning early
        # after sync_budget_s, so results of slow calls still stream downstream).
        if self.mode == "sync" and self.spec.max_in_flight == 1:
            self.handle_batch = self._handle_batch
        if self.mode == "async" and not self.spec.retries and type(self) is MapOperator:
            self.call = self.fn  # the hot path: the executor awaits the function itself

    def _result(self, msg: Item, value: Any) -> Message:
        return Item(msg.path, value)

    async def handle(self, msg: Item) -> None:
        self.busy += 1
        try:
            value = await self._apply(msg.path, msg.value)
        except Exception as exc:
            await self.failed(msg.path, exc)
            return
        finally:
            self.busy -= 1
            self.handled += 1
        wait = self.emit(self._result(msg, value))
        if wait is not None:
            await wait

    async def _handle_batch(self, msgs: list[Any]) -> None:
        items: list[Item] = []
        for msg in msgs:
            if msg.__class__ is Item:
                items.append(msg)
            else:
                await self._send(msg)
        ctx = self.ctx
        ended = ctx.cancelled
        plain_map = type(self) is MapOperator
        while items:
            live = [m for m in items if m.path[0] not in ended]
            if not live:
                return
            self.busy = len(live)
            try:
                outcomes = await self._loop.run_in_executor(
                    ctx.executor,
                    run_sync_batch,
                    self.fn,
                    self.name,
                    live,
                    ended,
                    self.spec.retries,
                    ctx.sync_budget_s,
                )
            finally:
                self.busy = 0
            self.handled += len(outcomes)
            for msg, (ok, value) in zip(live, outcomes, strict=False):  # outcomes may stop early
                if value is SKIPPED or msg.path[0] in ended:
                    continue
                if ok:
                    wait = self.emit(Item(msg.path, value) if plain_map else self._result(msg, value))
                    if wait is not None:
                        await wait
                else:
                    await self.failed(msg.path, value)
            items = live[len(outcomes) :]


class FilterOperator(MapOperator):
    """``filter``: keep an item if the predicate is truthy, else send a tombstone."""

    def _result(self, msg: Item, value: Any) -> Message:
        return msg if value else Tombstone(msg.path)


class ExpandOperator(Operator):
    """``expand``: emits ``Open``, each child as it is generated, then ``Done(count)``.

    With ``streaming=False`` (the paper's baseline) the children of an item are buffered
    until the generator ends, then passed on together.
    """

    async def handle(self, msg: Item) -> None:
        path, value = msg.path, msg.value
        rid = path[0]
        streaming = self.ctx.streaming
        cancelled = self.ctx.cancelled
        held: list[Message] = []
        emitted = 0
        self.busy += 1
        try:
            if streaming:
                await self._send(Open(path, value))
            try:
                for attempt in attempts(self.spec.retries):
                    with attempt:  # a retry skips the children already sent: they are identified by index
                        if self.mode == "asyncgen" and not emitted:
                            source = self.fn(value)  # the common case: no layer between
                        else:
                            source = self._children(value, path, skip=emitted)
                        async with aclosing(source) as children:
                            async for child in children:
                                if rid in cancelled:
                                    return
                                out = Item(path + (emitted,), child)
                                emitted += 1
                                if streaming:
                                    wait = self.emit(out)
                                    if wait is not None:
                                        await wait
                                else:
                                    held.append(out)
                        break
            except Exception as exc:
                if self.spec.on_error != "drop":
                    self.ctx.fail(StageError(self.name, path, exc))
                    return
                log.warning("stage %r: expand of %s ended early after %d children: %r", self.name, path, emitted, exc)
        finally:
            self.busy -= 1
            self.handled += 1
        if rid in cancelled:
            return
        if not streaming:
            await self._send(Open(path, value))
            for child_msg in held:
                await self._send(child_msg)
        await self._send(Done(path, emitted, value))

    async def _children(self, value: Any, path: tuple[int, ...], skip: int) -> AsyncIterator[Any]:
        if self.mode == "asyncgen":
            source: Any = self.fn(value)
        elif self.mode == "async":
            source = await self.fn(value)
        else:
            async for child in self._children_from_thread(value, path, skip):
                yield child
            return
        async for child in _iterate(source, skip):
            yield child

    async def _children_from_thread(self, value: Any, path: tuple[int, ...], skip: int) -> AsyncIterator[Any]:
        handoff = Handoff(self._loop)
        future = self._loop.run_in_executor(
            self.ctx.executor, iterate_in_thread, self.fn, value, handoff, skip, self.name, path
        )
        try:
            while True:
                items = await handoff.drain()
                if not items:
                    break
                for child in items:
                    if child.__class__ is AsyncResult:
                        async for c in _iterate(child.iterable, skip):
                            yield c
                    else:
                        yield child
            if handoff.error is not None:
                raise handoff.error
        finally:
            handoff.cancel()  # stop the producer at its next item if we leave early
            if handoff.finished:
                await future
            else:  # interrupted: the thread ends at its next item; the pool's owner joins it
                future.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a generator thread ended with %r after its request was cancelled", future.exception())


async def _iterate(source: Any, skip: int) -> AsyncIterator[Any]:
    n = 0
    if hasattr(source, "__aiter__"):
        async with aclosing(source) if hasattr(source, "aclose") else nullcontext(source) as it:
            async for child in it:
                if n >= skip:
                    yield child
                n += 1
    else:
        for child in source:
            if n >= skip:
                yield child
            n += 1
