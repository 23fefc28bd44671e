"""Rendezvous hashing of a group's path: aggregation-aware routing, with no coordination."""

from __future__ import annotations

from typing import Any

from alto.routing._base import LoadFn, Router, rendezvous, stable_hash

__all__ = ["Rendezvous"]


class Rendezvous(Router):
    """Highest-random-weight hashing of the key: every sender picks the same replica.

    This is aggregation-aware routing: all children of a group (same parent path) reach
    one replica even when they come from different upstream replicas, with no
    coordination; groups spread evenly over replicas.
    """

    keyed = True

    def choose(self, key: tuple[int, ...], value: Any, n: int, load: LoadFn) -> int:
        return rendezvous(stable_hash(key), n)
