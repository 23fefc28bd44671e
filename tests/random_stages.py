"""Stage functions for random pipelines, shared by the property tests in tests/runtime/
(``test_properties`` and ``test_failure_properties``; ``tests`` is on ``pythonpath``).

Maps, filters and expands in every form (sync, async, generator, list, async
generator) with random small delays, an order-sensitive fold in three forms (plain,
incremental, async), and the choice of the next stage kind for a stream.
"""

from __future__ import annotations

import asyncio
import random
import time


def make_map(a: int, b: int, mode: str):
    if mode == "async":

        async def f(x):
            if random.random() < 0.3:
                await asyncio.sleep(random.random() * 0.002)
            return (a * x + b) % 101

    else:

        def f(x):
            if random.random() < 0.1:
                time.sleep(random.random() * 0.001)
            return (a * x + b) % 101

    return f


def make_filter(m: int, r: int):
    def keep(x):
        return x % m != r

    return keep


def make_expand(k: int, c: int, mode: str):
    def width(x):
        return (x + c) % k  # 0 .. k-1 children

    def child(x, i):
        return (x * 7 + i * 3 + c) % 101

    if mode == "gen":

        def f(x):
            for i in range(width(x)):
                yield child(x, i)

    elif mode == "list":

        def f(x):
            return [child(x, i) for i in range(width(x))]

    else:

        async def f(x):
            for i in range(width(x)):
                if random.random() < 0.3:
                    await asyncio.sleep(random.random() * 0.002)
                yield child(x, i)

    return f


def fold(parent: int, children: list[int]) -> int:
    h = (parent * 17 + len(children)) % 10007
    for c in children:  # order-sensitive: catches children out of index order
        h = (h * 31 + c) % 10007
    return h % 101


class Fold:
    """The same fold as an incremental aggregator (children may arrive in any order)."""

    def start(self, parent):
        self.parent, self.kids = parent, {}

    def add(self, index, child):
        self.kids[index] = child

    def finish(self):
        return fold(self.parent, [self.kids[i] for i in sorted(self.kids)])


async def afold(parent, children):
    await asyncio.sleep(0)
    return fold(parent, children)


def combine(pair):
    a, b = pair
    return (a * 5 + b) % 101


def stage_choices(base: list[str], s, seen: list) -> tuple[list[str], list]:
    """Stage kinds that may follow stream ``s`` (expand up to depth 3, aggregate below
    depth 0, zip when a stream of the same shape exists), and the zip partners."""
    choices = list(base)
    if s.depth < 3:
        choices += ["expand", "expand"]
    if s.depth > 0:
        choices.append("aggregate")
    partners = [t for t in seen if t.depth == s.depth and t.levels == s.levels]
    if partners:
        choices.append("zip")
    return choices, partners
