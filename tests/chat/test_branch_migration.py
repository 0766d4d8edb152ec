"""Revision 0018 on rows written before it: parents from linear order (answer versions as
siblings), each conversation's leaf, stats unchanged, and a downgrade that leaves no trace."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from app.db import migrate
from app.db.url import to_libpq
from tests.conftest import DatabaseFactory, in_thread

BEFORE = "0016_imports"
# q1, a1 (regenerated: superseded), a1b (its current version), q2, a2; and an empty one.
ROWS = """
INSERT INTO users (id, email, "updatedAt") VALUES ('u1', 'u1@example.com', now());
INSERT INTO conversations (id, "userId", "updatedAt") VALUES ('c1', 'u1', now()),
                                                             ('empty', 'u1', now());
INSERT INTO messages (id, content, role, "conversationId", "userId", "createdAt",
                      "replyToId", "supersededAt")
VALUES ('q1', 'first', 'user', 'c1', 'u1', '2026-01-01 10:00:00', NULL, NULL),
       ('a1', 'old answer', 'assistant', 'c1', 'u1', '2026-01-01 10:00:01', 'q1',
        '2026-01-01 10:00:05'),
       ('a1b', 'new answer', 'assistant', 'c1', 'u1', '2026-01-01 10:00:05', 'q1', NULL),
       ('q2', 'second', 'user', 'c1', 'u1', '2026-01-01 10:01:00', NULL, NULL),
       ('a2', 'answer two', 'assistant', 'c1', 'u1', '2026-01-01 10:01:01', 'q2', NULL);
"""


async def _fetch(url: str, sql: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        return [dict(r) for r in await connection.fetch(sql)]
    finally:
        await connection.close()


async def _execute(url: str, sql: str) -> None:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _run(coroutine: Any) -> Any:
    return in_thread(asyncio.run, coroutine)


def test_the_backfill_makes_linear_rows_a_tree_and_the_downgrade_removes_it(
    databases: DatabaseFactory,
) -> None:
    url = databases.create()
    in_thread(migrate.upgrade, url, BEFORE)
    _run(_execute(url, ROWS))
    buckets = "SELECT sum(messages) AS n FROM user_message_buckets"
    counted = _run(_fetch(url, buckets))

    in_thread(migrate.upgrade, url, "0018_message_tree")
    parents = _run(_fetch(url, 'SELECT id, "parentId" FROM messages ORDER BY "createdAt"'))
    assert {r["id"]: r["parentId"] for r in parents} == {
        "q1": None, "a1": "q1", "a1b": "q1", "q2": "a1b", "a2": "q2",
    }  # fmt: skip
    leaves = _run(_fetch(url, 'SELECT id, "currentLeafId" FROM conversations ORDER BY id'))
    assert leaves == [{"id": "c1", "currentLeafId": "a2"}, {"id": "empty", "currentLeafId": None}]
    assert _run(_fetch(url, buckets)) == counted  # stats count each message once, as before

    in_thread(migrate.downgrade, url, BEFORE)
    columns = _run(
        _fetch(
            url,
            "SELECT column_name FROM information_schema.columns "
            "WHERE column_name IN ('parentId', 'currentLeafId')",
        )
    )
    assert columns == []
    assert len(_run(_fetch(url, "SELECT id FROM messages"))) == 5
