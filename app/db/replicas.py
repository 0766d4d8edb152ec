"""Read replicas (DATABASE_REPLICA_URLS): which replica, if any, may serve a user's read.

A read may run on a replica that is up, is a replica (in recovery), is at most
DB_REPLICA_MAX_LAG behind the primary, and has replayed the caller's own last write; otherwise it
runs on the primary. The caller's reads never miss their own writes, on any process:

- After a commit that wrote for a user, `record` upserts the primary's WAL position (taken
  after the commit, so at or past its commit record) into `write_positions`, keyed by userId,
  before the request answers. Every process reads that one row.
- A routed read first reads that row on the primary (one primary-key lookup on the primary's
  read pool) and compares it with each replica's replayed position. Those positions are read by
  a background task per replica, every DB_REPLICA_POLL seconds, so routing never waits on a
  replica; a cached position is a lower bound (replay only moves forward), so it errs towards
  the primary, never towards a stale read.

Lag is measured by WAL position, not by `now() - pg_last_xact_replay_timestamp()`, which grows
on a replica that is fully caught up whenever nothing is written. The primary's write position
is sampled on every poll; a replica's lag is how long ago the primary first had WAL that the
replica has not replayed yet (0 when it has replayed all the primary had at the last sample).
It is exact to about one poll interval.

An entry that is not in recovery (a primary, or a promoted former replica) is never read from:
its positions do not compare with the primary's, so read-your-writes could not be kept. It is
reported (a warning once, health) and watched, in case it is a replica still starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.engine import make_url

from app.db.reads import CONNECTION_ERRORS, ReadPool
from app.lib.backoff import Backoff, keep_running
from app.lib.metrics import BACKGROUND_CRASHES, ROUTED_READS

if TYPE_CHECKING:
    from app.db.engine import Database

logger = logging.getLogger(__name__)

# Byte offsets (pg_lsn - '0/0'), which compare as integers. The primary's *write* position,
# not its insert position: at a page boundary the insert position counts the next page's header,
# which no replica replays until more WAL comes, so an idle replica would never catch up with it.
PRIMARY_POSITION = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
REPLICA_POSITION = """
SELECT pg_is_in_recovery(),
       (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint,
       (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END
"""
# A WAL record that runs past the last page the primary wrote cannot be replayed until the rest
# comes, and the primary writes that rest only when something flushes (a commit): an idle
# replica then has received all the primary wrote and replayed up to that record's start. Seen
# on PostgreSQL 15: write 0/3006000, received 0/3006000, replayed 0/3005E70, for as long as
# nothing was committed. For lag, a gap of less than a page between received and replayed,
# with replay running, counts as replayed (reads of one's own writes still compare the true
# replayed position).
WAL_PAGE_BYTES = 8192
USER_POSITION = 'SELECT lsn FROM write_positions WHERE "userId" = $1'
# After a commit, the write position is past its commit record: a commit writes and flushes
# its WAL before it returns, unless synchronous_commit is off; then the insert position (which
# is past it too, but may wait for the next record to be replayed: reads stay on the primary
# that much longer).
RECORD_POSITION = """
INSERT INTO write_positions ("userId", lsn, "updatedAt")
VALUES ($1, (CASE WHEN current_setting('synchronous_commit') = 'off'
                  THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_lsn() END
             - '0/0'::pg_lsn)::bigint,
        timezone('UTC', now()))
ON CONFLICT ("userId") DO UPDATE
SET lsn = GREATEST(write_positions.lsn, EXCLUDED.lsn), "updatedAt" = EXCLUDED."updatedAt"
"""
# A poll that takes longer than this counts as a failure (the replica hangs).
POLL_DEADLINE = 2.0


def replica_name(raw_url: str) -> str:
    """host:port/database of a replica URL, for logs, health and metrics (no credentials)."""
    url = make_url(raw_url.strip())
    host = url.host or str(url.query.get("host") or "localhost")
    return f"{host}:{url.port or 5432}/{url.database}"


class PrimaryClock:
    """Recent samples of the primary's WAL write position, to tell how far behind a replica
    is in seconds."""

    def __init__(self, keep_seconds: float) -> None:
        self._keep = keep_seconds
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, position: int, at: float | None = None) -> None:
        at = time.monotonic() if at is None else at
        self._samples.append((at, position))
        while self._samples and at - self._samples[0][0] > self._keep:
            self._samples.popleft()

    def lag(self, replayed: int, now: float | None = None) -> float | None:
        """Seconds since the primary first had WAL past `replayed`; None without samples."""
        if not self._samples:
            return None
        now = time.monotonic() if now is None else now
        if replayed >= self._samples[-1][1]:
            return 0.0
        # The oldest sample already past `replayed` (or the oldest kept: at least that long).
        first = next((at for at, position in self._samples if position > replayed))
        return max(0.0, now - first)


@dataclass(slots=True)
class ReplicaState:
    """What the last poll of one replica showed."""

    up: bool = False
    in_recovery: bool | None = None
    replayed: int | None = None
    lag: float | None = None
    polled_at: float = 0.0
    error: str | None = "not polled yet"


class Replica:
    """One replica: its engine and read pool (a `Database`), and its watcher."""

    def __init__(self, name: str, database: Database, poll: float, max_lag: float) -> None:
        self.name = name
        self.database = database
        self.state = ReplicaState()
        self._poll = poll
        self._max_lag = max_lag
        self._backoff = Backoff(f"read replica {name}", logger, base=max(poll, 0.25))
        self._lagging = False

    @property
    def reads(self) -> ReadPool:
        assert self.database.reads is not None
        return self.database.reads

    def usable(self, now: float) -> bool:
        """Up, in recovery, polled recently and no further behind than DB_REPLICA_MAX_LAG."""
        state = self.state
        return (
            state.up
            and state.in_recovery is True
            and state.replayed is not None
            and state.lag is not None
            and state.lag <= self._max_lag
            and now - state.polled_at <= self._max_lag
        )

    def lost(self, error: BaseException) -> None:
        """A read here failed for want of the server: skip it until a poll succeeds again."""
        self._backoff.failed(error)
        self.state.up = False
        self.state.lag = None  # unknown until it answers again
        self.state.error = self._backoff.last_error

    async def watch(self, clock: PrimaryClock) -> None:
        """Poll on one connection of its own; reconnect with backoff when it fails."""
        while True:
            try:
                await self._poll_until_failure(clock)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError, TimeoutError) as exc:
                self.lost(exc)
            await self._backoff.wait()

    async def _poll_until_failure(self, clock: PrimaryClock) -> None:
        async with asyncio.timeout(POLL_DEADLINE):
            connection = await asyncpg.connect(**self.reads.connect_kwargs())
        try:
            while True:
                async with asyncio.timeout(POLL_DEADLINE):
                    in_recovery, replayed, received, paused = await connection.fetchrow(
                        REPLICA_POSITION
                    )
                waiting = (
                    not paused
                    and replayed is not None
                    and received is not None
                    and 0 < received - replayed < WAL_PAGE_BYTES
                )
                reached = received if waiting else replayed  # at most a record waiting
                self._observe(bool(in_recovery), replayed, clock, reached)
                await asyncio.sleep(self._poll)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(timeout=1), 2)
            if not connection.is_closed():
                connection.terminate()

    def _observe(
        self,
        in_recovery: bool,
        replayed: int | None,
        clock: PrimaryClock,
        reached: int | None = None,
    ) -> None:
        """One poll's answer: `replayed` is what reads of one's own writes compare with,
        `reached` (default: `replayed`) what the lag is measured from."""
        reached = replayed if reached is None else reached
        state = self.state
        if not in_recovery and state.in_recovery is not False:
            logger.warning(
                "DATABASE_REPLICA_URLS entry %s is not a replica (not in recovery): "
                "no reads go there", self.name,
            )  # fmt: skip
        state.up, state.in_recovery, state.polled_at = True, in_recovery, time.monotonic()
        state.replayed = replayed if in_recovery else None
        state.lag = clock.lag(reached) if in_recovery and reached is not None else None
        state.error = None if in_recovery else "not in recovery (a primary?)"
        self._backoff.succeeded()
        # Unknown (no sample of the primary yet) is not logged as behind.
        lagging = state.lag is not None and state.lag > self._max_lag
        if in_recovery and lagging != self._lagging:
            self._lagging = lagging
            if lagging:
                logger.warning(
                    "read replica %s is more than %g s behind: reads go to the primary",
                    self.name, self._max_lag,
                )  # fmt: skip
            else:
                logger.warning("read replica %s has caught up: reads go there again", self.name)


class Replicas:
    """The process's replicas, their watchers, and the read-your-writes positions."""

    def __init__(
        self,
        primary_reads: ReadPool,
        replicas: list[Replica],
        poll: float,
        max_lag: float,
    ) -> None:
        self.replicas = replicas
        self._primary_reads = primary_reads
        self._poll = poll
        self._clock = PrimaryClock(keep_seconds=max_lag + 2 * poll + 1)
        self._clock_backoff = Backoff("the primary's WAL position", logger, base=max(poll, 0.25))
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def build(
        cls,
        urls: tuple[str, ...],
        primary_reads: ReadPool,
        database_for: Callable[[str], Database],
        poll: float,
        max_lag: float,
    ) -> Replicas:
        replicas = []
        for url in urls:
            database = database_for(url)  # refuses a malformed URL, naming the setting
            replicas.append(Replica(replica_name(url), database, poll, max_lag))
        return cls(primary_reads, replicas, poll, max_lag)

    async def start(self) -> None:
        """Open the replicas' read pools (no connection yet) and start the watchers."""
        for replica in self.replicas:
            await replica.reads.start()
        self._tasks.append(asyncio.create_task(self._run("primary position", self._sample)))
        for replica in self.replicas:
            watch = _bind(replica.watch, self._clock)
            self._tasks.append(asyncio.create_task(self._run(f"replica {replica.name}", watch)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for replica in self.replicas:
            await replica.reads.close()
            await replica.database.engine.dispose()

    async def pick(self, user_id: str) -> Replica | None:
        """A replica that has everything `user_id` wrote, or None (read on the primary)."""
        now = time.monotonic()
        candidates = [replica for replica in self.replicas if replica.usable(now)]
        if candidates:
            rows = await self._primary_reads.fetch(USER_POSITION, user_id)
            needed = rows[0][0] if rows else 0
            candidates = [r for r in candidates if (r.state.replayed or 0) >= needed]
        chosen = random.choice(candidates) if candidates else None
        ROUTED_READS.labels(target="replica" if chosen else "primary").inc()
        return chosen

    async def record(self, user_id: str) -> None:
        """After a commit that wrote for `user_id`: their reads wait for a replica to replay
        past this point (503 when the primary cannot be reached to record it)."""
        await self._primary_reads.fetch(RECORD_POSITION, user_id)

    def replica_states(self) -> list[tuple[str, bool, float | None]]:
        """(name, takes reads, lag seconds) of each replica, for health and metrics."""
        now = time.monotonic()
        return [(r.name, r.usable(now), r.state.lag) for r in self.replicas]

    def error_of(self, name: str) -> str | None:
        """Why the replica `name` last failed (None while its polls succeed)."""
        return next((r.state.error for r in self.replicas if r.name == name), None)

    async def _sample(self) -> None:
        """The primary's write position, every poll (the clock replica lag is measured by)."""
        while True:
            try:
                rows = await self._primary_reads.fetch(PRIMARY_POSITION)
            except Exception as exc:  # the primary is away: lags stay as last measured
                self._clock_backoff.failed(exc)
                await self._clock_backoff.wait()
                continue
            self._clock_backoff.succeeded()
            self._clock.add(rows[0][0])
            await asyncio.sleep(self._poll)

    async def _run(self, name: str, work: Callable[[], Any]) -> None:
        backoff = Backoff(f"the {name} watcher", logger)
        await keep_running(
            work, backoff, on_crash=BACKGROUND_CRASHES.labels(task="replica watcher").inc
        )


def _bind(method: Callable[[PrimaryClock], Any], clock: PrimaryClock) -> Callable[[], Any]:
    def run() -> Any:
        return method(clock)

    return run
