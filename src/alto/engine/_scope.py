"""The item scope: one lane's current item, and what cancelling its request interrupts.

A replica runs its items in *lanes* (owned tasks, :mod:`alto.engine._executor`). Each
lane has one :class:`ItemScope`, entered when the lane starts on an item and left when
the item is done -- in exactly one place, :meth:`ReplicaExecutor._lane
<alto.engine._executor.ReplicaExecutor._lane>`, as a ``try``/``finally``. While an item is
in scope, :func:`drive` (the body of the lane's task) records what the item waits on, so
that :meth:`ItemScope.cancel` -- called when the item's request ends early -- throws
``CancelledError`` into that one item: never into the lane, never into another request.
The model is trio's cancel scope, with asyncio's level-triggered re-delivery: once
cancelled, every later wait of the item is cancelled too, until the scope is left.

>>> import asyncio
>>> async def main():
...     scope = ItemScope()
...     async def item():
...         scope.enter(7)
...         try:
...             await asyncio.sleep(10)       # cancelled below: only this wait
...         except asyncio.CancelledError:
...             return "interrupted"
...         finally:
...             scope.leave()
...     task = asyncio.get_running_loop().create_task(drive(item(), scope, lambda: None))
...     await asyncio.sleep(0)
...     scope.cancel()
...     return await task, scope.rid
>>> asyncio.run(main())
('interrupted', None)
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

__all__ = ["IDLE", "SHIELDED", "ItemScope", "drive"]

IDLE = None  #: ``ItemScope.rid`` between items
SHIELDED = -1  #: ``ItemScope.rid`` while a wait that belongs to no single request runs (a batch, a marker)


class ItemScope:
    """The scope of the item one lane is on: its request, what it waits on, whether it
    was cancelled. ``enter(rid)`` and ``leave()`` bracket one item; ``cancel()`` may be
    called at any time from anywhere on the loop, and is idempotent."""

    __slots__ = ("blocked", "cancelled", "rid", "waiter")

    def __init__(self) -> None:
        # the request of the item in scope; IDLE: none; SHIELDED: a wait that no request owns
        self.rid: int | None = IDLE
        self.waiter: Any = None  # the future the item in scope waits on now
        self.cancelled = False  # its request ended: CancelledError at every resume until left
        self.blocked = False  # the item has waited once (another lane was asked to go on)

    def enter(self, rid: int) -> None:
        """Start an item of request ``rid`` (``SHIELDED``: work of several requests)."""
        self.rid = rid

    def leave(self) -> None:
        """The item is done: the scope is idle again."""
        self.rid = IDLE
        self.blocked = self.cancelled = False

    def shield(self) -> None:
        """From here to :meth:`leave`, cancelling the request no longer interrupts the
        item's waits (what is left is not its own work: reporting its failure)."""
        self.rid = SHIELDED

    def cancel(self) -> None:
        """Interrupt the item in scope (idempotent; the lane itself goes on). A no-op when
        idle or shielded: then no request's own work is in scope."""
        if self.rid is IDLE or self.rid is SHIELDED:
            return
        self.cancelled = True
        waiter = self.waiter
        if waiter is not None and hasattr(waiter, "cancel"):
            waiter.cancel()


@types.coroutine
def drive(coro: Coroutine[Any, Any, Any], scope: ItemScope, on_block: Callable[[], None]) -> Generator[Any, Any, Any]:
    """Run a lane's coroutine as its task's body: like ``yield from coro``, except that
    while an item is in scope it records what the item waits on.

    So :meth:`ItemScope.cancel` can cancel that one wait (exactly what ``Task.cancel``
    does to the future a task waits on), ``CancelledError`` is re-delivered at every
    later resume until the item ends, and the first wait of an item asks another lane
    to go on (``on_block``). Only waits pass through here, not items: an item that does
    not wait costs nothing. A cancellation of the task itself (shutdown) passes through
    unchanged; the lane tells the two apart by the task's ``cancelling()`` count.
    """
    sent: Any = None
    error: BaseException | None = None
    while True:
        try:
            yielded = coro.send(sent) if error is None else coro.throw(error)
        except StopIteration as stop:
            return stop.value
        scoped = scope.rid is not IDLE
        if scoped:
            if not scope.blocked and yielded is not None:
                scope.blocked = True
                on_block()  # this item waits: let another lane take the next message
            if scope.cancelled and scope.rid is not SHIELDED and hasattr(yielded, "cancel"):
                yielded.cancel()  # it caught the cancellation and waits again: cancel again
            scope.waiter = yielded
        try:
            sent = yield yielded
            error = None
        except BaseException as exc:  # forwarded into the coroutine, as yield from does
            sent, error = None, exc
        if scoped:
            scope.waiter = None
            rid = scope.rid
            if error is None and scope.cancelled and rid is not IDLE and rid is not SHIELDED:
                error = asyncio.CancelledError()
