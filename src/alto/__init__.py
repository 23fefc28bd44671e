"""ALTO: serve compound AI pipelines, streaming partial outputs between stages.

>>> import alto
>>> p = alto.Pipeline("shout")
>>> _ = p.output(p.input().map(str.upper))
>>> alto.run(p, ["hi"])
['HI']
"""

from .errors import PipelineError, StageError
from .pipeline import Pipeline, StageSpec, Stream
from .routing import PowerOfTwo, PromptAware, Rendezvous, RoundRobin, Router
from .runtime import Event, LocalRuntime, Runtime, run, run_async

__all__ = [
    "Event",
    "LocalRuntime",
    "Pipeline",
    "PipelineError",
    "PowerOfTwo",
    "PromptAware",
    "Rendezvous",
    "RoundRobin",
    "Router",
    "Runtime",
    "StageError",
    "StageSpec",
    "Stream",
    "run",
    "run_async",
]

__version__ = "0.1.0"
