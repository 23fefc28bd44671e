"""ALTO: serve compound AI pipelines, streaming partial outputs between stages.

>>> import alto
>>> p = alto.Pipeline("shout")
>>> _ = p.output(p.input().map(str.upper))
>>> alto.run(p, ["hi"])
['HI']

``alto.RayRuntime`` is imported on first use, so ``import alto`` never imports Ray;
so are ``alto.Client`` and ``alto.AsyncClient`` (clients of ``alto serve``, httpx).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .context import ItemContext, current
from .errors import PipelineError, RequestTimeout, StageError
from .pipeline import Pipeline, StageOptions, StageSpec, Stream
from .routing import PowerOfTwo, PromptAware, Rendezvous, RoundRobin, Router
from .runtime import Event, LocalRuntime, Runtime, run, run_async

if TYPE_CHECKING:
    from .runtime.ray import RayRuntime
    from .serve.client import AsyncClient, Client, ServerError

__all__ = [
    "AsyncClient",
    "Client",
    "Event",
    "ItemContext",
    "LocalRuntime",
    "Pipeline",
    "PipelineError",
    "PowerOfTwo",
    "PromptAware",
    "RayRuntime",
    "Rendezvous",
    "RequestTimeout",
    "RoundRobin",
    "Router",
    "Runtime",
    "ServerError",
    "StageError",
    "StageOptions",
    "StageSpec",
    "Stream",
    "current",
    "run",
    "run_async",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "RayRuntime":
        from .runtime.ray import RayRuntime  # imports ray itself only when a runtime starts

        globals()[name] = RayRuntime
        return RayRuntime
    if name in ("Client", "AsyncClient", "ServerError"):
        from .serve import client  # httpx, only when a client is wanted

        value = globals()[name] = getattr(client, name)
        return value
    raise AttributeError(f"module 'alto' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
