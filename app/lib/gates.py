"""Bounded, fair waiting for a limited thing (a provider's connections, the turns to start an
answer), with what it does in /metrics.

A `Gate` has `limit` places; callers take them in arrival order (no newcomer overtakes one
that waits). At most `queue` callers wait, each for at most `wait` seconds; past either bound
`Full` is raised at once (or when the wait runs out), so that the caller can answer 503 with
`Retry-After` before doing any work. The gauges are read at scrape time; each wait is one
observation of the histogram.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from types import TracebackType

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

WAITS = Histogram(
    "chatwithme_gate_wait_seconds",
    "Time spent waiting for a place: a provider connection (gate provider:<name>) or a turn "
    "to start an answer (gate chat_start); places taken at once are not counted",
    ["gate"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
REFUSED = Counter(
    "chatwithme_gate_refused",
    "Callers turned away by a gate (its queue full, or its wait over): answered 503",
    ["gate"],
)


class Full(Exception):
    """No place, and no room (or time) to wait for one."""

    def __init__(self, gate: str, retry_after: int) -> None:
        super().__init__(f"{gate} is full")
        self.gate = gate
        self.retry_after = retry_after


class Gate:
    def __init__(
        self, name: str, limit: int, *, queue: int | None = None, wait: float | None = None
    ) -> None:
        self.name = name
        self.limit = limit
        self.queue = queue  # None: unbounded
        self.wait = wait  # None: as long as it takes
        self.in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        GATES.watch(self)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a place if one is free and nobody waits for it."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        if self.queue is not None and len(self._waiters) >= self.queue:
            REFUSED.labels(gate=self.name).inc()
            raise Full(self.name, self._retry_after())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        started = time.monotonic()
        try:
            if self.wait is None:
                await future
            else:
                await asyncio.wait_for(asyncio.shield(future), self.wait)
        except BaseException as exc:
            if future.done() and not future.cancelled():
                self._release_one()  # handed a place as it gave up: pass it on
            else:
                future.cancel()
                self._discard(future)
            if isinstance(exc, TimeoutError):
                REFUSED.labels(gate=self.name).inc()
                raise Full(self.name, self._retry_after()) from None
            raise
        finally:
            WAITS.labels(gate=self.name).observe(time.monotonic() - started)

    def _discard(self, future: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(future)

    def release(self) -> None:
        self._release_one()

    def _release_one(self) -> None:
        """Hand the place to the first waiter still waiting, or give it back."""
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # the place goes to it: in_use stays
                return
        self.in_use -= 1

    def _retry_after(self) -> int:
        """Seconds worth waiting before trying again: about what the queue takes to clear."""
        return max(1, min(30, round(self.wait or 1)))

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class GateCollector(Collector):
    """The gates' places in use and callers waiting, read at scrape time."""

    def __init__(self) -> None:
        self._gates: weakref.WeakSet[Gate] = weakref.WeakSet()
        self._lock = threading.Lock()

    def watch(self, gate: Gate) -> None:
        with self._lock:
            self._gates.add(gate)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            gates = list(self._gates)
        limit = GaugeMetricFamily("chatwithme_gate_limit", "Places of a gate", labels=["gate"])
        in_use = GaugeMetricFamily(
            "chatwithme_gate_in_use", "Places of a gate taken now", labels=["gate"]
        )
        waiting = GaugeMetricFamily(
            "chatwithme_gate_waiting", "Callers waiting for a place now", labels=["gate"]
        )
        totals: dict[str, list[int]] = {}
        for gate in gates:
            total = totals.setdefault(gate.name, [0, 0, 0])
            total[0] += gate.limit
            total[1] += gate.in_use
            total[2] += gate.waiting
        for name, (size, used, queued) in sorted(totals.items()):
            limit.add_metric([name], size)
            in_use.add_metric([name], used)
            waiting.add_metric([name], queued)
        yield from (limit, in_use, waiting)


GATES = GateCollector()
REGISTRY.register(GATES)
