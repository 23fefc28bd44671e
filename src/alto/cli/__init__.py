"""The ``alto`` command (typer): ``run``, ``graph``, ``serve``, ``bench``, ``eval``, ``demo``."""

from alto.cli._load import load_pipeline
from alto.cli._main import app, main

__all__ = ["app", "load_pipeline", "main"]
