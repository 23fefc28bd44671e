"""Requests of one runtime (alto.engine._requests), without a runtime.

Output stages' messages are handed to ``Requests.deliver`` directly: completion is
counted per output stream whatever the arrival order, a replayed message counts once,
every request ends exactly once (completed, failed, timed out or forgotten) and
``on_end`` hears of it, streamed requests get their events with the final ones last.
``Ended`` remembers ended request ids below a low-water mark.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import alto
from alto.dataflow import Done, Item, Open, Tombstone
from alto.engine._requests import Admission, Ended, Event, Requests, iterate_events, take_events
from conftest import arun


def parts_and_whole() -> alto.Pipeline:
    """Outputs "parts" (depth 1, streamed as events) and "whole" (depth 0, the result)."""
    p = alto.Pipeline("parts_and_whole")
    parts = p.input().expand(lambda text: text.split(), name="parts")
    whole = parts.aggregate(lambda text, words: len(words), name="whole")
    p.output(parts)
    p.output(whole)
    return p


def messages(rid: int, kept: list[bool]) -> list[tuple[str, object]]:
    """What the output stages of ``parts_and_whole`` emit for one request whose input
    has ``len(kept)`` words, some dropped (tombstones): ``(output, message)`` pairs."""
    n = len(kept)
    out: list[tuple[str, object]] = [("parts", Open((rid,), "text"))]
    for i, keep in enumerate(kept):
        out.append(("parts", Item((rid, i), f"w{i}") if keep else Tombstone((rid, i))))
    out.append(("parts", Done((rid,), n, "text")))
    out.append(("whole", Item((rid,), sum(kept))))
    return out


class Ends:
    """An ``on_end`` that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, rid: int, interrupt: bool) -> None:
        self.calls.append((rid, interrupt))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_ids_are_handed_out_in_order_and_open_requests_are_counted():
    async def main():
        reqs = Requests(parts_and_whole(), timeout_s=60)
        opened = [reqs.open() for _ in range(5)]
        assert [r.rid for r in opened] == [0, 1, 2, 3, 4]
        assert len(reqs) == 5
        assert reqs.get(3) is opened[3]
        assert reqs.get(5) is None
        assert opened[0].events is None  # events only when asked for
        assert reqs.open(events=True).events is not None
        reqs.close("test over")

    arun(main())


@given(kept=st.lists(st.booleans(), max_size=6), seed=st.integers(0, 2**32 - 1))
def test_a_request_completes_at_its_last_message_whatever_the_order(kept, seed):
    """Fan-outs of 0..6 with dropped children, messages in any order: the future is
    resolved exactly when the last message that resolves a path arrives (``Open``
    resolves none), with the depth-0 output's value, and ``on_end(rid, False)`` once."""

    async def main():
        ends = Ends()
        reqs = Requests(parts_and_whole(), timeout_s=60, on_end=ends)
        reqs.open()  # request 0 stays open: completion is per request
        req = reqs.open(events=True)
        msgs = messages(req.rid, kept)
        random.Random(seed).shuffle(msgs)
        resolving = sum(1 for _, m in msgs if not isinstance(m, Open))
        seen = 0
        for output, msg in msgs:
            assert reqs.deliver(output, msg) is None  # the event buffer is far from full
            seen += not isinstance(msg, Open)
            assert req.future.done() == (seen == resolving)
        assert req.future.result() == sum(kept)
        assert ends.calls == [(req.rid, False)]
        assert reqs.get(req.rid) is None and len(reqs) == 1
        events = [ev async for ev in iterate_events(req)]
        assert events[-1] == Event("whole", (req.rid,), sum(kept), final=True)
        streamed = sorted((ev.path, ev.value) for ev in events[:-1])
        assert streamed == [((req.rid, i), f"w{i}") for i, keep in enumerate(kept) if keep]
        assert not any(ev.final for ev in events[:-1])
        reqs.close("test over")

    arun(main())


@given(
    kept=st.lists(st.booleans(), min_size=1, max_size=5),
    repeats=st.lists(st.integers(1, 3), min_size=9, max_size=9),
    seed=st.integers(0, 2**32 - 1),
)
def test_replayed_messages_are_delivered_once(kept, repeats, seed):
    """Every message delivered 1-3 times in a random order (a replica replayed after a
    failure): each surviving child is one event, the result and ``on_end`` come once."""

    async def main():
        ends = Ends()
        reqs = Requests(parts_and_whole(), timeout_s=60, on_end=ends)
        req = reqs.open(events=True)
        msgs = messages(req.rid, kept)
        replayed = [m for m, times in zip(msgs, repeats, strict=False) for _ in range(times)]
        random.Random(seed).shuffle(replayed)
        for output, msg in replayed:
            reqs.deliver(output, msg)
        assert req.future.result() == sum(kept)
        assert ends.calls == [(req.rid, False)]
        events = [ev async for ev in iterate_events(req)]
        paths = [ev.path for ev in events if not ev.final]
        assert sorted(paths) == [(req.rid, i) for i, keep in enumerate(kept) if keep]
        assert [ev for ev in events if ev.final] == [events[-1]]

    arun(main())


