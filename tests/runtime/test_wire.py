"""The RayRuntime's data path: framed batches over TCP (alto.runtime.ray._wire), without Ray."""

from __future__ import annotations

import asyncio
import contextlib
import pickle

import pytest

from alto.dataflow import Done, Item
from alto.runtime.ray._wire import _LEN, Endpoint, Pool
from conftest import arun


def collector():
    """A receive function that keeps every message; acks with the count so far."""
    got: list = []

    async def receive(batch):
        got.extend(batch)
        return len(got)

    return got, receive


TOKEN = b"t" * 16


async def _server(receive, token=TOKEN):
    server = Endpoint(receive, token)
    addr = await server.start("127.0.0.1")
    return server, addr


@contextlib.asynccontextmanager
async def linked(receive, server_token=TOKEN, client_token=TOKEN):
    """A listening Endpoint and a client's Connection to it; both closed on exit.

    Yields ``(conn, pool, server, addr)``.
    """
    server, addr = await _server(receive, server_token)
    pool = Pool(client_token)
    try:
        yield await pool.connect(addr), pool, server, addr
    finally:
        await pool.close()
        await server.close()


def test_batches_arrive_in_order_and_acks_carry_the_queue_length():
    async def main():
        got, receive = collector()

        async with linked(receive) as (conn, pool, _, addr):
            assert await pool.connect(addr) is conn  # reused
            msgs = [Item((1, i), {"i": i}) for i in range(100)] + [Done((1,), 100, "parent")]
            acks = [conn.send(msgs[i : i + 7]) for i in range(0, len(msgs), 7)]
            loads = await asyncio.gather(*acks)
        return got, msgs, loads

    got, msgs, loads = arun(main())

    def key(m):
        return type(m).__name__, m.path, getattr(m, "value", None), getattr(m, "count", None)

    assert [key(m) for m in got] == [key(m) for m in msgs]  # ancestry messages, in order
    assert loads == sorted(loads) and loads[-1] == len(msgs)


def test_values_plain_pickle_cannot_carry_travel_by_cloudpickle():
    async def main():
        got, receive = collector()

        async with linked(receive) as (conn, *_):
            await conn.send([Item((1,), lambda x: x + 1)])
        return got

    (item,) = arun(main())
    assert item.value(1) == 2


def test_a_connection_without_the_token_is_closed():
    async def main():
        got, receive = collector()

        async with linked(receive, b"right-token-1234", b"wrong-token-1234") as (conn, *_):
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(conn.send([1, 2, 3]), 5)
        return got

    assert arun(main()) == []


def test_a_dead_receiver_fails_every_unacknowledged_batch():
    async def main():
        release = asyncio.Event()

        async def receive(batch):
            await release.wait()  # backpressure: the receiver does not accept yet
            return 0

        async with linked(receive) as (conn, _, server, _):
            acks = [conn.send([i]) for i in range(3)]
            await asyncio.sleep(0.1)
            assert not any(a.done() for a in acks)  # held back, not acknowledged
            await server.close()  # the receiver dies
            results = await asyncio.wait_for(asyncio.gather(*acks, return_exceptions=True), 5)
            later = conn.send([4])
            with pytest.raises(ConnectionError):
                await later
        return results

    results = arun(main())
    assert all(isinstance(r, ConnectionError) for r in results)


def test_an_unreachable_receiver_gives_a_failed_connection():
    async def main():
        server, addr = await _server(lambda b: asyncio.sleep(0, 0))
        await server.close()  # nothing listens there any more
        conn = await Pool(TOKEN).connect(addr)
        with pytest.raises(ConnectionError):
            await conn.send([1])

    arun(main())


def test_an_undecodable_batch_is_reported_and_the_connection_lives_on(caplog):
    async def main():
        got, receive = collector()

        server, addr = await _server(receive)
        reader, writer = await asyncio.open_connection(*addr)
        good = pickle.dumps(["fine"])
        writer.write(TOKEN + _LEN.pack(7) + b"garbage" + _LEN.pack(len(good)) + good)
        acks = [pickle.loads(await reader.readexactly(await _ack_len(reader))) for _ in range(2)]
        writer.close()
        await server.close()
        return got, acks

    got, acks = arun(main())
    assert got == ["fine"] and acks == [0, 1]
    assert "could not decode a batch of 7 bytes" in caplog.text


async def _ack_len(reader):
    return _LEN.unpack(await reader.readexactly(_LEN.size))[0]
