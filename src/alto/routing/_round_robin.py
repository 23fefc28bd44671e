"""Round robin: each sender cycles through the replicas, ignoring load."""

from __future__ import annotations

from typing import Any

from alto.routing._base import LoadFn, Router

__all__ = ["RoundRobin"]


class RoundRobin(Router):
    """Cycle through replicas, ignoring load."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        i = self._next % n
        self._next = i + 1
        return i
