"""`GET /api/users/me/stats`."""

from __future__ import annotations

from litestar import get
from litestar.params import FromQuery

from app.auth.guard import CurrentIdentity
from app.db.routing import Reads
from app.stats.services import Stats, user_stats, validate


@get("/api/users/me/stats", tags=["users"])
async def my_stats(
    reads: Reads,
    identity: CurrentIdentity,
    days: FromQuery[int | None] = None,
    tz: FromQuery[str | None] = None,
) -> Stats:
    """Your counts, tokens, models and daily activity; dates in `tz` (IANA, default UTC)."""
    window, zone = validate(days, tz)
    return await reads.run(lambda db: user_stats(db, identity.user_id, window, zone))
