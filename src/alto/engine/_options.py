"""The options every runtime takes (:class:`RuntimeOptions`), with their defaults defined once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

__all__ = ["RuntimeKwargs", "RuntimeOptions"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RuntimeOptions:
    """Options every runtime takes, with their defaults defined once.

    >>> RuntimeOptions(batch_size=16).inbox_capacity
    256
    >>> RuntimeOptions(max_requests=0)
    Traceback (most recent call last):
    ...
    ValueError: max_requests= must be an integer >= 1, got 0
    """

    inbox_capacity: int = 256  #: messages a replica's inbox holds before senders wait
    batch_size: int = 64  #: most messages a replica takes from its inbox at once
    max_requests: int = 128  #: admission limit: requests in flight at once (others wait)
    sync_budget_s: float = 0.002  #: a thread hop running a blocking function returns after this long
    timeout_s: float = 600.0  #: longest a request may take; then it fails and its work is cancelled
    event_buffer: int = 1024  #: events of one ``stream()`` held for a slow reader before stages wait
    #: time every item in every replica (per-stage latency histograms, items out, failures;
    #: ``stats()`` and ``alto serve``'s ``/metrics``); off: the hot path reads no clock
    stage_metrics: bool = False
    #: an OpenTelemetry span per request and per item in each stage (needs an SDK configured)
    tracing: bool = False

    def __post_init__(self) -> None:
        for name in ("inbox_capacity", "batch_size", "max_requests", "event_buffer"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}= must be an integer >= 1, got {value!r}")
        for name in ("sync_budget_s", "timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}= must be a number of seconds > 0, got {value!r}")
        for name in ("stage_metrics", "tracing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}= must be True or False, got {getattr(self, name)!r}")

    @classmethod
    def split(cls, options: dict[str, Any]) -> tuple[RuntimeOptions, dict[str, Any]]:
        """(the runtime options in ``options``, everything else) -- for runtimes with extras."""
        mine = {k: options[k] for k in cls.__dataclass_fields__ if k in options}
        return cls(**mine), {k: v for k, v in options.items() if k not in mine}


class RuntimeKwargs(TypedDict, total=False):
    """The keyword options of :class:`RuntimeOptions`, for typed ``**options``."""

    inbox_capacity: int
    batch_size: int
    max_requests: int
    sync_budget_s: float
    timeout_s: float
    event_buffer: int
    stage_metrics: bool
    tracing: bool
