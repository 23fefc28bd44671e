"""Serving a pipeline over HTTP: ``alto serve module:pipeline`` (see ``docs/serving.md``)."""

from .app import RunRequest, create_app
from .client import AsyncClient, Client, ServerError

__all__ = ["AsyncClient", "Client", "RunRequest", "ServerError", "create_app"]