def test_a_replay_with_another_value_does_not_replace_the_first():
    async def main():
        reqs = Requests(parts_and_whole(), timeout_s=60)
        req = reqs.open(events=True)
        rid = req.rid
        reqs.deliver("whole", Item((rid,), "first"))
        reqs.deliver("whole", Item((rid,), "second"))  # its path is already resolved
        reqs.deliver("parts", Item((rid, 0), "a"))
        reqs.deliver("parts", Item((rid, 0), "a again"))
        assert not req.future.done()  # "parts" still waits for its Done
        reqs.deliver("parts", Done((rid,), 1, "text"))
        assert req.future.result() == "first"
        events = [ev async for ev in iterate_events(req)]
        assert events == [Event("parts", (rid, 0), "a"), Event("whole", (rid,), "first", final=True)]

    arun(main())


def test_a_stream_reader_that_is_behind_makes_deliver_return_a_future():
    async def main():
        reqs = Requests(parts_and_whole(), timeout_s=60, event_buffer=3)
        req = reqs.open(events=True)
        rid = req.rid
        waits = [reqs.deliver("parts", Item((rid, i), i)) for i in range(4)]
        assert waits[:2] == [None, None]
        assert waits[2] is not None and waits[3] is not None  # the buffer is at capacity
        await settle()
        assert not waits[2].done()
        batch = await req.events.get_batch(10)  # the reader catches up
        assert [ev.value for ev in batch] == [0, 1, 2, 3]
        assert waits[2].done() and waits[3].done()
        # A depth-0 output is the result, not an event: it never makes a sender wait.
        assert reqs.deliver("whole", Item((rid,), 4)) is None
        reqs.close("test over")

    arun(main())


def test_several_depth0_outputs_give_a_dict_and_final_events_in_declaration_order():
    async def main():
        p = alto.Pipeline("two")
        x = p.input()
        p.output(x.map(str.upper, name="upper"))
        p.output(x.filter(bool, name="nonempty"))
        reqs = Requests(p, timeout_s=60)
        req = reqs.open(events=True)
        reqs.deliver("nonempty", Tombstone((req.rid,)))  # dropped: its value is None
        assert not req.future.done()
        reqs.deliver("upper", Item((req.rid,), "A"))
        assert req.future.result() == {"upper": "A", "nonempty": None}
        events = [ev async for ev in iterate_events(req)]
        assert events == [
            Event("upper", (req.rid,), "A", final=True),
            Event("nonempty", (req.rid,), None, final=True),
        ]

    arun(main())


def test_fail_resolves_the_future_with_the_error_and_interrupts_once():
    async def main():
        ends = Ends()
        reqs = Requests(parts_and_whole(), timeout_s=60, event_buffer=1, on_end=ends)
        other = reqs.open()
        req = reqs.open(events=True)
        rid = req.rid
        wait = reqs.deliver("parts", Item((rid, 0), "a"))
        assert wait is not None and not wait.done()  # the reader is behind
        error = ValueError("stage broke")
        assert reqs.fail(rid, error) is True
        assert req.future.exception() is error
        assert wait.done()  # the reader may be gone: senders must not wait for it
        assert ends.calls == [(rid, True)]
        assert reqs.fail(rid, ValueError("again")) is False  # ends once only
        assert reqs.deliver("parts", Done((rid,), 1, "text")) is None
        assert ends.calls == [(rid, True)]
        assert reqs.get(rid) is None and reqs.get(other.rid) is other
        got = []
        with pytest.raises(ValueError, match="stage broke"):
            async for ev in iterate_events(req):
                got.append(ev)
        assert got == [Event("parts", (rid, 0), "a")]  # what came before the error
        assert not other.future.done()
        reqs.close("test over")

    arun(main())


def test_a_request_still_open_at_its_timeout_fails_naming_the_outputs_it_waits_for():
    async def main():
        ends = Ends()
        reqs = Requests(parts_and_whole(), timeout_s=0.05, on_end=ends)
        req = reqs.open()
        reqs.deliver("parts", Done((req.rid,), 0, "text"))  # "parts" is complete
        await asyncio.sleep(0.3)
        error = req.future.exception()
        assert isinstance(error, alto.RequestTimeout)
        assert error.request_id == req.rid
        assert error.waiting_for == ["whole"]
        assert "'whole'" in str(error) and "'parts'" not in str(error)
        assert ends.calls == [(req.rid, True)]
        assert len(reqs) == 0

    arun(main())


def test_a_completed_request_is_not_timed_out_later():
    async def main():
        ends = Ends()
        reqs = Requests(parts_and_whole(), timeout_s=0.05, on_end=ends)
        req = reqs.open()
        for output, msg in messages(req.rid, [True, False]):
            reqs.deliver(output, msg)
        await asyncio.sleep(0.3)
        assert req.future.result() == 1
        assert ends.calls == [(req.rid, False)]

    arun(main())


