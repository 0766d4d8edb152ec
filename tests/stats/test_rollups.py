"""The stats rollups (revisions 0007, 0009) against the messages they are derived from (those
not in the trash), and the days they give in time zones whose midnight is not on the hour."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.lib.time import utc_now
from tests.auth.conftest import make_user
from tests.search.test_search import Seeder

BUCKETS_FROM_MESSAGES = """
    SELECT "userId", date_bin('15 minutes', "createdAt", TIMESTAMP '2000-01-01') AS bucket,
           count(*) AS messages,
           sum(coalesce("promptTokens", 0) + coalesce("completionTokens", 0)) AS tokens
    FROM messages WHERE "userId" = ANY(:users) AND "deletedAt" IS NULL GROUP BY 1, 2
"""
USAGES_FROM_MESSAGES = """
    SELECT "userId", role, coalesce(model, '') AS model, count(*) AS messages,
           coalesce(sum("promptTokens"), 0) AS prompt, coalesce(sum("completionTokens"), 0),
           coalesce(sum("timeToFirstTokenMs"), 0), count("timeToFirstTokenMs"),
           count(*) FILTER (WHERE status IN ('error', 'incomplete'))
    FROM messages WHERE "userId" = ANY(:users) AND "deletedAt" IS NULL GROUP BY 1, 2, 3
"""


async def _rows(connection: AsyncConnection, sql: str, users: list[str]) -> set[tuple[Any, ...]]:
    return {tuple(r) for r in (await connection.execute(text(sql), {"users": users})).all()}


ROLLUPS_WITH_DELTAS = """
    SELECT "userId", bucket, sum(messages) AS messages, sum(tokens) AS tokens FROM (
        SELECT "userId", bucket, messages, tokens FROM user_message_buckets
        UNION ALL
        SELECT "userId", bucket, messages, tokens FROM user_message_bucket_deltas
    ) rows WHERE "userId" = ANY(:users) GROUP BY 1, 2 HAVING sum(messages) <> 0
"""
USAGES_WITH_DELTAS = """
    SELECT "userId", role, model, sum(messages), sum("promptTokens"), sum("completionTokens"),
           sum("timeToFirstTokenMsTotal"), sum("timedMessages"), sum("failedMessages") FROM (
        SELECT "userId", role, model, messages, "promptTokens", "completionTokens",
               "timeToFirstTokenMsTotal", "timedMessages", "failedMessages" FROM user_model_usages
        UNION ALL
        SELECT "userId", role, model, messages, "promptTokens", "completionTokens",
               "timeToFirstTokenMsTotal", "timedMessages", "failedMessages"
        FROM user_model_usage_deltas
    ) rows WHERE "userId" = ANY(:users) GROUP BY 1, 2, 3 HAVING sum(messages) <> 0
