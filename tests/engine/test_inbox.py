"""The Inbox (alto.engine._inbox): a bounded FIFO drained in batches.

``put`` never blocks: below capacity it returns None, at capacity a future the sender
awaits before sending more; ``get_batch`` takes up to ``max_items`` in order, waiting
for at least one, and lets the waiting senders go once it leaves the inbox below
capacity; ``release`` lets every sender go.
"""

from __future__ import annotations

import asyncio
from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from alto.engine import Inbox
from conftest import arun


async def settle() -> None:
    """Let every ready callback and task run."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_put_returns_none_below_capacity_and_a_future_from_capacity_on():
    async def main():
        inbox = Inbox(3)
        assert inbox.put("a") is None
        assert inbox.put("b") is None
        third = inbox.put("c")  # the inbox is now at capacity
        fourth = inbox.put("d")  # accepted all the same: a sender overshoots by one
        assert isinstance(third, asyncio.Future) and isinstance(fourth, asyncio.Future)
        await settle()
        assert not third.done() and not fourth.done()
        assert len(inbox) == 4
        assert await inbox.get_batch(10) == ["a", "b", "c", "d"]
        assert third.done() and fourth.done()

    arun(main())


def test_get_batch_takes_at_most_max_items_in_order():
    async def main():
        inbox = Inbox(100)
        for i in range(7):
            inbox.put(i)
        assert await inbox.get_batch(3) == [0, 1, 2]
        assert len(inbox) == 4
        assert await inbox.get_batch(3) == [3, 4, 5]
        assert await inbox.get_batch(3) == [6]
        assert len(inbox) == 0

    arun(main())


def test_get_batch_waits_for_at_least_one_message():
    async def main():
        inbox = Inbox(4)
        reader = asyncio.ensure_future(inbox.get_batch(10))
        await settle()
        assert not reader.done()  # nothing to read: it waits
        assert inbox.put("x") is None
        assert await asyncio.wait_for(reader, 1) == ["x"]

        reader = asyncio.ensure_future(inbox.get_batch(10))
        await settle()
        assert not reader.done()
        inbox.put("y")
        inbox.put("z")  # both arrive before the reader wakes: one batch
        assert await asyncio.wait_for(reader, 1) == ["y", "z"]

    arun(main())


def test_senders_wait_until_the_reader_leaves_the_inbox_below_capacity():
    async def main():
        inbox = Inbox(2)
        assert inbox.put(1) is None
        first = inbox.put(2)
        second = inbox.put(3)
        assert first is not None and second is not None
        assert await inbox.get_batch(1) == [1]
        await settle()
        assert not first.done() and not second.done()  # still 2 queued: at capacity
        assert await inbox.get_batch(1) == [2]
        await settle()
        assert first.done() and second.done()  # 1 queued: below capacity, all go on
        assert first.result() is None and second.result() is None
        assert await inbox.get_batch(5) == [3]

    arun(main())


def test_a_sender_awaiting_its_future_resumes_when_space_is_made():
    async def main():
        inbox = Inbox(1)
        sent = []

        async def sender():
            for i in range(5):
                wait = inbox.put(i)
                sent.append(i)
                if wait is not None:
                    await wait

        task = asyncio.ensure_future(sender())
        await settle()
        assert sent == [0]  # capacity 1: the first put already waits
        got = []
        while len(got) < 5:
            got += await asyncio.wait_for(inbox.get_batch(10), 1)
            await settle()
        await asyncio.wait_for(task, 1)
        assert got == [0, 1, 2, 3, 4]
        assert inbox.peak == 1  # the sender never ran ahead of the reader

    arun(main())


def test_release_lets_every_waiting_sender_go_without_reading():
    async def main():
        inbox = Inbox(1)
        waits = [inbox.put(i) for i in range(4)]
        assert all(w is not None for w in waits)
        waits[1].cancel()  # a sender that gave up: release must not trip over it
        inbox.release()
        assert all(w.done() for w in waits)
        assert [w.result() for w in waits if not w.cancelled()] == [None, None, None]
        assert len(inbox) == 4  # nothing was taken out
        fresh = inbox.put(4)
        assert fresh is not None and not fresh.done()  # later senders wait again
        inbox.release()
        assert fresh.done()

    arun(main())


def test_peak_is_the_most_messages_ever_held():
    async def main():
        inbox = Inbox(10)
        assert inbox.peak == 0
        for i in range(4):
            inbox.put(i)
        await inbox.get_batch(3)
        inbox.put(4)
        assert len(inbox) == 2
        assert inbox.peak == 4

    arun(main())


ops = st.lists(st.one_of(st.just(("put",)), st.tuples(st.just("get"), st.integers(1, 6))), max_size=60)


@given(capacity=st.integers(1, 5), ops=ops)
def test_inbox_behaves_like_a_bounded_fifo_model(capacity, ops):
    """Any interleaving of puts and batch reads: the same messages in the same order as
    a deque, a future from every put that reaches capacity, those futures resolved
    exactly when a read leaves the inbox below capacity, and the true peak."""

    async def main():
        inbox = Inbox(capacity)
        model: deque[int] = deque()
        waiting: list[asyncio.Future] = []
        peak = 0
        n = 0
        for op in ops:
            if op[0] == "put":
                wait = inbox.put(n)
                model.append(n)
                n += 1
                peak = max(peak, len(model))
                if len(model) >= capacity:
                    assert wait is not None
                    waiting.append(wait)
                else:
                    assert wait is None
            elif model:  # a read of an empty inbox would wait: tested on its own above
                k = op[1]
                batch = await inbox.get_batch(k)
                expected = [model.popleft() for _ in range(min(k, len(model)))]
                assert batch == expected
                if len(model) < capacity:
                    assert all(w.done() for w in waiting)
                    waiting.clear()
                else:
                    assert not any(w.done() for w in waiting)
            assert len(inbox) == len(model)
            assert inbox.peak == peak
        rest = await inbox.get_batch(len(model)) if model else []
        assert rest == list(model)

    arun(main())
