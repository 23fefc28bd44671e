"""The data path between Ray replicas: framed batches over direct TCP connections.

Ray places the actors and carries control calls (wiring, cancellation, health checks);
items travel on one TCP connection per (sender, receiver) pair. On a small machine a
Ray actor call costs about a millisecond and ~700 µs of CPU; a frame on an open socket
costs tens of microseconds, which is what makes a hop cheap enough to stream every
token-sized piece of output.

Protocol, per connection: the client first sends the runtime's random token (a
connection without it is closed: only replicas of the same runtime can talk), then
length-prefixed pickled batches; the server answers every batch, in order, with its
queue length once the batch is accepted (after any backpressure wait). Those answers
are the acknowledgements the sender's window and router use.

>>> import asyncio
>>> async def demo():
...     got = []
...     async def receive(batch):
...         got.extend(batch)
...         return len(got)
...     server = Endpoint(receive, b"secret")
...     host, port = await server.start("127.0.0.1")
...     pool = Pool(b"secret")
...     conn = await pool.connect((host, port))
...     acks = [conn.send([1, 2]), conn.send([3])]
...     loads = await asyncio.gather(*acks)
...     await pool.close()
...     await server.close()
...     return got, loads
>>> asyncio.run(demo())
([1, 2, 3], [2, 3])
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import pickle
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Connection", "Endpoint", "Pool", "dumps", "loads"]

log = logging.getLogger("alto.wire")
_LEN = struct.Struct("!I")
CONNECT_TIMEOUT_S = 10.0


def dumps(obj: Any) -> bytes:
    """Pickle fast; fall back to cloudpickle for lambdas and classes defined in scripts."""
    try:
        return pickle.dumps(obj, protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=5)


loads = pickle.loads


def _frame(obj: Any) -> bytes:
    data = dumps(obj)
    return _LEN.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    return loads(await reader.readexactly(n))


class Endpoint:
    """A replica's listening socket: feeds each accepted batch to ``receive``.

    ``receive(batch)`` returns the receiver's queue length once it accepted the batch;
    batches of one connection are handled one after another, so a full inbox stops
    reading from that sender (TCP then slows it too).
    """

    def __init__(
        self,
        receive: Callable[..., Awaitable[Any]],
        token: bytes,
        name: str = "receiver",
        peer: Callable[[], Any] | None = None,
    ) -> None:
        # peer(): per-connection state handed to receive(batch, state) (e.g. what to
        # report on that sender's acknowledgements); without it, receive(batch)
        self._receive = receive
        self._peer = peer
        self.name = name
        self._token = token
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self, host: str) -> tuple[str, int]:
        """Listen on ``host`` (a free port); returns the address senders connect to."""
        self._server = await asyncio.start_server(self._handle, host, 0)
        return host, self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)  # owned: close() cancels it
        try:
            token = await asyncio.wait_for(reader.readexactly(len(self._token)), CONNECT_TIMEOUT_S)
            if not hmac.compare_digest(token, self._token):
                return
            state = self._peer() if self._peer is not None else None
            while True:
                (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
                data = await reader.readexactly(n)
                try:
                    batch = loads(data)
                except Exception:
                    # e.g. a value whose class this process cannot import: keep the
                    # connection (the other batches are fine) and say what went wrong
                    log.exception(
                        "%s: could not decode a batch of %d bytes (is every class your stages return "
                        "importable on every node?); its requests will time out",
                        self.name,
                        n,
                    )
                    batch = []
                # an empty batch is a poll: its ack carries the load and the reports
                if state is None:
                    ack: Any = await self._receive(batch)
                else:
                    ack = await self._receive(batch, state)
                writer.write(_frame(ack))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the sender went away; what it did not get acknowledged it replays
        finally:
            self._handlers.discard(task)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


class Connection:
    """One sender's connection to one receiver: :meth:`send` returns the ack's future."""

    def __init__(self, reader: asyncio.StreamReader | None, writer: asyncio.StreamWriter | None) -> None:
        self._writer = writer
        self._pending: deque[asyncio.Future[int]] = deque()
        self.error: BaseException | None = None
        self._reader_task = asyncio.get_running_loop().create_task(self._read_acks(reader)) if reader else None

    @classmethod
    def failed(cls, error: BaseException) -> Connection:
        """A connection that could not be opened: every send fails with ``error``."""
        conn = cls(None, None)
        conn.error = error
        return conn

    def send(self, batch: list[Any]) -> asyncio.Future[int]:
        fut = asyncio.get_running_loop().create_future()
        if self.error is not None or self._writer is None:
            fut.set_exception(ConnectionError(f"connection lost: {self.error}"))
            return fut
        self._writer.write(_frame(batch))
        self._pending.append(fut)
        return fut

    async def _read_acks(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                load = await _read_frame(reader)
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result(load)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self.error = exc if not isinstance(exc, asyncio.IncompleteReadError) else ConnectionError("closed by peer")
        except asyncio.CancelledError:
            self.error = ConnectionError("closed")
        finally:
            while self._pending:
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_exception(ConnectionError(f"lost before the batch was acknowledged: {self.error}"))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task


class Pool:
    """Open connections of one process, by address; reused across rewiring."""

    def __init__(self, token: bytes) -> None:
        self._token = token
        self._conns: dict[tuple[str, int], Connection] = {}

    async def connect(self, addr: tuple[str, int]) -> Connection:
        """The open connection to ``addr`` (a new one if none or the old one broke);
        a :meth:`Connection.failed` one if the receiver cannot be reached."""
        addr = tuple(addr)  # type: ignore[assignment]
        conn = self._conns.get(addr)
        if conn is not None and conn.error is None:
            return conn
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            return Connection.failed(exc)
        writer.write(self._token)
        conn = self._conns[addr] = Connection(reader, writer)
        return conn

    async def close(self) -> None:
        conns, self._conns = self._conns, {}
        await asyncio.gather(*(c.close() for c in conns.values()), return_exceptions=True)
