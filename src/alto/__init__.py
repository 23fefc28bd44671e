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

from alto.dataflow import Pipeline, StageOptions, StageSpec, Stream
from alto.engine import Event, ItemContext, current
from alto.errors import AltoError, PipelineError, RequestTimeout, StageError, StageStartError
from alto.routing import PowerOfTwo, PromptAware, Rendezvous, RoundRobin, Router
from alto.runtime import LocalRuntime, Runtime, run, run_async

if TYPE_CHECKING:
    from alto.runtime.ray import RayRuntime
    from alto.serve._client import AsyncClient, Client, ServerError

__all__ = [
    "AltoError",
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
    "StageStartError",
    "Stream",
    "current",
    "run",
    "run_async",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "RayRuntime":
        from alto.runtime.ray import RayRuntime  # imports ray itself only when a runtime starts

        globals()[name] = RayRuntime
        return RayRuntime
    if name in ("Client", "AsyncClient", "ServerError"):
        from alto import serve  # its client module (httpx) is imported on first use, not the server

        value = globals()[name] = getattr(serve, name)
        return value
    raise AttributeError(f"module 'alto' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
