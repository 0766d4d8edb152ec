"""The baseline of T1 and T2: a bare ASGI app, asyncpg and msgspec, running the same SQL as
the real app for the same two routes: the session lookup (which the app caches for 2 s), then
the app's own compiled statement for the list, or for the page (ownership, messages and
reactions in one).

    BENCH_DATABASE_URL=postgresql://... uvicorn bench.bare_app:app
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from app.chat.services import _CONVERSATIONS, _MESSAGE_PAGES

SESSION = """SELECT s.id, s."sessionToken", s."userId", s.expires, s."createdAt", u.id, u.name,
    u.email, u."emailVerified", u.image, u."createdAt", u."updatedAt"
    FROM sessions s JOIN users u ON u.id = s."userId" WHERE s."sessionToken" = $1"""
# The app's own statements, compiled as the app compiles them: the same SQL by construction.
CONVERSATIONS = _CONVERSATIONS.sql
PAGE = _MESSAGE_PAGES[False, False].sql


pool: asyncpg.Pool | None = None
encoder = msgspec.json.Encoder()


def _json(status: int, body: Any) -> tuple[int, bytes]:
    return status, encoder.encode(body)


async def handle(path: str, query: str, token: str | None) -> tuple[int, bytes]:
    assert pool is not None
    async with pool.acquire() as db:
        session = await db.fetchrow(SESSION, token or "")
        if session is None or session["expires"] <= datetime.utcnow():
            return _json(401, {"status": 401, "title": "Unauthorized", "detail": "no session"})
        user_id = session["userId"]
        if path == "/api/conversations":
            rows = await db.fetch(
                CONVERSATIONS, *_CONVERSATIONS.arguments(user_id=user_id, size=21)
            )
            return _json(200, {"conversations": [
                {"id": r[0], "title": r[1], "createdAt": r[2], "updatedAt": r[3],
                 "messageCount": r[4], "lastMessage": r[5], "lastMessageRole": r[6],
                 "lastMessageAt": r[7]} for r in rows[:20]], "nextCursor": None})  # fmt: skip
        conversation_id = path.removeprefix("/api/conversations/").removesuffix("/messages")
        page = _MESSAGE_PAGES[False, False]
        rows = await db.fetch(PAGE, *page.arguments(user_id=user_id, conversation_id=conversation_id,
                                           size=51))  # fmt: skip
        if not rows:
            return _json(404, {"status": 404, "title": "Not Found", "detail": "none"})
        messages = [dict(r) for r in rows[:50] if r["id"] is not None]
        messages.reverse()
        return _json(200, {"messages": messages, "nextCursor": None})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                pool = await asyncpg.create_pool(
                    os.environ["BENCH_DATABASE_URL"], min_size=10, max_size=10
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if pool is not None:
                    await pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    headers = dict(scope["headers"])
    token = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
    status, body = await handle(scope["path"], scope["query_string"].decode(), token)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
