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

__all__ = ["ItemContext", "current", "set_current"]

# The stage is set once per lane (each lane task has its own context), the path per item:
# one ContextVar.set per item, no allocation.
_STAGE: ContextVar[str | None] = ContextVar("alto_stage", default=None)
_PATH: ContextVar[tuple[int, ...] | None] = ContextVar("alto_path", default=None)


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
    stage, path = _STAGE.get(), _PATH.get()
    if stage is None or path is None:
        raise LookupError("alto.current() is only available inside a stage function while it handles an item")
    return ItemContext(stage, path)


def set_current(stage: str, path: tuple[int, ...]) -> None:
    """Record the item the running stage code works on (the executor calls this)."""
    _STAGE.set(stage)
    _PATH.set(path)


set_stage = _STAGE.set  # once per lane
set_path = _PATH.set  # once per item


def call_as(stage: str, path: tuple[int, ...], fn: Any, *args: Any) -> Any:
    """Call ``fn(*args)`` (in a worker thread) with ``current()`` set to the item."""
    _STAGE.set(stage)
    _PATH.set(path)
    return fn(*args)