"""
ROLLUPS = (
    'SELECT "userId", bucket, messages, tokens FROM user_message_buckets '
    'WHERE "userId" = ANY(:users)'
)
USAGES = (
    'SELECT "userId", role, model, messages, "promptTokens", "completionTokens", '
    '"timeToFirstTokenMsTotal", "timedMessages", "failedMessages" FROM user_model_usages '
    'WHERE "userId" = ANY(:users)'
)


async def fold_everything(connection: AsyncConnection) -> None:
    await connection.execute(text("SELECT fold_stats_deltas(1000000)"))
    left = await connection.execute(
        text(
            "SELECT (SELECT count(*) FROM user_message_bucket_deltas) "
            "+ (SELECT count(*) FROM user_model_usage_deltas)"
        )
    )
    assert left.scalar() == 0


async def assert_rollups_match_messages(connection: AsyncConnection, users: list[str]) -> None:
    """What stats read (the rollups plus the deltas not yet folded) equals a count of the
    messages; after a fold, the rollups alone do (and no row is left at zero)."""
    buckets = await _rows(connection, BUCKETS_FROM_MESSAGES, users)
    usages = await _rows(connection, USAGES_FROM_MESSAGES, users)
    assert await _rows(connection, ROLLUPS_WITH_DELTAS, users) == buckets
    assert await _rows(connection, USAGES_WITH_DELTAS, users) == usages
    await fold_everything(connection)
    assert await _rows(connection, ROLLUPS, users) == buckets
    assert await _rows(connection, USAGES, users) == usages


async def test_the_rollups_follow_every_kind_of_write_to_messages(
    connection: AsyncConnection,
) -> None:
    alice = await make_user(connection, "alice@example.com")
    bob = await make_user(connection, "bob@example.com")
    users = [alice, bob]
    seed = Seeder(connection, alice)
    start = datetime(2026, 5, 1, 9, 58)
    first = await seed.conversation("first", "hi")
    usage = {"promptTokens": 10, "completionTokens": 5, "timeToFirstTokenMs": 120}
    answer = await seed.message(first, "assistant", "hello", start, model="groq/a", **usage)
    failed = await seed.message(first, "assistant", "", start, model="groq/a", status="error")
    await assert_rollups_match_messages(connection, users)

    # Many rows in one statement, across many quarter hours.
    second = await seed.conversation("second")
    await connection.execute(
        text("""
            INSERT INTO messages (id, content, role, model, "conversationId", "userId",
                                  "createdAt", "promptTokens", "completionTokens")
            SELECT 'bulk' || n, 'bulk ' || n, CASE WHEN n % 2 = 0 THEN 'user' ELSE 'assistant' END,
                   CASE WHEN n % 2 = 0 THEN NULL ELSE 'gemini/b' END, :c, :u,
                   CAST(:start AS timestamp) + n * interval '7 minutes', n, NULL
            FROM generate_series(1, 60) AS n
        """),
        {"c": second, "u": alice, "start": start},
    )
    await assert_rollups_match_messages(connection, users)

    updates = [
        ('"promptTokens" = 99, "completionTokens" = 1', answer),  # usage arrives at the end
        ("status = 'incomplete'", answer),
        ("status = 'complete', \"timeToFirstTokenMs\" = 80", failed),
        ("model = 'groq/c'", answer),
        ('"createdAt" = "createdAt" + interval \'1 hour\'', answer),  # another bucket
        ("content = 'edited text only'", answer),
        ('"userId" = :bob', failed),
    ]
    for assignment, message_id in updates:
        await connection.execute(
            text(f"UPDATE messages SET {assignment} WHERE id = :id"),
            {"id": message_id, "bob": bob},
        )
        await assert_rollups_match_messages(connection, users)

    await connection.execute(text("DELETE FROM messages WHERE id = 'bulk7'"))
    await assert_rollups_match_messages(connection, users)
    await connection.execute(text("DELETE FROM conversations WHERE id = :c"), {"c": second})
    await assert_rollups_match_messages(connection, users)

    await connection.execute(text("DELETE FROM users WHERE id = :u"), {"u": alice})
    await fold_everything(connection)
    left = await connection.execute(
        text(
            'SELECT (SELECT count(*) FROM user_message_buckets WHERE "userId" = :u) '
            '+ (SELECT count(*) FROM user_model_usages WHERE "userId" = :u)'
        ),
        {"u": alice},
    )
    assert left.scalar() == 0
    await assert_rollups_match_messages(connection, [bob])


async def test_days_are_exact_where_midnight_is_not_on_the_hour(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    conversation = await seed.conversation("around midnight")
    yesterday = utc_now().date() - timedelta(days=2)
    # Kathmandu is UTC+05:45, St John's UTC-03:30 (-02:30 in summer): one minute either side
    # of their midnights falls in the same UTC quarter hour as the other.
    stamps = []
    for zone in ("Asia/Kathmandu", "America/St_Johns"):
        midnight = datetime.combine(yesterday, datetime.min.time(), ZoneInfo(zone))
        utc = midnight.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
        stamps += [utc - timedelta(minutes=1), utc + timedelta(minutes=1)]
    for at in stamps:
        await seed.message(conversation, "user", "tick", at)
    for zone in ("Asia/Kathmandu", "America/St_Johns", "UTC"):
        expected: dict[str, int] = {}
        for at in stamps:
            local = at.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(zone)).date()
            expected[local.isoformat()] = expected.get(local.isoformat(), 0) + 1
        stats = (await client.get("/api/users/me/stats", params={"days": 7, "tz": zone})).json()
        assert {d["date"]: d["messages"] for d in stats["daily"] if d["messages"]} == expected
        assert stats["activeDays"] == len(expected)


async def test_messages_from_before_1980_are_counted_one_by_one(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    conversation = await seed.conversation("imported archive")
    # Liberia kept UTC-00:44:30 until 1972: its midnight fell inside a quarter hour.
    for at in (datetime(1971, 6, 1, 0, 40), datetime(1971, 6, 1, 0, 44, 45)):
        await seed.message(conversation, "user", "old", at)
    stats = (await client.get("/api/users/me/stats", params={"tz": "Africa/Monrovia"})).json()
    assert (stats["messageCount"], stats["activeDays"]) == (2, 2)
    utc = (await client.get("/api/users/me/stats")).json()
    assert utc["activeDays"] == 1
