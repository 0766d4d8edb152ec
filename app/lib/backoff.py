"""Retrying what a lost database (or any peer) breaks: exponential backoff with full jitter,
bounded, that logs once per change of state rather than once per try, and a way to keep a
background task running whatever it raises.

Full jitter (a delay drawn uniformly from zero to the bound) spreads the reconnects of many
processes that lost the same server at the same moment, so they do not all knock at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable


class Backoff:
    """The delays between tries of one thing (`name`), and its up/down state.

    `failed()` after a failed try: the first failure after success logs a warning, later ones
    only at debug level. `succeeded()` after a successful try: logs once that it is back.
    `wait()` sleeps the next delay: uniform in [0, min(cap, base * 2**n)] for the n-th
    failure in a row, never below `floor`.
    """

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        *,
        base: float = 0.25,
        cap: float = 5.0,
        floor: float = 0.05,
    ) -> None:
        self.name = name
        self.logger = logger
        self.base = base
        self.cap = cap
        self.floor = floor
        self.failures = 0  # in a row, since the last success
        self.attempts = 0  # failed tries, ever: for metrics and tests
        self.up = False
        self.last_error: str | None = None
        self.down_since: float | None = time.monotonic()  # not up until the first success
        self._streak = 0  # failures before the last success
        self._up_at = 0.0
        self._wake = asyncio.Event()

    def failed(self, error: BaseException | str, *, log: bool = True) -> None:
        """Record a failed try. A success that did not last (up for less than `cap`) does not
        start the delays afresh: a peer that accepts and then drops at once is not retried in
        a tight loop."""
        if self.up and time.monotonic() - self._up_at < self.cap:
            self.failures = self._streak
        self.failures += 1
        self.attempts += 1
        self.last_error = error if isinstance(error, str) else _describe(error)
        name, error = self.name, self.last_error
        if not log:
            pass
        elif self.up or self.failures == 1:
            self.logger.warning("%s is down (%s); retrying with backoff", name, error)
        else:
            self.logger.debug("%s still down (try %d): %s", name, self.failures, error)
        if self.up:
            self.down_since = time.monotonic()
        self.up = False

    def succeeded(self) -> None:
        """Record a successful try (logs only when it was down before)."""
        if not self.up and self.failures:
            self.logger.warning("%s is back after %d failed tries", self.name, self.failures)
        self._streak = self.failures
        self._up_at = time.monotonic()
        self.up = True
        self.failures = 0
        self.last_error = None
        self.down_since = None

    def reset(self) -> None:
        """Forget earlier failures without logging."""
        self.failures = 0

    def delay(self) -> float:
        """The next delay (full jitter under the bound)."""
        bound = min(self.cap, self.base * 2 ** max(self.failures - 1, 0))
        return max(self.floor, random.uniform(0, bound))

    async def wait(self) -> None:
        """Sleep the next delay, or less if `wake()` is called meanwhile."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.delay())

    def wake(self) -> None:
        """Cut the current wait short (say, the peer is known to be back)."""
        self._wake.set()

    def down_for(self) -> float:
        """Seconds since it went down (0 while up)."""
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since


# A task that ran this long before it failed starts its backoff afresh.
STABLE_SECONDS = 60.0


async def keep_running(
    run: Callable[[], Awaitable[None]],
    backoff: Backoff,
    *,
    on_crash: Callable[[], None] = lambda: None,
) -> None:
    """Run `run` again whenever it ends or raises, after a backoff: a background task dies of
    cancellation only. An exception it did not expect is logged with its traceback (the first
    of a series of quick failures; the rest at debug level) and counted through `on_crash`."""
    while True:
        started = time.monotonic()
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_crash()
            if time.monotonic() - started > STABLE_SECONDS:
                backoff.reset()
            quick_again = backoff.failures > 0
            if not quick_again:
                backoff.logger.exception("%s failed unexpectedly; restarting it", backoff.name)
            backoff.failed(exc, log=quick_again)
        else:
            backoff.failed(f"{backoff.name} ended")
        await backoff.wait()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
