"""`GET /api/conversations/search`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromQuery, QueryParameter

from app.auth.guard import CurrentIdentity
from app.db.routing import Reads
from app.lib.cursors import decode_ranked
from app.lib.deps import AppSettings
from app.lib.disconnect import unless_disconnected
from app.lib.openapi import problems
from app.lib.rate_limit import RateLimiter
from app.search import schemas
from app.search.services import SearchService, validate


@get(
    "/api/conversations/search",
    tags=["search"],
    responses=problems(
        429,
        503,
        s503="The search ran past SEARCH_STATEMENT_TIMEOUT (narrow it), or the "
        "database is unavailable: retry after `Retry-After` seconds",
    ),
)
async def search_conversations(
    request: Request[Any, Any, Any],
    reads: Reads,
    settings: AppSettings,
    identity: CurrentIdentity,
    q: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
    role: FromQuery[str | None] = None,
    model: FromQuery[str | None] = None,
    since: Annotated[str | None, QueryParameter(name="from")] = None,
    until: Annotated[str | None, QueryParameter(name="to")] = None,
) -> schemas.SearchPage:
    """Your conversations ranked by how well they match `q` (web-search syntax).

    Each search's statements have SEARCH_STATEMENT_TIMEOUT (503 past it), searches are
    limited per user (429), and a search whose client disconnects is cancelled."""
    limiter: RateLimiter = request.app.state.search_limiter
    await limiter.hit(identity.user_id, "searches")
    query, filters = validate(q, role, model, since, until)
    after = decode_ranked(cursor)
    timeout = settings.search_statement_timeout
    search = reads.run(
        lambda db: SearchService(db, identity.user_id, timeout).search(query, filters, limit, after)
    )
    return await unless_disconnected(request, search)
