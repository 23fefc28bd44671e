"""Serving a pipeline over HTTP: ``alto serve module:pipeline`` (see ``docs/serving.md``)."""

from alto.serve._app import RunRequest, create_app
from alto.serve._client import AsyncClient, Client, ServerError

__all__ = ["AsyncClient", "Client", "RunRequest", "ServerError", "create_app"]
