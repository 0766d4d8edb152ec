"""Backoff with full jitter under a bound, logging once per change of state, and background
tasks that are restarted whatever they raise."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.lib.backoff import Backoff, keep_running

logger = logging.getLogger("tests.backoff")


def test_delays_grow_exponentially_with_full_jitter_and_stay_under_the_bound() -> None:
    backoff = Backoff("peer", logger, base=0.25, cap=5.0, floor=0.05)
    bounds = []
    for _ in range(10):
        backoff.failed("refused")
        delays = [backoff.delay() for _ in range(200)]
        assert all(0.05 <= delay <= 5.0 for delay in delays)
        bounds.append(max(delays))
    assert bounds[0] <= 0.25 and bounds[3] > 0.5  # 0.25, 0.5, 1, 2, then 4 and 5 (the bound)
    assert min(backoff.delay() for _ in range(200)) < 1.0  # jitter: not all at the bound


def test_it_logs_once_when_going_down_and_once_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backoff = Backoff("peer", logger)
    with caplog.at_level(logging.WARNING, logger.name):
        for _ in range(50):
            backoff.failed(ConnectionRefusedError("refused"))
        backoff.succeeded()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "peer is down (ConnectionRefusedError: refused); retrying with backoff",
        "peer is back after 50 failed tries",
    ]
    assert backoff.up and backoff.attempts == 50 and backoff.failures == 0


def test_a_success_that_does_not_last_does_not_start_the_delays_afresh() -> None:
    backoff = Backoff("peer", logger, base=0.25, cap=5.0)
    for _ in range(5):
        backoff.failed("refused")
    backoff.succeeded()
    backoff.failed("dropped at once")  # a peer that accepts, then drops
    assert backoff.failures == 6


async def test_a_background_task_is_restarted_whatever_it_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    crashes = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 4:
            raise RuntimeError("cannot switch to state 12")
        await asyncio.Event().wait()  # then it runs for good

    def crashed() -> None:
        nonlocal crashes
        crashes += 1

    backoff = Backoff("the flaky task", logger, base=0.01, cap=0.05, floor=0.0)
    with caplog.at_level(logging.WARNING, logger.name):
        task = asyncio.create_task(keep_running(flaky, backoff, on_crash=crashed))
        for _ in range(200):
            if runs == 4:
                break
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (runs, crashes) == (4, 3)
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1  # the first of the series; the next two at debug level
