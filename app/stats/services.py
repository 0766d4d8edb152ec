"""Per-user statistics from the rollups that triggers keep with the messages (revision 0007),
read in one statement so the numbers agree."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.files.services import file_totals
from app.lib.errors import InvalidInput
from app.lib.schema import CamelStruct
from app.lib.time import as_utc


class ModelStats(CamelStruct):
    model: str | None
    messages: int
    prompt_tokens: int
    completion_tokens: int
    avg_time_to_first_token_ms: float | None
    error_rate: float


class Tokens(CamelStruct):
    prompt: int
    completion: int


class Day(CamelStruct):
    date: date
    messages: int
    tokens: int


class Stats(CamelStruct):
    conversation_count: int
    message_count: int
    messages_by_role: dict[str, int]
    models: list[ModelStats]
    tokens: Tokens
    first_message_at: datetime | None
    last_message_at: datetime | None
    joined_at: datetime
    active_days: int
    current_streak_days: int
    daily: list[Day]
    # Stored files (POST /api/files): how many, and their bytes.
    file_count: int = 0
    file_bytes: int = 0


def validate(days: int | None, tz: str | None) -> tuple[int, str]:
    window = 30 if days is None else days
    if not 1 <= window <= 366:
        raise InvalidInput("days: must be between 1 and 366")
    zone = tz or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("tz: not an IANA time zone name (for example Europe/Berlin)") from None
    return window, zone


# The zones PostgreSQL's AT TIME ZONE knows, read once per process. Python's zoneinfo also
# opens files PostgreSQL has no zone for (posixrules, localtime, right/UTC, posix/UTC), and the
# two may carry different releases of the time zone database.
_database_zones: frozenset[str] | None = None


async def require_database_zone(db: AsyncSession, zone: str, field: str = "tz") -> None:
    """A 400 naming `field` unless PostgreSQL knows `zone` (the stats and the daily quotas
    count days there)."""
    global _database_zones
    if _database_zones is None:
        names = await db.scalars(text("SELECT name FROM pg_timezone_names"))
        _database_zones = frozenset(names)
    if zone not in _database_zones:
        raise InvalidInput(f"{field}: not an IANA time zone name (for example Europe/Berlin)")


# Every time zone offset in use since 1980 is a whole number of quarter hours, so a quarter
# hour bucket (user_message_buckets) lies inside one local day in any zone. Older messages,
# if any, are counted one by one.
EXACT_BUCKETS_SINCE = datetime(1980, 1, 1)

# One statement: PostgreSQL reads it from one snapshot, and the triggers that keep the rollups
# (revisions 0007, 0009) write in the messages' own transactions, so under concurrent writes the
# totals, the per-model figures and the days always agree with each other. The triggers append
# deltas that a fold moves into the rollups later (revision 0015, app/stats/fold.py): the
# rollups are read with the deltas not yet folded, and a fold moves rows in one transaction.
STATS = text("""
    SELECT
      (SELECT count(*) FROM conversations WHERE "userId" = :uid AND "deletedAt" IS NULL)
          AS conversations,
      (SELECT "createdAt" FROM users WHERE id = :uid) AS joined,
      (SELECT min("createdAt") FROM messages WHERE "userId" = :uid AND "deletedAt" IS NULL)
          AS first_at,
      (SELECT max("createdAt") FROM messages WHERE "userId" = :uid AND "deletedAt" IS NULL)
          AS last_at,
      (SELECT coalesce(json_agg(u ORDER BY u.role, u.model), '[]') FROM (
          SELECT role, nullif(model, '') AS model, messages, prompt, completion,
                 ttft_total::numeric / nullif(timed, 0) AS ttft,
                 failed::numeric / messages AS errors
          FROM (
              SELECT role, model, sum(messages) AS messages, sum("promptTokens") AS prompt,
                     sum("completionTokens") AS completion,
                     sum("timeToFirstTokenMsTotal") AS ttft_total, sum("timedMessages") AS timed,
                     sum("failedMessages") AS failed
              FROM (
                  SELECT role, model, messages, "promptTokens", "completionTokens",
                         "timeToFirstTokenMsTotal", "timedMessages", "failedMessages"
                  FROM user_model_usages WHERE "userId" = :uid
                  UNION ALL
                  SELECT role, model, messages, "promptTokens", "completionTokens",
                         "timeToFirstTokenMsTotal", "timedMessages", "failedMessages"
                  FROM user_model_usage_deltas WHERE "userId" = :uid
              ) rows GROUP BY role, model
          ) summed WHERE messages > 0) u) AS usages,
      (SELECT coalesce(json_agg(d ORDER BY d.day), '[]') FROM (
          SELECT day, sum(messages) AS messages, sum(tokens) AS tokens FROM (
              SELECT (bucket AT TIME ZONE 'UTC' AT TIME ZONE :tz)::date AS day, messages, tokens
              FROM user_message_buckets
              WHERE "userId" = :uid AND bucket >= :exact_since
              UNION ALL
              SELECT (bucket AT TIME ZONE 'UTC' AT TIME ZONE :tz)::date, messages, tokens
              FROM user_message_bucket_deltas
              WHERE "userId" = :uid AND bucket >= :exact_since
              UNION ALL
              SELECT ("createdAt" AT TIME ZONE 'UTC' AT TIME ZONE :tz)::date, 1,
                     coalesce("promptTokens", 0) + coalesce("completionTokens", 0)
              FROM messages
              WHERE "userId" = :uid AND "createdAt" < :exact_since AND "deletedAt" IS NULL
          ) counted GROUP BY day HAVING sum(messages) > 0) d) AS days
