"""Domain metrics in Prometheus form: chat generations, time to first token, provider
failures, the database pool and the answers' notification line. No HTTP framework here:
`llm/` and `chat/` call these."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

GENERATION_STATUSES = ("complete", "incomplete", "error", "cancelled")

GENERATIONS = Counter(
    "chatwithme_chat_generations",
    "Chat answers finished, by model, provider and final status",
    ["model", "provider", "status"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "chatwithme_chat_time_to_first_token_seconds",
    "Time from the chat request to the first text delta of the answer",
    ["model", "provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
)
PROVIDER_FAILURES = Counter(
    "chatwithme_provider_failures",
    "Failed calls to a model provider, by provider and kind of failure",
    ["provider", "kind"],
)
ANSWERS_SWEPT = Counter(
    "chatwithme_chat_answers_swept",
    "Answers closed as interrupted because the process generating them went away",
)
TITLES = Counter(
    "chatwithme_conversation_titles",
    "Conversation titles asked of the title model, by model and outcome (made, failed)",
    ["model", "outcome"],
)
BACKGROUND_CRASHES = Counter(
    "chatwithme_background_task_crashes",
    "Unexpected exceptions of background tasks (each task is restarted after a backoff)",
    ["task"],
)

ROUTED_READS = Counter(
    "chatwithme_db_routed_reads",
    "Reads that could go to a read replica (lists, pages, search, stats, exports), by where "
    "they ran: replica or primary",
    ["target"],
)


def record_generation(
    *, model: str, provider: str | None, status: str, ttft_ms: float | None
) -> None:
    """Count one finished answer; `ttft_ms` is None when no text arrived."""
    provider_label = provider or "none"
    GENERATIONS.labels(model=model, provider=provider_label, status=status).inc()
    if ttft_ms is not None:
        TIME_TO_FIRST_TOKEN.labels(model=model, provider=provider_label).observe(ttft_ms / 1000)


def record_provider_failure(*, provider: str, kind: str) -> None:
    """Count one failed call to `provider` (kind: timeout, rate_limited, auth, ...)."""
    PROVIDER_FAILURES.labels(provider=provider, kind=kind).inc()


class PoolCollector(Collector):
    """Reads the connection pools of the watched engines at scrape time (no polling).

    Engines are held weakly: an app that is gone (tests make many) drops out by itself.
    """

    def __init__(self) -> None:
        self._engines: weakref.WeakSet[Any] = weakref.WeakSet()
        self._read_pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def watch(self, engine: Any, reads: Any = None) -> None:
        """`engine`: anything with a `.pool` (an SQLAlchemy Engine or AsyncEngine); `reads`:
        the app's ReadPool, if it has one."""
        with self._lock:
            self._engines.add(engine)
            if reads is not None:
                self._read_pools.add(reads)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            pools = [engine.pool for engine in self._engines]
            reads = list(self._read_pools)
        size = GaugeMetricFamily("chatwithme_db_pool_size", "Connections the pool may hold")
        in_use = GaugeMetricFamily("chatwithme_db_pool_in_use", "Connections checked out now")
        waiting = GaugeMetricFamily(
            "chatwithme_db_pool_waiting", "Requests waiting for a pooled connection now"
        )
        size.add_metric([], sum(_size(p) for p in pools))
        in_use.add_metric([], sum(_checked_out(p) for p in pools))
        waiting.add_metric([], sum(_waiting(p) for p in pools))
        yield from (size, in_use, waiting)
        read_size = GaugeMetricFamily(
            "chatwithme_db_read_pool_size", "Connections the read pool may hold"
        )
        read_in_use = GaugeMetricFamily(
            "chatwithme_db_read_pool_in_use", "Read pool connections in use now"
        )
        read_size.add_metric([], sum(r.size for r in reads))
        read_in_use.add_metric([], sum(r.in_use for r in reads))
        yield from (read_size, read_in_use)


def _size(pool: Any) -> int:
    size = getattr(pool, "size", None)
    return int(size()) if callable(size) else 0


def _checked_out(pool: Any) -> int:
    checked_out = getattr(pool, "checkedout", None)
    return int(checked_out()) if callable(checked_out) else 0


def _waiting(pool: Any) -> int:
    # SQLAlchemy has no public waiter count: its async queue wraps an asyncio.Queue, made on
    # first use, whose pending getters are the requests waiting for a connection.
    queue = getattr(pool, "_pool", None)
    inner = vars(queue).get("_queue") if queue is not None and hasattr(queue, "__dict__") else None
    getters = getattr(inner, "_getters", None) or ()
    return sum(1 for getter in getters if not getter.done())


POOLS = PoolCollector()
REGISTRY.register(POOLS)


class RelayCollector(Collector):
    """Reads the answers' notification lines (LISTEN/NOTIFY) at scrape time. Each watched
    object has `relay_state()`: (up, seconds down, failed tries, last error) or None."""

    def __init__(self) -> None:
        self._relays: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def watch(self, relay: Any) -> None:
        with self._lock:
            self._relays.add(relay)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with self._lock:
            states = [state for r in self._relays if (state := r.relay_state()) is not None]
        up = GaugeMetricFamily(
            "chatwithme_answer_relay_up",
            "1 while the answers' notification line to the other processes is connected",
        )
        up.add_metric([], 1 if all(state[0] for state in states) else 0)
        down = GaugeMetricFamily(
            "chatwithme_answer_relay_down_seconds", "Seconds the notification line has been down"
        )
        down.add_metric([], max((state[1] for state in states), default=0.0))
        tries = CounterMetricFamily(
            "chatwithme_answer_relay_failed_connects",
            "Failed tries to connect (or keep) the notification line",
        )
        tries.add_metric([], sum(state[2] for state in states))
        yield from (up, down, tries)


RELAYS = RelayCollector()
REGISTRY.register(RELAYS)


class ReplicaCollector(Collector):
    """Reads the read replicas' last polled state at scrape time. Each watched object has
    `replica_states()`: (name, usable, lag seconds or None) per replica."""

    def __init__(self) -> None:
        self._sets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def watch(self, replicas: Any) -> None:
        with self._lock:
            self._sets.add(replicas)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            states = [state for s in self._sets for state in s.replica_states()]
        up = GaugeMetricFamily(
            "chatwithme_db_replica_up",
            "1 while the read replica takes reads (up, in recovery, within DB_REPLICA_MAX_LAG)",
            labels=["replica"],
        )
        lag = GaugeMetricFamily(
            "chatwithme_db_replica_lag_seconds",
            "How long ago the primary first had WAL the replica has not replayed (-1: unknown)",
            labels=["replica"],
        )
        for name, usable, seconds in states:
            up.add_metric([name], 1 if usable else 0)
            lag.add_metric([name], -1 if seconds is None else seconds)
        yield from (up, lag)


REPLICAS = ReplicaCollector()
REGISTRY.register(REPLICAS)
