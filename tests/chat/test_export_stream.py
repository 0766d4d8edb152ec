"""GET /api/users/me/export is streamed in keyset pages (issue 20, item 11): the document is
the whole `UserExport`, in order, across pages; one export per user runs at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db import migrate
from app.db.url import to_libpq
from app.settings import Settings
from app.users.exports import CONVERSATION_PAGE, MESSAGE_PAGE
from app.users.schemas import UserExport
from tests.conftest import DatabaseFactory, in_thread
from tests.ops.conftest import served, sign_in

# Rows made in SQL: `count` conversations, the first with `long` messages, the others with two.
CONVERSATIONS = """
    INSERT INTO conversations (id, title, "userId", "createdAt", "updatedAt")
    SELECT 'c' || lpad(g::text, 5, '0'), 'Talk ' || g, :uid,
           timestamp '2026-01-01' + g * interval '1 minute', timestamp '2026-01-01'
    FROM generate_series(1, :count) g
"""
MESSAGES = """
    INSERT INTO messages (id, content, role, "conversationId", "userId", "createdAt")
    SELECT 'm' || lpad(c::text, 5, '0') || '-' || lpad(g::text, 5, '0'), CAST(:body AS text) || g,
           CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,
           'c' || lpad(c::text, 5, '0'), :uid,
           timestamp '2026-01-01' + c * interval '1 minute' + g * interval '1 millisecond'
    FROM generate_series(1, :count) c, generate_series(1, :long) g
    WHERE c = 1 OR g <= 2
"""


async def _user_id(connection: AsyncConnection, email: str) -> str:
    found = await connection.scalar(text("SELECT id FROM users WHERE email = :e"), {"e": email})
    return str(found)


async def test_an_export_across_many_pages_holds_every_conversation_and_message_in_order(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    uid = await _user_id(connection, "ada@example.com")
    count, long = CONVERSATION_PAGE * 2 + 3, MESSAGE_PAGE * 2 + 7
    params = {"uid": uid, "count": count, "long": long, "body": "message "}
    await connection.execute(text(CONVERSATIONS), params)
    await connection.execute(text(MESSAGES), params)
    await connection.execute(
        text("UPDATE messages SET \"deletedAt\" = now() WHERE id = 'm00001-00003'")
    )
    response = await api.get("/api/users/me/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "attachment" in response.headers["content-disposition"]
    export = msgspec.json.decode(response.content, type=UserExport)  # the declared schema
    assert export.user.email == "ada@example.com"
    assert [c["id"] for c in export.conversations] == [f"c{n:05d}" for n in range(1, count + 1)]
    first, second = export.conversations[0]["messages"], export.conversations[1]["messages"]
    assert [m["content"] for m in first] == [
        f"message {g}" for g in range(1, long + 1) if g != 3
    ]  # in the trash: left out
    assert [m["content"] for m in second] == ["message 1", "message 2"]
    assert set(first[0]) >= {"id", "conversationId", "role", "content", "createdAt", "usage"}


@pytest.fixture(scope="module")
def export_database_url(databases: DatabaseFactory) -> str:
    url = databases.create()
    in_thread(migrate.upgrade, url)
    return url


@pytest.fixture
async def big_export(settings: Settings, export_database_url: str) -> AsyncIterator[str]:
    """The app on loopback, with a signed-in user whose export is ~12 MB; its base URL."""
    changed = settings.model_copy(
        update={"database_url": export_database_url, "auth_dev_login": True}
    )
    async with served(create_app(changed)) as base_url:
        yield base_url


async def test_a_second_export_at_once_is_refused_until_the_first_ends(
    big_export: str, export_database_url: str
) -> None:
    async with httpx.AsyncClient(base_url=big_export, timeout=30) as client:
        client.headers["authorization"] = f"Bearer {await sign_in(client, 'big@example.com')}"
        await _fill(export_database_url, "big@example.com")
        async with client.stream("GET", "/api/users/me/export") as first:
            assert first.status_code == 200
            await anext(first.aiter_bytes())  # started, and not read on
            second = await client.get("/api/users/me/export")
            assert second.status_code == 429
            assert int(second.headers["retry-after"]) >= 1
            assert "still running" in second.json()["detail"]
        # The first one's client went away: its slot comes back.
        for _ in range(100):
            third = await client.get("/api/users/me/export")
            if third.status_code != 429:
                break
            await asyncio.sleep(0.05)
        assert third.status_code == 200
        assert len(msgspec.json.decode(third.content, type=UserExport).conversations) == 3


async def _fill(database_url: str, email: str) -> None:
    """3 conversations, the first with 3,000 messages of 4 KB: more than socket buffers hold."""
    connection = await asyncpg.connect(to_libpq(database_url))
    try:
        uid = await connection.fetchval("SELECT id FROM users WHERE email = $1", email)
        if await connection.fetchval('SELECT count(*) FROM messages WHERE "userId" = $1', uid):
            return
        numbered = (
            MESSAGES.replace(":uid", "$1").replace(":count", "$2").replace(":long", "$3")
            .replace(":body", "$4")
        )  # fmt: skip
        await connection.execute(CONVERSATIONS.replace(":uid", "$1").replace(":count", "$2"),
                                 uid, 3)  # fmt: skip
        await connection.execute(numbered, uid, 3, 3000, "x" * 4000)
    finally:
        await connection.close()
