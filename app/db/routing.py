"""Where one request's replica-eligible reads run: lists, pages, search, stats, exports.

Handlers of those reads take `reads: ReplicaReads` and pass their service call as
`reads.run(lambda db: ...)`. Without DATABASE_REPLICA_URLS that is the request's own session,
with no extra work. With replicas, `Replicas.pick` chooses one that has the caller's writes
(app/db/replicas.py), or the primary. A read that fails on a replica because the replica went
away (stopped, restarted, a query cancelled by a conflict with recovery) marks it down and runs
again on the primary: a replica's loss never reaches the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.guard import CurrentIdentity
from app.db.engine import Database
from app.db.reads import CONNECTION_ERRORS
from app.db.replicas import Replica
from app.lib.deps import DbSession
from app.lib.errors import DatabaseUnavailable

T = TypeVar("T")

# What a replica answers when it goes away or replay takes back what a read needs: class 08,
# shutdown / crash / starting up (57P01-3), database dropped by replay (57P04), a query
# cancelled for a conflict with recovery (40001), no connection slot (53300).
REPLICA_LOST_STATES = frozenset({"57P01", "57P02", "57P03", "57P04", "40001", "53300"})


class ReplicaReads:
    """One request's reads for `user_id`: on a replica when one has their writes."""

    def __init__(self, database: Database, user_id: str, primary: AsyncSession) -> None:
        self._database = database
        self._user_id = user_id
        self._primary = primary

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`work`'s result, read on a replica or the primary (again on the primary when the
        replica fails under it)."""
        replica = await self._pick()
        if replica is None:
            return await work(self._primary)
        try:
            async with replica.database.session_maker() as db:
                return await work(db)
        except Exception as exc:
            if not replica_lost(exc):
                raise
            replica.lost(exc)
        return await work(self._primary)

    async def session_maker(self) -> async_sessionmaker[AsyncSession]:
        """Sessions for a long read (a whole-account export): a replica's, or the primary's.
        Chosen once; a replica lost midway ends that read."""
        replica = await self._pick()
        return (replica.database if replica else self._database).session_maker

    async def _pick(self) -> Replica | None:
        replicas = self._database.replicas
        return None if replicas is None else await replicas.pick(self._user_id)


def replica_lost(exc: BaseException) -> bool:
    """`exc` says the server (not the query) failed. A statement that ran past its time
    bound (57014, an "operator intervention" to asyncpg) is the query's: not run again."""
    driver_error = getattr(exc.orig, "__cause__", None) if isinstance(exc, DBAPIError) else exc
    if isinstance(driver_error, asyncpg.QueryCanceledError):
        return False
    if isinstance(exc, (DatabaseUnavailable, *CONNECTION_ERRORS)):
        return True
    if isinstance(exc, DBAPIError):
        # SQLAlchemy's asyncpg adapter keeps the driver's own error as the cause.
        if exc.connection_invalidated or isinstance(driver_error, CONNECTION_ERRORS):
            return True
        state = str(getattr(exc.orig, "sqlstate", None) or "")
    elif isinstance(exc, asyncpg.PostgresError):
        state = str(exc.sqlstate or "")
    else:
        return False
    return state.startswith("08") or state in REPLICA_LOST_STATES


def provide_reads(
    request: Request[Any, Any, Any], db_session: DbSession, identity: CurrentIdentity
) -> ReplicaReads:
    """The `reads` dependency (private routes only: it needs the caller)."""
    return ReplicaReads(request.app.state.database, identity.user_id, db_session)


Reads = NamedDependency[ReplicaReads]
