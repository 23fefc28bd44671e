"""Exceptions raised by ALTO: invalid pipelines and failed stages."""

from __future__ import annotations

from typing import Any

__all__ = ["PipelineError", "RequestTimeout", "StageError"]


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


class RequestTimeout(TimeoutError):
    """A request did not complete within the runtime's ``timeout_s``; its work was cancelled.

    Attributes:
        request_id: the request's id.
        waiting_for: the output streams that had not completed.
    """

    def __init__(self, request_id: int, timeout_s: float, waiting_for: list[str]) -> None:
        self.request_id = request_id
        self.waiting_for = waiting_for
        super().__init__(
            f"request {request_id} did not complete within {timeout_s:g}s (still waiting for output "
            f"{', '.join(map(repr, waiting_for)) or 'stages'}); its work was cancelled in every stage. "
            "Pass timeout_s= to the runtime to wait longer."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_timeout, (self.request_id, str(self), self.waiting_for))


def _timeout(request_id: int, message: str, waiting_for: list[str]) -> RequestTimeout:
    err = RequestTimeout.__new__(RequestTimeout)
    TimeoutError.__init__(err, message)
    err.request_id, err.waiting_for = request_id, waiting_for
    return err
