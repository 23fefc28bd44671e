"""``alto.run`` and ``alto.run_async``: run a pipeline over inputs and return the results."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from alto.dataflow._pipeline import Pipeline
from alto.runtime._base import Runtime

__all__ = ["make_runtime", "run", "run_async"]


def make_runtime(pipeline: Pipeline, runtime: Any = "local", *, streaming: bool = True, **options: Any) -> Runtime:
    """A runtime for ``pipeline`` by name (``"local"``, ``"ray"``) or class."""
    if runtime == "local":
        from alto.runtime._local import LocalRuntime

        return LocalRuntime(pipeline, streaming=streaming, **options)
    if runtime == "ray":
        from alto.runtime.ray._runtime import RayRuntime

        return RayRuntime(pipeline, streaming=streaming, **options)
    if isinstance(runtime, type) and issubclass(runtime, Runtime):
        return runtime(pipeline, streaming=streaming, **options)  # type: ignore[call-arg]
    raise ValueError(f"runtime= must be 'local', 'ray' or a Runtime class, got {runtime!r}")


async def run_async(
    pipeline: Pipeline,
    inputs: Iterable[Any],
    *,
    runtime: Any = "local",
    streaming: bool = True,
    return_exceptions: bool = False,
    **options: Any,
) -> list[Any]:
    """``await``-able :func:`run`, for code already inside an event loop."""
    pipeline.validate(require_final=True)
    async with make_runtime(pipeline, runtime, streaming=streaming, **options) as rt:
        return await rt.map(inputs, return_exceptions=return_exceptions)


def run(
    pipeline: Pipeline,
    inputs: Iterable[Any],
    *,
    runtime: Any = "local",
    streaming: bool = True,
    return_exceptions: bool = False,
    **options: Any,
) -> list[Any]:
    """Run every input through ``pipeline``; one depth-0 result per input, in order.

    A request whose stage raised fails with :class:`~alto.StageError` (raised here, or
    left in its slot with ``return_exceptions=True``); other requests are unaffected.
    ``streaming=False`` runs the paper's baseline: each expand's children are held back
    until the whole level is generated. Extra keyword options go to the runtime.

    >>> import alto
    >>> p = alto.Pipeline("double")
    >>> _ = p.output(p.input().map(lambda x: 2 * x))
    >>> alto.run(p, [1, 2, 3])
    [2, 4, 6]
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        options.update(runtime=runtime, streaming=streaming, return_exceptions=return_exceptions)
        return asyncio.run(run_async(pipeline, inputs, **options))
    raise RuntimeError("alto.run() cannot be called inside a running event loop; use `await alto.run_async(...)`")
