"""``alto.current()``: the context of the item a stage function is working on.

Set by the replica executor before each item (and in the worker thread before a plain
function is called), so a stage can number, log or key by position without carrying
the position in the value.

>>> import alto
>>> def where(x):
...     ctx = alto.current()
...     return (ctx.stage, ctx.path[1:], x)
>>> p = alto.Pipeline("ctx")
>>> _ = p.output(p.input().expand(list).map(where).aggregate(lambda s, xs: xs))
>>> alto.run(p, ["ab"])
[[('where', (0,), 'a'), ('where', (1,), 'b')]]
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["ItemContext", "count_tokens", "current", "set_current"]

# One mutable cell per lane task (and per worker thread), set in its context once; the
# executor then only stores each item's path in it. A ContextVar.set per item would copy
# the context's mapping every time (about 0.1 us, a fifth of a no-op hop). Tasks a stage
# starts share its lane's cell, so while the item is in progress -- the only time
# current() is defined -- they see its path.


class _Cell:
    __slots__ = ("path", "stage", "tokens")

    def __init__(self, stage: str | None = None) -> None:
        self.stage = stage
        self.path: tuple[int, ...] | None = None
        self.tokens = 0  # output tokens the item's LLM calls generated (prompt-aware routing)


def count_tokens(n: int) -> None:
    """Add ``n`` generated tokens to the current item's count (LLM backends call this)."""
    cell = _CELL.get()
    if cell is not None:
        cell.tokens += n


_CELL: ContextVar[_Cell | None] = ContextVar("alto_item", default=None)


@dataclass(frozen=True, slots=True)
class ItemContext:
    """Where the current item is: its stage, its ancestry path and its request."""

    stage: str
    path: tuple[int, ...]

    @property
    def request_id(self) -> int:
        return self.path[0]


def current() -> ItemContext:
    """The context of the item being processed (inside a stage function only).

    Raises ``LookupError`` outside a stage function.
    """
    cell = _CELL.get()
    if cell is None or cell.stage is None or cell.path is None:
        raise LookupError("alto.current() is only available inside a stage function while it handles an item")
    return ItemContext(cell.stage, cell.path)


def lane_cell(stage: str) -> _Cell:
    """A fresh cell for the calling task (a replica's lane): set once, filled per item."""
    cell = _Cell(stage)
    _CELL.set(cell)
    return cell


def set_current(stage: str, path: tuple[int, ...]) -> None:
    """Record the item the running code works on (in a worker thread, or a test)."""
    cell = _CELL.get()
    if cell is None:
        cell = _Cell()
        _CELL.set(cell)
    cell.stage = stage
    cell.path = path


def call_as(stage: str, path: tuple[int, ...], fn: Any, *args: Any) -> Any:
    """Call ``fn(*args)`` (in a worker thread) with ``current()`` set to the item."""
    set_current(stage, path)
    return fn(*args)