def test_forget_cancels_the_future_and_interrupts_its_work():
    async def main():
        ends = Ends()
        reqs = Requests(parts_and_whole(), timeout_s=60, on_end=ends)
        req = reqs.open()
        reqs.forget(req.rid)
        assert req.future.cancelled()
        assert ends.calls == [(req.rid, True)]
        assert len(reqs) == 0
        for output, msg in messages(req.rid, [True]):
            assert reqs.deliver(output, msg) is None  # late output of a forgotten request
        reqs.forget(req.rid)  # no longer open: nothing happens
        assert reqs.fail(req.rid, ValueError()) is False
        assert ends.calls == [(req.rid, True)]

    arun(main())


def test_close_fails_every_open_request_with_the_reason():
    async def main():
        ends = Ends()
        reqs = Requests(parts_and_whole(), timeout_s=60, on_end=ends)
        opened = [reqs.open() for _ in range(3)]
        for output, msg in messages(opened[1].rid, []):
            reqs.deliver(output, msg)
        reqs.close("runtime closed")
        assert opened[1].future.result() == 0
        for req in (opened[0], opened[2]):
            with pytest.raises(RuntimeError, match="runtime closed"):
                req.future.result()
        assert sorted(ends.calls) == [(0, True), (1, False), (2, True)]
        assert len(reqs) == 0

    arun(main())


@given(order=st.permutations(range(12)), count=st.integers(0, 12))
def test_ended_holds_exactly_the_added_ids_in_memory_for_the_open_ones(order, count):
    """Ids ended in any order: membership is exact, the low-water mark is the first id
    not ended, and only ids above it are held one by one."""
    added = order[:count]
    ended = Ended()
    for i, rid in enumerate(added):
        ended.add(rid)
        so_far = set(added[: i + 1])
        low = next(r for r in range(13) if r not in so_far)
        assert ended.low == low
        assert ended.above == {r for r in so_far if r > low}
        assert len(ended) == len(ended.above)
    assert [r for r in range(14) if r in ended] == sorted(added)
    assert "0" not in ended and None not in ended  # only request ids are members
    ended.update(added)  # ending twice changes nothing
    assert [r for r in range(14) if r in ended] == sorted(added)


def test_ended_memory_stays_bounded_when_requests_end_out_of_order_by_a_little():
    """Requests end in blocks of 10 in reverse order: never more than 9 ids are held."""
    ended = Ended()
    held = 0
    for start in range(0, 10_000, 10):
        for rid in reversed(range(start, start + 10)):
            ended.add(rid)
            held = max(held, len(ended))
    assert ended.low == 10_000 and len(ended) == 0
    assert held == 9


def test_admission_holds_at_most_its_limit_and_forgets_a_request_whose_caller_left():
    """Admission (both runtimes admit through it): the third caller waits for a slot; a
    caller that leaves its block with the request still open stops that request's work."""

    async def main():
        ends = Ends()
        requests = Requests(parts_and_whole(), timeout_s=30, on_end=ends)
        admission = Admission(requests, 2)
        order: list[str] = []
        release = asyncio.Event()

        async def caller(name: str) -> None:
            async with admission.admit() as req:
                order.append(f"{name} in ({req.rid})")
                await release.wait()
            order.append(f"{name} out")

        tasks = [asyncio.ensure_future(caller(n)) for n in "abc"]
        await settle()
        held = (list(order), admission.stats())
        release.set()
        await asyncio.gather(*tasks)
        return held, order, ends.calls, admission.stats()

    (held, stats_held), order, calls, stats_after = arun(main())
    assert held == ["a in (0)", "b in (1)"] and stats_held == {"max_requests": 2, "open": 2}
    assert order[-1] == "c out" and "c in (2)" in order
    assert sorted(calls) == [(0, True), (1, True), (2, True)]  # never completed: forgotten, work stopped
    assert stats_after == {"max_requests": 2, "open": 0}


def test_a_held_slot_is_given_back_when_its_request_ends():
    """``hold`` (a stream read in several calls, on Ray): the slot comes back when the
    request's future is done, not when the caller returns."""

    async def main():
        requests = Requests(parts_and_whole(), timeout_s=30)
        admission = Admission(requests, 1)
        req = await admission.hold(events=True)
        blocked = asyncio.ensure_future(admission.hold())
        await settle()
        waiting = not blocked.done()
        for output, msg in messages(req.rid, [True, False]):
            requests.deliver(output, msg)
        events, done = await take_events(req)
        second = await asyncio.wait_for(blocked, 5)
        return waiting, events, done, second.rid

    waiting, events, done, second = arun(main())
    assert waiting and second == 1
    assert done and [e.value for e in events] == ["w0", 1] and events[-1].final
