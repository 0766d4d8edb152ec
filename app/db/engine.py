"""The SQLAlchemy engine and session factory, built from settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import QueuePool

from app.db.pooler import (
    DRIVER_CONNECT_ARGS,
    ENGINE_CONNECT_ARGS,
    per_transaction_sql,
    transaction_pooled,
)
from app.db.reads import ReadPool
from app.db.replicas import Replicas
from app.db.url import search_path_of, to_async_url
from app.db.writes import TrackedSession
from app.lib.errors import ConfigurationError, DatabaseUnavailable
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Database:
    """What the app needs to reach PostgreSQL: an engine and a session factory."""

    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    # Every session shares one connection (tests): background writers must take turns.
    one_connection: bool = False
    # The hot reads' own pool (app/db/reads.py); None when every read must see one
    # connection's transaction (tests).
    reads: ReadPool | None = None
    # DATABASE_REPLICA_URLS (app/db/replicas.py); None without replicas.
    replicas: Replicas | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        if settings.database_url is None:
            raise ConfigurationError(
                "no DATABASE_URL: start the embedded server first (chatwithme serve does)"
            )
        urls = settings.replica_urls
        primary = cls.from_url(settings.database_url, settings, track_writes=bool(urls))
        if not urls:
            return primary
        assert primary.reads is not None
        replicas = Replicas.build(
            urls,
            primary.reads,
            lambda url: cls.from_url(url, settings, name="DATABASE_REPLICA_URLS entry"),
            poll=settings.db_replica_poll,
            max_lag=settings.db_replica_max_lag,
        )
        return dataclasses.replace(primary, replicas=replicas)

    @classmethod
    def from_url(
        cls,
        raw_url: str,
        settings: Settings,
        *,
        track_writes: bool = False,
        name: str = "DATABASE_URL",
    ) -> Database:
        """An engine and read pool on `raw_url`; `track_writes`: its sessions note the writes
        they commit (for read-your-writes with replicas, app/db/writes.py)."""
        # Every statement's time bound (search lowers it for its own), and `?schema=`: set for
        # the session when the connection opens, or, through a transaction pooler, at the
        # start of every transaction (app/db/pooler.py).
        session_settings = {"statement_timeout": str(round(settings.db_statement_timeout * 1000))}
        schema = search_path_of(raw_url)
        if schema:
            session_settings["search_path"] = schema
        server_settings = {"application_name": "chatwithme"}
        pooled = transaction_pooled(raw_url)
        begin = per_transaction_sql(session_settings) if pooled else None
        if not pooled:
            server_settings |= session_settings
        engine = create_async_engine(
            to_async_url(raw_url, name),
            pool_size=settings.db_pool_size,
            max_overflow=0,
            pool_timeout=settings.db_pool_timeout,
            # Error messages and logs never show bound values (session tokens, message text).
            hide_parameters=True,
            # No pre-ping: it costs a round trip per request. A connection that dropped is
            # invalidated when it fails (that request gets 503) and replaced for the next one.
            connect_args={
                "timeout": settings.db_connect_timeout,
                "server_settings": server_settings,
                **(ENGINE_CONNECT_ARGS if pooled else {}),
            },
        )
        event.listen(engine.sync_engine, "do_connect", _connect)
        if begin is not None:
            event.listen(engine.sync_engine, "begin", _run_at_begin(begin))

        def read_connect_kwargs() -> dict[str, Any]:
            """What SQLAlchemy itself passes to asyncpg.connect for this URL, less its own
            options (a `?prepared_statement_cache_size=` in the URL is not asyncpg's)."""
            _, kwargs = engine.dialect.create_connect_args(engine.url)
            for own in _DIALECT_ONLY:
                kwargs.pop(own, None)
            return {**kwargs, "timeout": settings.db_connect_timeout,
                    "server_settings": server_settings,
                    **(DRIVER_CONNECT_ARGS if pooled else {})}  # fmt: skip

        reads = ReadPool(
            read_connect_kwargs, settings.db_read_pool_size, settings.db_pool_timeout, begin
        )
        # Sessions carry the read pool for CompiledQuery.fetch.
        options: dict[str, Any] = {"sync_session_class": TrackedSession} if track_writes else {}
        session_maker = async_sessionmaker(
            engine, expire_on_commit=False, info={"reads": reads}, **options
        )
        return cls(engine, session_maker, reads=reads)

    async def record_write(self, user_id: str) -> None:
        """After a commit that wrote for `user_id`: with replicas, their next reads (on any
        process) wait for a replica that has replayed it; without, nothing to do."""
        if self.replicas is not None:
            await self.replicas.record(user_id)

    def pool_saturated(self) -> bool:
        """Every pooled connection is checked out: a new request waits for one to come back."""
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return False
        return pool.checkedout() >= pool.size() + max(pool._max_overflow, 0)

    @classmethod
    def bound_to(cls, connection: AsyncConnection) -> Database:
        """Sessions that join an open transaction on `connection` (tests roll it back)."""
        session_maker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        return cls(connection.engine, session_maker, one_connection=True)


# Options of SQLAlchemy's asyncpg dialect that asyncpg.connect does not take.
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")


def _run_at_begin(sql: str) -> Callable[[Connection], None]:
    """A `begin` listener that runs `sql` first in every transaction (SQLAlchemy runs it
    inside the transaction being begun, without beginning another)."""

    def run(connection: Connection) -> None:
        connection.exec_driver_sql(sql)

    return run


def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Open a DBAPI connection; a failure to reach the server becomes DatabaseUnavailable (503).

    asyncpg raises OSError when the server cannot be reached: the socket file is gone
    (FileNotFoundError after `pg_ctl stop -m immediate`), refused, unreachable, timed out.
    SQLAlchemy passes it through unwrapped, and an OSError could come from anywhere, so it is
    named here, where it can only mean "no database". (Errors the server itself sends, such as
    "starting up", arrive as DBAPIError with a SQLSTATE; app/lib/problems.py maps those.)
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc!r}") from exc
