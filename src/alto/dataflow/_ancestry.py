"""Ancestry paths, the messages that travel between stages, and counted completion.

Every item carries a *path* ``(request_id, i1, i2, ...)``: one index per open split
level. ``expand`` appends an index, ``aggregate`` pops one. Completion is counted, never
inferred from arrival order:

* :class:`Item` -- a value at a path.
* :class:`Tombstone` -- the item at this path was dropped (``filter`` or
  ``on_error="drop"``); it still counts towards its group.
* :class:`Open` -- an expand started generating children of ``path`` (carries the parent
  value, so an incremental aggregator can start before the generator ends).
* :class:`Done` -- an expand finished: ``path`` has exactly ``count`` children.

A group closes when it holds its ``Done`` and ``count`` distinct children or tombstones,
whatever order they arrived in and whichever replicas they travelled through.

>>> g = Group()
>>> g.add_child(Item((7, 1), "b"))
False
>>> g.add_done(Done((7,), 2, "parent"))
False
>>> g.add_child(Item((7, 0), "a"))
True
>>> g.children()
['a', 'b']
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CompletionTracker",
    "Done",
    "Group",
    "Item",
    "Message",
    "Open",
    "Path",
    "Tombstone",
    "is_data",
]

Path = tuple[int, ...]


class Item:
    """A value at an ancestry path."""

    __slots__ = ("path", "value")

    def __init__(self, path: Path, value: Any) -> None:
        self.path = path
        self.value = value

    def __repr__(self) -> str:
        return f"Item({self.path}, {self.value!r})"


class Tombstone:
    """The item at ``path`` was dropped; it still counts as done."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"Tombstone({self.path})"


class Open:
    """An expand began generating the children of ``path`` (whose value is ``value``)."""

    __slots__ = ("path", "value")

    def __init__(self, path: Path, value: Any) -> None:
        self.path = path
        self.value = value

    def __repr__(self) -> str:
        return f"Open({self.path})"


class Done:
    """An expand finished: the item at ``path`` (value ``value``) has ``count`` children."""

    __slots__ = ("count", "path", "value")

    def __init__(self, path: Path, count: int, value: Any) -> None:
        self.path = path
        self.count = count
        self.value = value

    def __repr__(self) -> str:
        return f"Done({self.path}, count={self.count})"


Message = Item | Tombstone | Open | Done


def is_data(msg: Message) -> bool:
    """True for messages that resolve one path (items and tombstones)."""
    return msg.__class__ is Item or msg.__class__ is Tombstone


class Group:
    """Children of one parent, collected until the group is complete.

    Children are deduplicated by index, so a replayed message is counted once.
    """

    __slots__ = ("expected", "has_parent", "parent", "seen", "state", "values")

    def __init__(self) -> None:
        self.parent: Any = None
        self.has_parent = False
        self.expected: int | None = None
        self.seen: set[int] = set()
        self.values: dict[int, Any] = {}
        self.state: Any = None  # an incremental aggregator's instance, once started

    def set_parent(self, value: Any) -> bool:
        """Record the parent value; True the first time."""
        if self.has_parent:
            return False
        self.parent = value
        self.has_parent = True
        return True

    def add_child(self, msg: Item | Tombstone) -> bool:
        """Count an item or tombstone; returns True if the group is now complete."""
        index = msg.path[-1]
        if index not in self.seen:
            self.seen.add(index)
            if msg.__class__ is Item:
                self.values[index] = msg.value
        return self.complete

    def add_done(self, msg: Done) -> bool:
        """Record the Done marker; returns True if the group is now complete."""
        self.set_parent(msg.value)
        self.expected = msg.count
        return self.complete

    @property
    def complete(self) -> bool:
        return self.expected is not None and len(self.seen) >= self.expected

    def children(self) -> list[Any]:
        """Surviving children, ordered by index (generation order)."""
        return [self.values[i] for i in sorted(self.values)]


class CompletionTracker:
    """Knows when every path of one request has been resolved at one point of the graph.

    Used where items of several levels meet (an output stream): the root path is
    expected; ``Done(p, n)`` resolves ``p`` and expects ``p+(0,) .. p+(n-1,)``; an item or
    tombstone resolves its path. The request is complete when nothing is outstanding.
    Arrival order does not matter: a path resolved before it is expected counts as -1
    until its expectation arrives.

    >>> t = CompletionTracker((3,))
    >>> t.feed(Item((3, 0), "x")), t.feed(Done((3,), 1, None))
    (False, True)
    """

    __slots__ = ("_balance", "_resolved")

    def __init__(self, root: Path) -> None:
        self._balance: dict[Path, int] = {root: 1}
        self._resolved: set[Path] = set()

    def _bump(self, path: Path, delta: int) -> None:
        n = self._balance.get(path, 0) + delta
        if n:
            self._balance[path] = n
        else:
            self._balance.pop(path, None)

    def feed(self, msg: Message) -> bool:
        """Account for one message; returns True once the request is complete."""
        cls = msg.__class__
        if cls is Open:
            return not self._balance
        path = msg.path
        if path in self._resolved:  # a duplicate (replay): already counted
            return not self._balance
        self._resolved.add(path)
        self._bump(path, -1)
        if isinstance(msg, Done):
            for i in range(msg.count):
                self._bump(path + (i,), 1)
        return not self._balance

    def seen(self, msg: Message) -> bool:
        """True if ``msg`` resolves a path already resolved (a duplicate)."""
        return msg.__class__ is not Open and msg.path in self._resolved

    @property
    def complete(self) -> bool:
        return not self._balance
