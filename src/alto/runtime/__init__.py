"""Runtimes: where a pipeline's stages run. ``local`` (embedded) is the default."""

from .base import Event, Runtime, run, run_async
from .local import LocalRuntime

__all__ = ["Event", "LocalRuntime", "Runtime", "run", "run_async"]
