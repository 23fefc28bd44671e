"""Inbox: a bounded queue between a sender and one reader, drained in batches.

A replica's inbox, and a streamed request's event buffer, are both an :class:`Inbox`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

__all__ = ["Inbox"]


class Inbox:
    """A bounded FIFO of messages for one replica, drained in batches.

    :meth:`put` never blocks: it accepts the message and, when the inbox is at
    capacity, returns a future the sender must await before sending more. So each
    sender overshoots by at most one message and memory stays bounded.
    """

    __slots__ = ("_getter", "_loop", "_putters", "_q", "capacity", "peak")

    def __init__(self, capacity: int) -> None:
        self._q: deque[Any] = deque()
        self.capacity = capacity
        self._getter: asyncio.Future[None] | None = None
        self._putters: list[asyncio.Future[None]] = []
        self.peak = 0
        self._loop = asyncio.get_running_loop()

    def __len__(self) -> int:
        return len(self._q)

    def put(self, msg: Any) -> asyncio.Future[None] | None:
        q = self._q
        q.append(msg)
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)
        n = len(q)
        if n > self.peak:
            self.peak = n
        if n >= self.capacity:
            fut = self._loop.create_future()
            self._putters.append(fut)
            return fut
        return None

    async def get_batch(self, max_items: int) -> list[Any]:
        """Up to ``max_items`` messages, waiting for at least one (one waiter at a time)."""
        q = self._q
        while not q:
            self._getter = self._loop.create_future()
            await self._getter
        if len(q) <= max_items:
            batch = list(q)
            q.clear()
        else:
            batch = [q.popleft() for _ in range(max_items)]
        if self._putters and len(q) < self.capacity:
            self.release()
        return batch

    def release(self) -> None:
        """Let every waiting sender go on (space was made, or nobody will read any more)."""
        putters, self._putters = self._putters, []
        for fut in putters:
            if not fut.done():
                fut.set_result(None)
