"""Counted completion: groups and trackers close on counts, in any arrival order."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from alto.dataflow import CompletionTracker, Done, Group, Item, Open, Tombstone


def test_group_waits_for_done_and_count():
    g = Group()
    assert not g.add_child(Item((1, 0), "a"))
    assert not g.add_child(Tombstone((1, 1)))
    assert not g.add_child(Item((1, 0), "a"))  # duplicate: counted once
    assert g.add_done(Done((1,), 2, "p"))
    assert g.children() == ["a"] and g.parent == "p"


def test_empty_group_completes_on_done():
    g = Group()
    assert g.add_done(Done((4, 2), 0, None))
    assert g.children() == []


def tree_messages(rng: random.Random, root: tuple[int, ...], depth: int) -> list:
    """All messages an output of ``depth`` sees for one random request tree."""
    if depth == 0:
        return [Item(root, 1) if rng.random() < 0.7 else Tombstone(root)]
    if rng.random() < 0.15:
        return [Tombstone(root)]  # the parent was dropped before expanding
    n = rng.randrange(0, 4)
    msgs = [Open(root, None), Done(root, n, None)]
    for i in range(n):
        msgs += tree_messages(rng, root + (i,), depth - 1)
    return msgs


@given(st.integers(0, 10_000), st.integers(0, 3))
def test_tracker_completes_exactly_at_the_last_message(seed, depth):
    rng = random.Random(seed)
    msgs = [m for m in tree_messages(rng, (9,), depth) if not isinstance(m, Open)]
    rng.shuffle(msgs)
    t = CompletionTracker((9,))
    states = [t.feed(m) for m in msgs]
    assert states[-1] is True
    assert not any(states[:-1])
    assert t.feed(msgs[0]) is True  # a replayed duplicate changes nothing