""")


async def user_stats(db: AsyncSession, user_id: str, days: int, tz: str) -> Stats:
    """All figures from one statement over the rollups, hence one consistent snapshot;
    InvalidInput when PostgreSQL does not know the zone `tz`."""
    await require_database_zone(db, tz)
    row = (
        await db.execute(STATS, {"uid": user_id, "tz": tz, "exact_since": EXACT_BUCKETS_SINCE})
    ).one()
    usages = _json(row.usages)
    per_day = {date.fromisoformat(d["day"]): d for d in _json(row.days)}
    today = datetime.now(ZoneInfo(tz)).date()
    answers = [u for u in usages if u["role"] == "assistant"]
    answers.sort(key=lambda u: -u["messages"])  # stable: ties keep the model order from SQL
    file_count, file_bytes = await file_totals(db, user_id)
    return Stats(
        conversation_count=row.conversations,
        message_count=sum(u["messages"] for u in usages),
        messages_by_role={
            role: sum(u["messages"] for u in usages if u["role"] == role)
            for role in ("user", "assistant")
        },
        models=[
            ModelStats(
                model=m["model"],
                messages=m["messages"],
                prompt_tokens=int(m["prompt"]),
                completion_tokens=int(m["completion"]),
                avg_time_to_first_token_ms=round(float(m["ttft"]), 1)
                if m["ttft"] is not None
                else None,
                error_rate=round(float(m["errors"]), 4),
            )
            for m in answers
        ],
        tokens=Tokens(
            prompt=sum(int(u["prompt"]) for u in usages),
            completion=sum(int(u["completion"]) for u in usages),
        ),
        first_message_at=as_utc(row.first_at) if row.first_at else None,
        last_message_at=as_utc(row.last_at) if row.last_at else None,
        joined_at=as_utc(row.joined),
        active_days=len(per_day),
        current_streak_days=_streak(set(per_day), today),
        daily=[_day(per_day, today - timedelta(days=offset)) for offset in range(days - 1, -1, -1)],
        file_count=file_count,
        file_bytes=file_bytes,
    )


def _json(value: Any) -> list[dict[str, Any]]:
    """asyncpg hands json back as text."""
    return list(json.loads(value) if isinstance(value, str) else value)


def _day(per_day: dict[date, Any], day: date) -> Day:
    row = per_day.get(day)
    return Day(
        date=day, messages=row["messages"] if row else 0, tokens=int(row["tokens"]) if row else 0
    )


def _streak(active: set[date], today: date) -> int:
    """Consecutive active days up to today (or up to yesterday, if today has none yet)."""
    day = today if today in active else today - timedelta(days=1)
    streak = 0
    while day in active:
        streak += 1
        day -= timedelta(days=1)
    return streak
