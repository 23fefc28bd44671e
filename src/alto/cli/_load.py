"""Find the pipeline a command names: ``module:attr`` or ``path/to/file.py:attr``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import typer

import alto


def load_pipeline(target: str) -> alto.Pipeline:
    """``module:attr`` or ``path/to/file.py:attr``; ``attr`` is a Pipeline or a function
    returning one."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise typer.BadParameter(f"{target!r}: expected MODULE:NAME, e.g. examples.pipelines:words")
    try:
        if module_name.endswith(".py") or "/" in module_name:
            path = Path(module_name)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise typer.BadParameter(f"{module_name!r} has no attribute {attr!r}")
    if callable(obj) and not isinstance(obj, alto.Pipeline):
        obj = obj()
    if not isinstance(obj, alto.Pipeline):
        raise typer.BadParameter(f"{target!r} is a {type(obj).__name__}, not an alto.Pipeline")
    return obj
