"""A small asyncpg pool of its own for the hottest reads: the conversation list, message pages.

Each of those requests is one statement (app/db/compiled.py). Run on the request's SQLAlchemy
session it also paid for the session, a pool checkout through greenlets and a commit, about as
much CPU as everything else in the request. And SQLAlchemy's asyncio pool gives a connection
that comes back to whichever request asks next, not to the one that waited longest: at 32
concurrent requests on 10 connections the median was 14 ms and the p95 150-350 ms. asyncpg's
pool has the same habit (a request arriving as a connection comes back takes it, and the one
that was woken goes to the back of the queue), so requests take turns at a semaphore first,
which asyncio serves first come, first served.

What a session has written and not committed is visible only on its own connection, so a read
inside an open transaction still runs there (`CompiledQuery.fetch` decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import asyncpg

from app.lib.errors import DatabaseUnavailable, TimedOut

# What a failure to reach or keep the server raises (the server restarted, the socket is gone).
CONNECTION_ERRORS = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    # A connection whose server went away mid-operation can be left in a state asyncpg
    # refuses to go on from ("cannot switch to state 12; another operation is in progress").
    asyncpg.exceptions.InternalClientError,
)
CLOSE_SECONDS = 5.0


class ReadPool:
    """Connections for single-statement reads outside any transaction; opened on first use."""

    def __init__(
        self,
        connect_kwargs: Callable[[], dict[str, Any]],
        size: int,
        timeout: float,
        begin: str | None = None,
    ):
        self._connect_kwargs = connect_kwargs
        # Through a transaction pooler: the settings each read's transaction starts with
        # (app/db/pooler.py); otherwise None and a read is one round trip, no transaction.
        self._begin = f"BEGIN; {begin}" if begin else None
        self.size = size
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._turns: asyncio.Semaphore | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        """What `asyncpg.connect` needs to reach the same server, as this pool does."""
        return self._connect_kwargs()

    @property
    def started(self) -> bool:
        return self._pool is not None

    @property
    def in_use(self) -> int:
        if self._pool is None:
            return 0
        return int(self._pool.get_size() - self._pool.get_idle_size())

    async def start(self) -> None:
        """Make the pool (no connection yet: the app starts without waiting for the server)."""
        self._turns = asyncio.Semaphore(self.size)
        self._pool = await asyncpg.create_pool(
            min_size=0,
            max_size=self.size,
            init=_decode_json,
            reset=_nothing_to_reset,
            **self._connect_kwargs(),
        )

    async def close(self) -> None:
        """Close the connections once their reads end (a read still stuck after 5 s has its
        connection cut: shutdown does not wait on it)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), CLOSE_SECONDS)
            except TimeoutError:
                pool.terminate()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """The rows of one statement, 503 (DatabaseUnavailable) when the server is out of reach
        or every connection stays busy for the pool timeout."""
        assert self._pool is not None and self._turns is not None, "ReadPool.start() first"
        try:
            async with asyncio.timeout(self._timeout):
                await self._turns.acquire()
        except TimeoutError as exc:
            raise DatabaseUnavailable("every database connection is busy") from exc
        try:
            # A turn means a connection is free (or may be opened): no wait here.
            async with self._pool.acquire() as connection:
                if self._begin is None:
                    rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
                else:
                    rows = await _in_transaction(connection, self._begin, sql, args)
                return rows
        except asyncpg.QueryCanceledError as exc:  # statement_timeout: the connection is fine
            raise TimedOut() from exc
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(f"the database connection failed: {exc!r}") from exc
        finally:
            self._turns.release()


async def _in_transaction(
    connection: asyncpg.Connection, begin: str, sql: str, args: tuple[Any, ...]
) -> list[asyncpg.Record]:
    """`sql`'s rows in a transaction that starts with `begin` (one simple-query round trip)."""
    await connection.execute(begin)
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
    except BaseException:
        with contextlib.suppress(Exception):  # a connection that failed is not reused anyway
            await connection.execute("ROLLBACK")
        raise
    await connection.execute("COMMIT")
    return rows


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """Only single SELECTs run here: they leave no settings, cursors, listeners or locks
    behind, so a returned connection needs no `RESET ALL` round trip. (asyncpg still rolls back
    a transaction left open, before calling this.)"""


async def _decode_json(connection: asyncpg.Connection) -> None:
    """JSON and JSONB columns as Python values, as SQLAlchemy's asyncpg dialect gives them."""
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
