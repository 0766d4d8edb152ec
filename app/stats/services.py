"""Per-user statistics, read in one snapshot (REPEATABLE READ) so the numbers agree."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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


# One statement: PostgreSQL reads it from one snapshot, so under concurrent writes the
# totals, the per-model figures and the days always agree with each other.
STATS = text("""
    WITH mine AS (
        SELECT role, model, status, "promptTokens" AS prompt, "completionTokens" AS completion,
               "timeToFirstTokenMs" AS ttft, "createdAt" AS created
        FROM messages WHERE "userId" = :uid
    )
    SELECT
      (SELECT count(*) FROM conversations WHERE "userId" = :uid) AS conversations,
      (SELECT "createdAt" FROM users WHERE id = :uid) AS joined,
      (SELECT count(*) FROM mine) AS messages,
      (SELECT count(*) FROM mine WHERE role = 'user') AS user_messages,
      (SELECT count(*) FROM mine WHERE role = 'assistant') AS assistant_messages,
      (SELECT coalesce(sum(prompt), 0) FROM mine) AS prompt,
      (SELECT coalesce(sum(completion), 0) FROM mine) AS completion,
      (SELECT min(created) FROM mine) AS first_at,
      (SELECT max(created) FROM mine) AS last_at,
      (SELECT coalesce(json_agg(m ORDER BY m.messages DESC, m.model), '[]') FROM (
          SELECT model, count(*) AS messages, coalesce(sum(prompt), 0) AS prompt,
                 coalesce(sum(completion), 0) AS completion, avg(ttft) AS ttft,
                 avg(CASE WHEN status IN ('error', 'incomplete') THEN 1.0 ELSE 0.0 END) AS errors
          FROM mine WHERE role = 'assistant' GROUP BY model) m) AS models,
      (SELECT coalesce(json_agg(d ORDER BY d.day), '[]') FROM (
          SELECT (created AT TIME ZONE 'UTC' AT TIME ZONE :tz)::date AS day, count(*) AS messages,
                 coalesce(sum(coalesce(prompt, 0) + coalesce(completion, 0)), 0) AS tokens
          FROM mine GROUP BY 1) d) AS days
""")


async def user_stats(db: AsyncSession, user_id: str, days: int, tz: str) -> Stats:
    """All figures from one statement, hence one consistent snapshot."""
    row = (await db.execute(STATS, {"uid": user_id, "tz": tz})).one()
    per_day = {date.fromisoformat(d["day"]): d for d in _json(row.days)}
    today = datetime.now(ZoneInfo(tz)).date()
    return Stats(
        conversation_count=row.conversations,
        message_count=row.messages,
        messages_by_role={"user": row.user_messages, "assistant": row.assistant_messages},
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
            for m in _json(row.models)
        ],
        tokens=Tokens(prompt=int(row.prompt), completion=int(row.completion)),
        first_message_at=as_utc(row.first_at) if row.first_at else None,
        last_message_at=as_utc(row.last_at) if row.last_at else None,
        joined_at=as_utc(row.joined),
        active_days=len(per_day),
        current_streak_days=_streak(set(per_day), today),
        daily=[_day(per_day, today - timedelta(days=offset)) for offset in range(days - 1, -1, -1)],
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
