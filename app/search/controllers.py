"""`GET /api/conversations/search`."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import FromQuery, QueryParameter

from app.auth.guard import CurrentIdentity
from app.lib.deps import DbSession
from app.search import schemas
from app.search.services import SearchService, validate


@get("/api/conversations/search", tags=["search"])
async def search_conversations(
    db_session: DbSession,
    identity: CurrentIdentity,
    q: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
    role: FromQuery[str | None] = None,
    model: FromQuery[str | None] = None,
    since: Annotated[str | None, QueryParameter(name="from")] = None,
    until: Annotated[str | None, QueryParameter(name="to")] = None,
) -> schemas.SearchPage:
    """Your conversations ranked by how well they match `q` (web-search syntax)."""
    query, filters = validate(q, role, model, since, until)
    return await SearchService(db_session, identity.user_id).search(query, filters, limit, cursor)
