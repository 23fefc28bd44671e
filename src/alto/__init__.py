"""ALTO: serve compound AI pipelines, streaming partial outputs between stages.

>>> import alto
>>> p = alto.Pipeline("shout")
>>> _ = p.output(p.input().map(str.upper))
>>> alto.run(p, ["hi"])
['HI']

``alto.RayRuntime`` is imported on first use, so ``import alto`` never imports Ray.
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

__all__ = [
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
    raise AttributeError(f"module 'alto' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
