"""What kind of function a stage was given: async or plain, generator, class, aggregator.

These facts decide a stage's defaults (``concurrency``) when the pipeline is built, and
how the engine calls the function; they are read here, once, from the function itself.

>>> async def llm(x): ...
>>> classify(llm), classify(len), default_concurrency(llm), default_concurrency(len)
('async', 'sync', 64, 1)
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

__all__ = [
    "ASYNC_CONCURRENCY",
    "ROUTER_POLICIES",
    "FunctionKind",
    "classify",
    "default_concurrency",
    "is_class_stage",
    "is_incremental_aggregator",
    "router_keyed",
]

FunctionKind = Literal["asyncgen", "async", "sync"]

#: default ``concurrency`` of an ``async`` stage function (an LLM call waits, it does not compute)
ASYNC_CONCURRENCY = 64

#: the policy names ``router=`` accepts, and whether each keeps equal keys on one replica
#: (the registry in :mod:`alto.routing` implements exactly these; a test pins it)
ROUTER_POLICIES: dict[str, bool] = {"round_robin": False, "p2c": False, "rendezvous": True, "prompt_aware": False}


def classify(fn: Any) -> FunctionKind:
    """``"asyncgen"``, ``"async"`` or ``"sync"`` for a function or callable instance."""
    target = fn
    if not inspect.isfunction(fn) and not inspect.ismethod(fn) and callable(fn):
        call = fn.__call__
        if inspect.isasyncgenfunction(call) or inspect.iscoroutinefunction(call):
            target = call
    if inspect.isasyncgenfunction(target):
        return "asyncgen"
    if inspect.iscoroutinefunction(target):
        return "async"
    return "sync"


def default_concurrency(fn: Any) -> int:
    """1 for a plain function, 64 for an ``async`` one or an async generator (also as a class's ``__call__``)."""
    if is_incremental_aggregator(fn):
        methods = (getattr(fn, m) for m in ("start", "add", "finish"))
        return ASYNC_CONCURRENCY if any(inspect.iscoroutinefunction(m) for m in methods) else 1
    target = getattr(fn, "__call__", None) if inspect.isclass(fn) else fn  # noqa: B004
    if target is None:
        return 1
    return 1 if classify(target) == "sync" else ASYNC_CONCURRENCY


def is_incremental_aggregator(fn: Any) -> bool:
    return inspect.isclass(fn) and all(callable(getattr(fn, m, None)) for m in ("start", "add", "finish"))


def is_class_stage(fn: Any) -> bool:
    """A class whose instances are callable: constructed once per replica.

    Other classes (``str``, ``range``, a dataclass) are called per item like functions.
    """
    return inspect.isclass(fn) and any("__call__" in vars(k) for k in fn.__mro__ if k is not object)


def router_keyed(router: Any) -> bool | None:
    """Whether a ``router=`` option keeps equal keys on one replica; ``None``: not a router.

    Names are checked against :data:`ROUTER_POLICIES`; a router
    (instance or class) is anything with the hooks of :class:`alto.Router` and its
    ``keyed`` flag, so the description needs nothing from :mod:`alto.routing`.
    """
    if isinstance(router, str):
        return ROUTER_POLICIES.get(router)
    hooks = ("choose", "choose_control", "completed", "state", "fork")
    if all(callable(getattr(router, h, None)) for h in hooks) and isinstance(getattr(router, "keyed", None), bool):
        return bool(router.keyed)
    return None
