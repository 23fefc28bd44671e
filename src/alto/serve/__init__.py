"""Serving a pipeline over HTTP: ``alto serve module:pipeline`` (see ``docs/serving.md``).

``create_app`` (FastAPI) and the client (``Client``, ``AsyncClient``: httpx) are imported
on first use, so that a client does not load the server's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alto._jsonable import to_jsonable  # how stage values become JSON (the API, the CLI)

if TYPE_CHECKING:
    from alto.serve._app import RunRequest, create_app
    from alto.serve._client import AsyncClient, Client, ServerError

__all__ = ["AsyncClient", "Client", "RunRequest", "ServerError", "create_app", "to_jsonable"]

_WHERE = {
    "RunRequest": "alto.serve._app",
    "create_app": "alto.serve._app",
    "AsyncClient": "alto.serve._client",
    "Client": "alto.serve._client",
    "ServerError": "alto.serve._client",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        value = globals()[name] = getattr(importlib.import_module(_WHERE[name]), name)
        return value
    raise AttributeError(f"module 'alto.serve' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
