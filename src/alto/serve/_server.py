"""uvicorn, draining on SIGTERM and then exiting 0."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import uvicorn

__all__ = ["DrainingServer"]


class DrainingServer(uvicorn.Server):
    """On SIGTERM or SIGINT: stop accepting, let requests in flight finish (the config's
    ``timeout_graceful_shutdown``), run the app's shutdown (which drains the runtime),
    exit 0. uvicorn itself re-raises the signal once drained, so the process would end
    as "killed by SIGTERM" and an orchestrator would count a clean stop as a crash."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
