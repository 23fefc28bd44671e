"""Fan-in operators: ``zip`` pairs two streams item by item, ``aggregate`` closes a level.

Both consume the control messages (:class:`~alto.dataflow.Open`,
:class:`~alto.dataflow.Done`, tombstones) of what they join, where every other
operator (:mod:`alto.engine.operators`) passes them on: this is where counted completion is
decided. Made by :func:`alto.engine.operators.make_operator`.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from alto.dataflow import Done, Group, Item, Message, Open, StageSpec, Tombstone
from alto.dataflow._functions import is_incremental_aggregator
from alto.engine._context import set_current
from alto.engine.operators._base import Emit, Operator, Right, StageContext

__all__ = ["AggregateOperator", "ZipOperator"]


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class ZipOperator(Operator):
    """``zip``: pairs the item at a path from each input; a tombstone on either side wins."""

    forward = None  # type: ignore[assignment]  # markers are this kind's own business

    def __init__(self, spec: StageSpec, ctx: StageContext, emit: Emit) -> None:
        super().__init__(spec, ctx, emit)
        self._halves: dict[tuple[int, ...], tuple[int, Message]] = {}

    async def handle(self, msg: Any) -> None:
        port = 0
        if msg.__class__ is Right:
            port, msg = 1, msg.msg
        cls = msg.__class__
        if cls is Open or cls is Done:
            if port == 0:  # both inputs carry the same markers: forward one copy
                await self._send(msg)
            return
        path = msg.path
        if path[0] in self.ctx.cancelled:  # (port-1 items arrive wrapped: the executor cannot check them)
            return
        other = self._halves.get(path)
        if other is None or other[0] == port:
            self._halves[path] = (port, msg)
            return
        del self._halves[path]
        left, right = (other[1], msg) if port == 1 else (msg, other[1])
        self.handled += 1
        if left.__class__ is Item and right.__class__ is Item:
            await self._send(Item(path, (left.value, right.value)))
        else:
            await self._send(Tombstone(path))

    def purge(self, rid: int) -> None:
        for path in [p for p in self._halves if p[0] == rid]:
            del self._halves[path]


_DEAD = object()  # state of a group whose aggregation already failed


class AggregateOperator(Operator):
    """``aggregate``: collects each group's children and closes the level.

    A group (one parent path) completes when its ``Done`` marker and ``count`` distinct
    children or tombstones have arrived, in any order. ``fn(parent, children)`` then
    gets the surviving children ordered by index. An incremental aggregator class
    (``start``/``add``/``finish``) gets one instance per group, started as soon as the
    parent is known (``Open`` or ``Done``) and fed each child as it arrives; its methods
    run on the event loop, so keep them quick (or make them ``async``).
    """

    forward = None  # type: ignore[assignment]  # markers are this kind's own business

    def __init__(self, spec: StageSpec, ctx: StageContext, emit: Emit) -> None:
        super().__init__(spec, ctx, emit)
        self.incremental = is_incremental_aggregator(spec.fn)
        self._plen = spec.depth + 1  # length of a parent path
        self._groups: dict[tuple[int, ...], Group] = {}
        # Several lanes may feed one incremental aggregator whose methods wait: keep
        # each group's start/add calls in order.
        self._lock = asyncio.Lock() if self.incremental and spec.max_in_flight != 1 else None

    async def setup(self) -> None:
        if not self.incremental:
            await super().setup()
            self.quick = self._collect

    def _collect(self, msg: Item) -> bool:
        """The common case, one child of a group that stays open: collected at once."""
        path = msg.path
        if len(path) != self._plen + 1:
            return False
        group = self._groups.get(path[: self._plen])
        if group is None or group.state is not None:
            return False
        index = path[-1]
        seen = group.seen
        if index in seen or (group.expected is not None and len(seen) + 1 >= group.expected):
            return False  # a duplicate, or the child that completes the group: handle() does it
        seen.add(index)
        group.values[index] = msg.value
        return True

    async def handle(self, msg: Any) -> None:
        path = msg.path
        cls = msg.__class__
        n = len(path)
        plen = self._plen
        if n < plen or (n == plen and cls is Tombstone):
            await self._send(msg)  # an outer level's marker, or a dropped parent
            return
        if cls is not Item and path[0] in self.ctx.cancelled:
            return  # (items of ended requests never get here: the executor drops them)
        key = path if n == plen else path[:plen]
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group()
        await self._guarded(key, group, msg, cls)
        if group.complete and self._groups.get(key) is group:
            del self._groups[key]
            if group.state is not _DEAD:
                await self._finish(key, group)

    async def _guarded(self, key: tuple[int, ...], group: Group, msg: Any, cls: type) -> None:
        try:
            if self._lock is not None:
                async with self._lock:
                    await self._take(group, msg, cls)
            else:
                await self._take(group, msg, cls)
        except Exception as exc:
            # The group is dead: keep counting its children so it is freed when
            # complete, but report the failure (or the tombstone) now.
            group.state = _DEAD
            group.values.clear()
            await self.failed(key, exc)

    async def _take(self, group: Group, msg: Any, cls: type) -> None:
        if cls is Open or cls is Done:
            first = group.set_parent(msg.value)
            if cls is Done:
                group.expected = msg.count
            if self.incremental and first:
                await self._start(group)
        else:
            await self._add(group, msg)

    async def _start(self, group: Group) -> None:
        if group.state is _DEAD:
            return
        group.state = self.fn()
        await _maybe_await(group.state.start(group.parent))
        for index in sorted(group.values):  # children that arrived before the parent
            await _maybe_await(group.state.add(index, group.values[index]))
        group.values.clear()

    async def _add(self, group: Group, msg: Item | Tombstone) -> None:
        if group.state is None:  # collect (fn form, or before an incremental start)
            group.add_child(msg)
            return
        index = msg.path[-1]
        if index in group.seen:
            return  # a duplicate (replayed) child
        group.seen.add(index)
        if msg.__class__ is Item and group.state is not _DEAD:
            await _maybe_await(group.state.add(index, msg.value))

    async def _finish(self, key: tuple[int, ...], group: Group) -> None:
        self.busy += 1
        try:
            set_current(self.name, key)  # the aggregate's function works on the parent's item
            if self.incremental:
                value = await _maybe_await(group.state.finish())
            else:
                value = await self._apply(key, group.parent, group.children())
        except Exception as exc:
            await self.failed(key, exc)
            return
        finally:
            self.busy -= 1
            self.handled += 1
        await self._send(Item(key, value))

    def purge(self, rid: int) -> None:
        for key in [k for k in self._groups if k[0] == rid]:
            del self._groups[key]

    @property
    def open_groups(self) -> int:
        return len(self._groups)
