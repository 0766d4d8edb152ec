"""One database session per request, shared by the guard and the handler.

The session opens on first use (a request that never reads the database takes no connection),
its work is committed when the handler returns, and it is closed, giving its connection back to
the pool, before the response starts. A commit that fails is the request's error (503 for a
lost database), not a success reported over lost writes.

This is what Litestar's SQLAlchemy plugin (advanced-alchemy) did for us, in the few lines the
app needs: importing the plugin cost about 1.5 s of every start-up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar.connection import ASGIConnection
from litestar.types import Message, Scope
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import Database
from app.db.writes import take_committed_write

_KEY = "db_session"
logger = logging.getLogger(__name__)


def request_session(connection: ASGIConnection[Any, Any, Any, Any]) -> AsyncSession:
    """The request's session, opened when first asked for."""
    state = connection.scope.setdefault("state", {})
    session: AsyncSession | None = state.get(_KEY)
    if session is None:
        database: Database = connection.app.state.database
        session = state[_KEY] = database.session_maker()
    return session


async def provide_db_session(
    request: ASGIConnection[Any, Any, Any, Any],
) -> AsyncIterator[AsyncSession]:
    """The handler's session: committed when the handler returns; a handler that raises has
    its work rolled back when the session closes."""
    session = request_session(request)
    yield session
    if not _idle(session):
        await session.commit()
    database: Database = request.app.state.database
    if database.replicas is not None and take_committed_write(session):
        # Before the response: the writer's next read, on any process, waits for a replica
        # that has this write (app/db/replicas.py).
        identity = request.scope.get("auth")
        user_id = getattr(identity, "user_id", None)
        if isinstance(user_id, str):
            await database.record_write(user_id)


def _idle(session: AsyncSession) -> bool:
    """Nothing begun and nothing pending (a request served from the read pool or the session
    cache): commit and close would have nothing to do but their round of greenlets."""
    return not (session.in_transaction() or session.new or session.dirty or session.deleted)


async def close_request_session(message: Message, scope: Scope) -> None:
    """`before_send`: close the session (rolling back what was not committed) as the response
    starts, so no connection is held while a response, or a stream, is being sent."""
    if message["type"] != "http.response.start":
        return
    session: AsyncSession | None = scope.get("state", {}).pop(_KEY, None)
    if session is None or _idle(session):
        return
    try:
        await session.close()
    except Exception:
        # The database went away under the request: its answer is already decided, and the
        # pool replaces the connection for the next one.
        logger.debug("closing the request's database session failed", exc_info=True)
