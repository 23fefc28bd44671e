"""Exceptions raised by ALTO: invalid pipelines and failed stages."""

from __future__ import annotations

from typing import Any

__all__ = ["PipelineError", "StageError"]


class PipelineError(ValueError):
    """A pipeline is invalid; raised before any stage runs.

    The message names the stage(s) involved and says how to fix the pipeline.

    >>> import alto
    >>> p = alto.Pipeline("demo")
    >>> try:
    ...     p.input().aggregate(lambda parent, children: children)
    ... except alto.PipelineError as e:
    ...     print("aggregate" in str(e))
    True
    """


class StageError(Exception):
    """A stage raised while processing one item; its request fails with this error.

    Attributes:
        stage: name of the stage that raised.
        path: ancestry path of the item it was processing, ``(request_id, i1, ...)``.
        __cause__: the original exception.
    """

    def __init__(self, stage: str, path: tuple[int, ...], cause: BaseException | None = None) -> None:
        self.stage = stage
        self.path = path
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else "failed"
        super().__init__(f"stage {stage!r} failed on item {path}: {detail}")
        self.__cause__ = cause

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep stage/path/cause when pickled (e.g. across Ray processes).
        return (StageError, (self.stage, self.path, self.__cause__))
