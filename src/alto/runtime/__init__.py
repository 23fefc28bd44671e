"""Runtimes: where a pipeline's stages run. ``local`` (embedded) is the default."""

from .api import run, run_async
from .base import Runtime
from .local import LocalRuntime
from .requests import Event

__all__ = ["Event", "LocalRuntime", "Runtime", "run", "run_async"]
