"""app/lib/gates.py: places taken in arrival order, a bounded queue, a bounded wait."""

from __future__ import annotations

import asyncio

import pytest

from app.lib.gates import Full, Gate


async def test_places_go_to_waiters_in_arrival_order_and_newcomers_do_not_overtake() -> None:
    gate = Gate("test:order", 1)
    await gate.acquire()
    served: list[int] = []

    async def take(n: int) -> None:
        async with gate:
            served.append(n)
            await asyncio.sleep(0)

    waiters = [asyncio.create_task(take(n)) for n in range(5)]
    await asyncio.sleep(0)
    assert gate.waiting == 5
    gate.release()
    late = asyncio.create_task(take(99))  # arrives while a place is being handed over
    await asyncio.gather(*waiters, late)
    assert served == [0, 1, 2, 3, 4, 99]
    assert gate.in_use == 0 and gate.waiting == 0


async def test_a_full_queue_refuses_at_once_with_a_retry_after() -> None:
    gate = Gate("test:queue", 1, queue=1, wait=3)
    await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    with pytest.raises(Full) as refused:
        await gate.acquire()
    assert refused.value.retry_after == 3
    gate.release()
    await first  # the one that waited got the place
    assert gate.in_use == 1 and gate.waiting == 0


async def test_a_wait_past_its_bound_is_refused_and_leaves_no_trace() -> None:
    gate = Gate("test:wait", 1, wait=0.05)
    await gate.acquire()
    with pytest.raises(Full):
        await gate.acquire()
    assert gate.waiting == 0
    gate.release()
    assert gate.in_use == 0
    await gate.acquire()  # free again
    assert gate.in_use == 1


async def test_a_cancelled_waiter_passes_its_place_on() -> None:
    gate = Gate("test:cancel", 1)
    await gate.acquire()
    leaving = asyncio.create_task(gate.acquire())
    staying = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    gate.release()  # handed to `leaving`, which is cancelled before it runs
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    await asyncio.wait_for(staying, 1)
    assert gate.in_use == 1 and gate.waiting == 0
