"""Every exception ALTO raises, under one root, :class:`AltoError`::

    AltoError
    ├── PipelineError (ValueError)      an invalid pipeline, before any stage runs
    ├── StageError                      a stage raised on an item: its request fails
    ├── StageStartError (RuntimeError)  a stage replica could not start (its setup raised)
    ├── RequestTimeout (TimeoutError)   a request outlived the runtime's timeout_s
    ├── alto.llm.LLMError (RuntimeError)          a backend failed to generate
    │   └── alto.llm.LLMUnavailable                   it cannot be reached or loaded
    ├── alto.retrieval.CorpusError (RuntimeError) a corpus cannot be read or built
    └── alto.ServerError                          ``alto serve`` answered with an error

Each also derives from the built-in exception that callers caught before it existed
(shown in brackets), so ``except ValueError`` around building a pipeline keeps working.

>>> import alto
>>> issubclass(alto.PipelineError, alto.AltoError) and issubclass(alto.RequestTimeout, TimeoutError)
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["AltoError", "PipelineError", "RequestTimeout", "StageError", "StageStartError"]


class AltoError(Exception):
    """The root of every exception ALTO raises (the hierarchy is in :mod:`alto.errors`)."""


class PipelineError(AltoError, ValueError):
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


class StageError(AltoError):
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


class StageStartError(AltoError, RuntimeError):
    """A replica of a stage could not start: its setup (a class stage's constructor, a
    model load) raised. ``runtime.start()`` raises it, naming the stage and replica.

    Attributes:
        stage: the stage's name.
        replica: the replica's index.
        setup_error: the setup's own exception (also ``__cause__``).
    """

    def __init__(self, stage: str, replica: int, cause: BaseException | None = None) -> None:
        self.stage = stage
        self.replica = replica
        self.setup_error = cause  # kept apart from __cause__, which `raise ... from` may reset
        super().__init__(f"stage {stage!r} (replica {replica}) failed to start: {cause!r}")
        self.__cause__ = cause

    def __reduce__(self) -> tuple[Any, ...]:
        return (StageStartError, (self.stage, self.replica, self.setup_error))


class RequestTimeout(AltoError, TimeoutError):
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
