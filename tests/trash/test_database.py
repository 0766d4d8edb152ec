"""On a database of its own: revision 0009 keeps the rollups exact up, down and up again, and
`chatwithme purge` run as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import asyncpg

from app.chat.trash import PURGE_LOCK, Purged, TrashPurger
from app.db import migrate
from app.db.engine import Database
from app.db.url import to_libpq
from app.settings import Settings
from tests.conftest import DatabaseFactory, in_thread

ROWS = """
INSERT INTO users (id, email, "updatedAt") VALUES ('u1', 'u1@example.com', now());
INSERT INTO conversations (id, "userId", "updatedAt") VALUES ('c1', 'u1', now());
INSERT INTO messages (id, content, role, "conversationId", "userId", "createdAt",
                      "promptTokens", "completionTokens")
VALUES ('m1', 'q', 'user', 'c1', 'u1', '2026-05-01 10:00', NULL, NULL),
       ('m2', 'a', 'assistant', 'c1', 'u1', '2026-05-01 10:01', 10, 5),
       ('m3', 'b', 'assistant', 'c1', 'u1', '2026-05-01 10:02', 20, 7);
"""


async def _sql(url: str, sql: str) -> None:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _rollups(url: str) -> tuple[int, int, int]:
    """(messages, tokens) from the buckets and messages from the per-model rows, with the
    deltas not yet folded where the revision has them (0015), as stats read them."""
    connection = await asyncpg.connect(to_libpq(url))
    try:
        deltas = await connection.fetchval("SELECT to_regclass('user_model_usage_deltas')")
        buckets, usages = "user_message_buckets", "user_model_usages"
        if deltas is not None:
            buckets = f"(SELECT messages, tokens FROM {buckets} UNION ALL "
            buckets += "SELECT messages, tokens FROM user_message_bucket_deltas) b"
            usages = f"(SELECT messages FROM {usages} UNION ALL "
            usages += "SELECT messages FROM user_model_usage_deltas) u"
        row = await connection.fetchrow(
            f"SELECT (SELECT coalesce(sum(messages), 0) FROM {buckets}) AS messages, "
            f"(SELECT coalesce(sum(tokens), 0) FROM {buckets}) AS tokens, "
            f"(SELECT coalesce(sum(messages), 0) FROM {usages}) AS by_model"
        )
        assert row is not None
        return int(row["messages"]), int(row["tokens"]), int(row["by_model"])
    finally:
        await connection.close()


def test_the_rollups_stay_exact_through_upgrade_and_downgrade(databases: DatabaseFactory) -> None:
    url = databases.create()
    in_thread(migrate.upgrade, url, "0008_preferences_time_zone")
    in_thread(asyncio.run, _sql(url, ROWS))
    assert in_thread(asyncio.run, _rollups(url)) == (3, 42, 3)

    in_thread(migrate.upgrade, url)
    assert in_thread(asyncio.run, _rollups(url)) == (3, 42, 3)
    in_thread(asyncio.run, _sql(url, """UPDATE messages SET "deletedAt" = now() WHERE id = 'm3'"""))
    assert in_thread(asyncio.run, _rollups(url)) == (2, 15, 2)

    # Down, the column goes and the trashed message is an ordinary one again: counted.
    in_thread(migrate.downgrade, url, "0008_preferences_time_zone")
    assert in_thread(asyncio.run, _rollups(url)) == (3, 42, 3)
    in_thread(asyncio.run, _sql(url, "DELETE FROM messages WHERE id = 'm2'"))
    assert in_thread(asyncio.run, _rollups(url)) == (2, 27, 2)

    in_thread(migrate.upgrade, url)
    in_thread(asyncio.run, _sql(url, """UPDATE messages SET "deletedAt" = now() WHERE id = 'm1'"""))
    assert in_thread(asyncio.run, _rollups(url)) == (1, 27, 1)
    in_thread(asyncio.run, _sql(url, "DELETE FROM messages"))  # a purge: nothing more to take
    assert in_thread(asyncio.run, _rollups(url)) == (0, 0, 0)


TRASH = """
INSERT INTO users (id, email, "updatedAt") VALUES ('u1', 'u1@example.com', now());
INSERT INTO conversations (id, "userId", "updatedAt", "deletedAt")
VALUES ('old', 'u1', now(), now() - interval '40 days'),
       ('recent', 'u1', now(), now() - interval '2 days'),
       ('live', 'u1', now(), NULL);
INSERT INTO messages (id, content, role, "conversationId", "userId", "deletedAt")
VALUES ('o1', 'x', 'user', 'old', 'u1', now() - interval '40 days'),
       ('o2', 'y', 'assistant', 'old', 'u1', now() - interval '40 days'),
       ('r1', 'x', 'user', 'recent', 'u1', now() - interval '2 days'),
       ('l1', 'x', 'user', 'live', 'u1', NULL),
       ('l2', 'y', 'assistant', 'live', 'u1', now() - interval '13 hours');
"""


def _purge(url: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TRASH_RETENTION_DAYS"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "chatwithme"), "purge", *args],
        env={**env, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def _ids(url: str) -> set[str]:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        rows = await connection.fetch(
            "SELECT id FROM conversations UNION ALL SELECT id FROM messages"
        )
        return {row["id"] for row in rows}
    finally:
        await connection.close()


def test_the_purge_command_removes_what_is_older_than_the_retention(
    databases: DatabaseFactory,
) -> None:
    url = databases.create()
    in_thread(migrate.upgrade, url)
    in_thread(asyncio.run, _sql(url, TRASH))
    everything = in_thread(asyncio.run, _ids(url))

    said = _purge(url, "--dry-run")
    assert said == "would remove 1 conversation(s), 2 message(s) trashed more than 30d ago"
    assert in_thread(asyncio.run, _ids(url)) == everything

    assert _purge(url) == "removed 1 conversation(s), 2 message(s) trashed more than 30d ago"
    assert in_thread(asyncio.run, _ids(url)) == everything - {"old", "o1", "o2"}

    assert _purge(url, "--older-than", "12h") == (
        "removed 1 conversation(s), 2 message(s) trashed more than 12h ago"
    )
    assert in_thread(asyncio.run, _ids(url)) == {"live", "l1"}


async def _purge_while_locked(url: str, settings: Settings) -> tuple[Purged | None, Purged | None]:
    """A purge while another process holds the purge's lock, then one after it let go."""
    database = Database.from_url(url, settings)
    other = await asyncpg.connect(to_libpq(url))
    try:
        await other.execute("SELECT pg_advisory_lock($1)", PURGE_LOCK)
        purger = TrashPurger(database, timedelta(days=30))
        skipped = await purger.run_once()
        await other.execute("SELECT pg_advisory_unlock($1)", PURGE_LOCK)
        return skipped, await purger.run_once()
    finally:
        await other.close()
        await database.engine.dispose()


def test_only_one_process_purges_at_a_time(databases: DatabaseFactory, settings: Settings) -> None:
    url = databases.create()
    in_thread(migrate.upgrade, url)
    in_thread(asyncio.run, _sql(url, TRASH))

    skipped, purged = in_thread(asyncio.run, _purge_while_locked(url, settings))

    assert skipped is None
    assert purged == Purged(conversations=1, messages=2)
