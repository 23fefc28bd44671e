"""The item scope (``alto.engine._scope``): cancelling a request interrupts exactly the
item in scope -- its current wait and every later one until the scope is left -- and
nothing else: not the lane, not the next item, not a shielded wait."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alto.engine._scope import IDLE, SHIELDED, ItemScope, drive


def run_lane(body, scope: ItemScope, on_block=lambda: None):
    """Start ``body()`` as a lane task driven in ``scope``; returns the task."""
    return asyncio.get_running_loop().create_task(drive(body(), scope, on_block))


def test_cancel_interrupts_the_wait_of_the_item_in_scope_and_the_lane_goes_on():
    log = []

    async def main():
        scope = ItemScope()
        gate = asyncio.Event()

        async def lane():
            for rid in (1, 2):
                scope.enter(rid)
                try:
                    await asyncio.wait_for(gate.wait(), 5)
                    log.append((rid, "done"))
                except asyncio.CancelledError:
                    log.append((rid, "interrupted"))
                finally:
                    scope.leave()

        task = run_lane(lane, scope)
        await asyncio.sleep(0.01)
        scope.cancel()  # item 1 is in scope
        await asyncio.sleep(0.01)
        gate.set()  # item 2 runs to the end: the cancel was item 1's only
        await asyncio.wait_for(task, 5)
        return scope.rid

    assert asyncio.run(main()) is IDLE
    assert log == [(1, "interrupted"), (2, "done")]


def test_an_item_that_swallows_its_cancellation_is_cancelled_at_its_next_wait():
    waits = []

    async def main():
        scope = ItemScope()

        async def lane():
            scope.enter(3)
            try:
                for _ in range(3):
                    try:
                        await asyncio.sleep(5)
                        waits.append("slept")
                    except asyncio.CancelledError:
                        waits.append("cancelled")  # swallowed: level-triggered, so again next time
            finally:
                scope.leave()

        task = run_lane(lane, scope)
        await asyncio.sleep(0.01)
        scope.cancel()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert waits == ["cancelled", "cancelled", "cancelled"]


def test_a_shielded_wait_is_not_interrupted():
    async def main():
        scope = ItemScope()
        out = []

        async def lane():
            scope.enter(4)
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                out.append("interrupted")
                scope.shield()  # reporting the failure is no longer the request's own work
                await asyncio.sleep(0.02)
                out.append("reported")
            finally:
                scope.leave()

        task = run_lane(lane, scope)
        await asyncio.sleep(0.01)
        scope.cancel()
        await asyncio.sleep(0)
        scope.cancel()  # idempotent; and it does not reach the shielded wait
        await asyncio.wait_for(task, 5)
        return out

    assert asyncio.run(main()) == ["interrupted", "reported"]


def test_cancel_when_idle_does_not_leak_into_the_next_item():
    async def main():
        scope = ItemScope()
        scope.cancel()  # nothing in scope
        assert not scope.cancelled

        async def lane():
            scope.enter(5)
            try:
                await asyncio.sleep(0.01)
                return "finished"
            finally:
                scope.leave()

        return await asyncio.wait_for(run_lane(lane, scope), 5)

    assert asyncio.run(main()) == "finished"


def test_first_wait_of_each_item_asks_for_another_lane_once():
    blocks = []

    async def main():
        scope = ItemScope()

        async def lane():
            for rid, waits in ((1, 3), (2, 0), (3, 1)):  # item 2 never waits
                scope.enter(rid)
                try:
                    for _ in range(waits):
                        await asyncio.sleep(0.001)  # a future: a wait (sleep(0) only yields)
                finally:
                    scope.leave()
            await asyncio.sleep(0.001)  # a wait out of scope: not an item's

        await asyncio.wait_for(run_lane(lane, scope, lambda: blocks.append(scope.rid)), 5)

    asyncio.run(main())
    assert blocks == [1, 3]


def test_shutdown_cancels_the_lane_itself():
    async def main():
        scope = ItemScope()

        async def lane():
            scope.enter(6)
            try:
                await asyncio.sleep(5)
            finally:
                scope.leave()

        task = run_lane(lane, scope)
        await asyncio.sleep(0.01)
        task.cancel()  # not the request: the lane
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled(), scope.rid

    assert asyncio.run(main()) == (True, IDLE)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=8), st.integers(0, 3))
def test_only_the_cancelled_requests_items_are_interrupted(items, victim):
    """Items of several requests through one lane; cancelling ``victim`` whenever one of
    its items is in scope interrupts exactly those items."""
    outcome = []

    async def main():
        scope = ItemScope()

        async def lane():
            for rid, waits in items:
                scope.enter(rid)
                try:
                    for _ in range(waits):
                        await asyncio.sleep(0)
                        if scope.rid == victim:
                            scope.cancel()
                    outcome.append((rid, "ok"))
                except asyncio.CancelledError:
                    outcome.append((rid, "interrupted"))
                finally:
                    scope.leave()

        await asyncio.wait_for(run_lane(lane, scope), 5)

    asyncio.run(main())
    expected = []
    for rid, waits in items:
        # cancelled after its first wait; interrupted at its second, if it has one
        expected.append((rid, "interrupted" if rid == victim and waits >= 2 else "ok"))
    assert outcome == expected
    assert SHIELDED not in [r for r, _ in outcome]
