"""How user functions are called: async inline, plain functions in worker threads.

Retries have one implementation, :func:`attempts`, used by every call site (a blocking
call in its thread, an ``async`` call, an expand's generator, a batch)::

    for attempt in attempts(retries):
        with attempt:                 # an Exception here is retried, up to the last attempt
            return fn(value)

A plain (blocking) function never runs on the event loop. Two helpers keep threads
cheap: :func:`run_sync_batch` runs several quick calls in one thread hop (returning
early once a time budget is spent, so slow calls still stream), and :class:`Handoff`
carries the items of a blocking generator from its thread to the loop, with a bounded
buffer so a fast generator waits for a slow consumer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator
from typing import Any

from alto.engine._context import set_current

__all__ = [
    "SKIPPED",
    "AsyncResult",
    "Attempt",
    "Handoff",
    "HandoffCancelled",
    "attempts",
    "call_with_retries",
    "iterate_in_thread",
    "run_sync_batch",
]


class Attempt:
    """One attempt of a call: a context manager that swallows an ``Exception`` unless this
    is the last attempt (then it propagates: the call has failed)."""

    __slots__ = ("last", "number")

    def __init__(self, number: int, last: bool) -> None:
        self.number = number
        self.last = last

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        return kind is not None and issubclass(kind, Exception) and not self.last


def attempts(retries: int) -> Iterator[Attempt]:
    """``retries + 1`` attempts; leave the loop (``return``/``break``) on success.

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise OSError("not yet")
    ...     return len(calls)
    >>> def call():
    ...     for attempt in attempts(2):
    ...         with attempt:
    ...             return flaky()
    >>> call(), len(calls)
    (3, 3)
    """
    for number in range(retries + 1):
        yield Attempt(number, number == retries)


def call_with_retries(fn: Callable[..., Any], args: tuple[Any, ...], retries: int) -> Any:
    """Call a blocking function, retrying up to ``retries`` times on exception."""
    for attempt in attempts(retries):
        with attempt:
            return fn(*args)
    raise AssertionError("unreachable: the last attempt returns or raises")


_SKIPPED = object()


class AsyncResult:
    """Marks a blocking function's result that must be iterated on the loop."""

    __slots__ = ("iterable",)

    def __init__(self, iterable: Any) -> None:
        self.iterable = iterable


def run_sync_batch(
    fn: Callable[[Any], Any],
    stage: str,
    items: list[Any],
    cancelled: Container[int],
    retries: int,
    budget_s: float,
) -> list[tuple[bool, Any]]:
    """Run ``fn`` over the values of ``items`` in the calling (worker) thread.

    Returns one ``(ok, result_or_exception)`` per item processed; stops early after
    ``budget_s`` seconds so the caller can pass finished results downstream at once.
    Items of cancelled requests are skipped (``(True, _SKIPPED)``).
    """
    out: list[tuple[bool, Any]] = []
    append = out.append
    start = time.perf_counter()
    clock = time.perf_counter
    for item in items:
        path = item.path
        if path[0] in cancelled:
            append((True, _SKIPPED))
            continue
        set_current(stage, path)
        try:
            append((True, fn(item.value) if not retries else call_with_retries(fn, (item.value,), retries)))
        except Exception as exc:
            append((False, exc))
        if clock() - start > budget_s:
            break
    return out


SKIPPED = _SKIPPED


class HandoffCancelled(Exception):
    """Raised in a producer thread when the consumer no longer wants its items."""


class Handoff:
    """A bounded channel from one producer thread to the event loop.

    The thread calls :meth:`put` per item (blocking while the buffer is full) and
    :meth:`finish` at the end; the loop awaits :meth:`drain`, which returns every item
    buffered so far. The loop is woken at most once per drain, so a fast producer's
    items arrive in batches and a slow producer's items arrive one by one, at once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int = 64) -> None:
        self._loop = loop
        self._capacity = capacity
        self._cond = threading.Condition()
        self._buf: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._wake_pending = False
        self.finished = False
        self.error: BaseException | None = None
        self.cancelled = False
        self.peak = 0

    # producer thread side
    def put(self, item: Any) -> None:
        with self._cond:
            while len(self._buf) >= self._capacity and not self.cancelled:
                self._cond.wait()
            if self.cancelled:
                raise HandoffCancelled
            self._buf.append(item)
            self.peak = max(self.peak, len(self._buf))
            self._wake_locked()

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self.finished = True
            self.error = error
            self._wake_locked()

    def _wake_locked(self) -> None:
        if self._waiter is not None and not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._wake)

    # loop side
    def _wake(self) -> None:
        with self._cond:
            self._wake_pending = False
            waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self) -> list[Any]:
        """Items produced since the last drain; ``[]`` once finished and empty."""
        while True:
            with self._cond:
                if self._buf:
                    items = list(self._buf)
                    self._buf.clear()
                    self._cond.notify_all()
                    return items
                if self.finished:
                    return []
                waiter = self._waiter = self._loop.create_future()
            await waiter

    def cancel(self) -> None:
        """Stop the producer at its next :meth:`put` (it sees :class:`HandoffCancelled`)."""
        with self._cond:
            self.cancelled = True
            self._buf.clear()
            self._cond.notify_all()


def iterate_in_thread(
    fn: Callable[[Any], Iterable[Any]], value: Any, handoff: Handoff, skip: int, stage: str, path: tuple[int, ...]
) -> None:
    """Thread body: call ``fn(value)``, iterate the result into ``handoff``.

    ``skip`` items are consumed silently (a retry after ``skip`` children were already
    delivered: children are identified by index, so the retry must not resend them).
    """
    error: BaseException | None = None
    iterator = None
    set_current(stage, path)
    try:
        result = fn(value)
        if hasattr(result, "__aiter__") or isinstance(result, (list, tuple, range)):
            # Nothing left to block on: the loop iterates it without thread hops.
            handoff.put(AsyncResult(result))
            return
        iterator = iter(result)
        for n, child in enumerate(iterator):
            if n >= skip:
                handoff.put(child)
    except HandoffCancelled:
        error = None  # the consumer stopped listening (its request ended): not a failure
    except BaseException as exc:
        error = exc
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                close()  # runs the generator's finally blocks now, in this thread
            except Exception as exc:
                error = error or exc  # a generator whose cleanup fails has failed
        handoff.finish(error)
