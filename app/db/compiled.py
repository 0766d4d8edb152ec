"""Core statements compiled once, for the hottest reads (the conversation list, message pages).

Building a `select()` and computing its cache key took about a millisecond per request, and
loading ORM objects another, on requests whose SQL runs in well under that. A `CompiledQuery`
is compiled to asyncpg's SQL when the module loads and runs on the request session's own
connection: asyncpg keeps it prepared, rows come back as records, and no transaction is begun
for it (a single statement sees one snapshot anyway). Writes keep using the ORM.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from app.lib.errors import DatabaseUnavailable

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


class CompiledQuery:
    """A statement with named `bindparam`s, which `fetch` fills."""

    def __init__(self, statement: Select[Any]) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())
        # Values the statement holds itself (`limit(1)`, `left(x, 200)`); the rest are None.
        self.defaults = compiled.params

    async def fetch(self, db: AsyncSession, **params: Any) -> list[asyncpg.Record]:
        """The rows, read on `db`'s connection (inside its transaction if one is open).

        A connection that died (the server restarted, the socket is gone) is invalidated, as
        SQLAlchemy does for its own statements, and the request gets a 503, not a 500."""
        connection = await db.connection()
        driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
        try:
            rows: list[asyncpg.Record] = await driver.fetch(
                self.sql, *(params.get(name, self.defaults[name]) for name in self.names)
            )
        except (
            OSError,
            asyncpg.InterfaceError,
            asyncpg.PostgresConnectionError,
            asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
        ) as exc:
            await connection.invalidate(exc)
            raise DatabaseUnavailable(f"the database connection failed: {exc!r}") from exc
        return rows
