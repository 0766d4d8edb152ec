"""The baseline of T1 and T2: a bare ASGI app, asyncpg and msgspec, running the same SQL as
the real app for the same two routes (session lookup, ownership check, page, reactions).

    BENCH_DATABASE_URL=postgresql://... uvicorn bench.bare_app:app
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

SESSION = """SELECT s.id, s."sessionToken", s."userId", s.expires, s."createdAt", u.id, u.name,
    u.email, u."emailVerified", u.image, u."createdAt", u."updatedAt"
    FROM sessions s JOIN users u ON u.id = s."userId" WHERE s."sessionToken" = $1"""
CONVERSATIONS = """SELECT conversations.id, conversations.title, conversations."createdAt",
    conversations."updatedAt",
    (SELECT count(*) FROM messages WHERE messages."conversationId" = conversations.id) AS message_count,
    left(last.content, 200) AS preview, last.role, last.at AS last_at
    FROM conversations LEFT OUTER JOIN LATERAL (
        SELECT messages.content AS content, messages.role AS role, messages."createdAt" AS at
        FROM messages WHERE messages."conversationId" = conversations.id
          AND messages."supersededAt" IS NULL
        ORDER BY messages."createdAt" DESC, messages.id DESC LIMIT 1) AS last ON true
    WHERE conversations."userId" = $1
    ORDER BY conversations."updatedAt" DESC, conversations.id DESC LIMIT $2"""
OWNED = """SELECT id, title, "userId", "createdAt", "updatedAt", "generatingUntil"
    FROM conversations WHERE id = $1 AND "userId" = $2"""
MESSAGES = """SELECT id, content, role, model, "conversationId", "userId", "createdAt", status,
    provider, "promptTokens", "completionTokens", "tokensEstimated", "timeToFirstTokenMs",
    "totalTimeMs", "finishReason", "errorCode", attempts, "promptMessageIds", "replyToId",
    "supersededAt" FROM messages
    WHERE "conversationId" = $1 AND "userId" = $2 AND "supersededAt" IS NULL
    ORDER BY "createdAt" DESC, id DESC LIMIT $3"""
REACTIONS = """SELECT "messageId", type FROM message_reactions
    WHERE "messageId" = ANY($1) AND "userId" = $2 ORDER BY type"""

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
            rows = await db.fetch(CONVERSATIONS, user_id, 21)
            return _json(200, {"conversations": [
                {"id": r["id"], "title": r["title"], "createdAt": r["createdAt"],
                 "updatedAt": r["updatedAt"], "messageCount": r["message_count"],
                 "lastMessage": r["preview"], "lastMessageRole": r["role"],
                 "lastMessageAt": r["last_at"]} for r in rows[:20]], "nextCursor": None})  # fmt: skip
        conversation_id = path.removeprefix("/api/conversations/").removesuffix("/messages")
        if await db.fetchrow(OWNED, conversation_id, user_id) is None:
            return _json(404, {"status": 404, "title": "Not Found", "detail": "none"})
        rows = list(reversed((await db.fetch(MESSAGES, conversation_id, user_id, 51))[:50]))
        await db.fetch(REACTIONS, [r["id"] for r in rows], user_id)  # as the app does
        return _json(200, {"messages": [dict(r) for r in rows], "nextCursor": None})


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
