"""Core statements compiled once, for the hottest reads (the conversation list, message pages).

Building a `select()` and computing its cache key took about a millisecond per request, and
loading ORM objects another, on requests whose SQL runs in well under that. A `CompiledQuery`
is compiled to asyncpg's SQL when the module loads and runs on the app's read pool (or the
request session's own connection, see `fetch`): asyncpg keeps it prepared, rows come back as
records, and no transaction is begun for it (a single statement sees one snapshot anyway).
Writes keep using the ORM.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import func
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement, Select, TextClause

from app.db.reads import CONNECTION_ERRORS, ReadPool
from app.lib.errors import DatabaseUnavailable, TimedOut

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


def aware_utc(column: Any) -> ColumnElement[Any]:
    """A stored naive-UTC timestamp as `timestamptz`, which asyncpg decodes to an aware UTC
    datetime (so JSON carries the `Z`) in C; making each one aware in Python took 8% of the
    conversation list's CPU."""
    return func.timezone("UTC", column)


class CompiledQuery:
    """A statement with named `bindparam`s, which `fetch` fills."""

    def __init__(self, statement: Select[Any] | TextClause) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())
        # Values the statement holds itself (`limit(1)`, `left(x, 200)`); the rest are None.
        self.defaults = compiled.params

    def arguments(self, **params: Any) -> list[Any]:
        """The positional values for `sql`: `params` by name, else the statement's own."""
        return [params.get(name, self.defaults[name]) for name in self.names]

    async def fetch(self, db: AsyncSession, **params: Any) -> list[asyncpg.Record]:
        """The rows: on the read pool, or on `db`'s own connection when `db` has a transaction
        open (it may have written what the read must see) or the app has no read pool.

        A connection that died (the server restarted, the socket is gone) is invalidated, as
        SQLAlchemy does for its own statements, and the request gets a 503, not a 500."""
        values = self.arguments(**params)
        reads: ReadPool | None = db.info.get("reads")
        if reads is not None and reads.started and not db.in_transaction():
            return await reads.fetch(self.sql, *values)
        connection = await db.connection()
        driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
        try:
            rows: list[asyncpg.Record] = await driver.fetch(self.sql, *values)
        except asyncpg.QueryCanceledError as exc:  # statement_timeout: the connection is fine
            raise TimedOut() from exc
        except CONNECTION_ERRORS as exc:
            await connection.invalidate(exc)
            raise DatabaseUnavailable(f"the database connection failed: {exc!r}") from exc
        return rows
