"""Power of two choices on outstanding work: the default for stateless stages."""

from __future__ import annotations

import random
from typing import Any

from alto.routing._base import LoadFn, Router

__all__ = ["PowerOfTwo"]


class PowerOfTwo(Router):
    """Power of two choices: sample two replicas, send to the one with less outstanding work.

    Near-optimal balance with no global state (Mitzenmacher 2001).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        if n == 2:
            return 0 if load(0) <= load(1) else 1
        a = int(self._rng.random() * n)
        b = int(self._rng.random() * (n - 1))
        if b >= a:
            b += 1
        return a if load(a) <= load(b) else b
