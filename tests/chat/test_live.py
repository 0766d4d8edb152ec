"""Behaviour that needs a real server and real commits: uvicorn on loopback, a pooled engine.

A client that goes away mid-stream; two requests at once on one conversation.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import msgspec
import pytest
import uvicorn
from sqlalchemy import text

from app.asgi import create_app
from app.db.engine import Database
from app.settings import Settings
from tests.chat.conftest import chat_settings
from tests.fakes.llm import FakeLLM, Scenario


@asynccontextmanager
async def live_app(
    settings: Settings, database_url: str
) -> AsyncIterator[tuple[str, str, Database]]:
    """(base URL, bearer token, database) of the app served by uvicorn; rows removed after."""
    database = Database.from_url(database_url, settings)
    email = f"live-{id(database)}@example.com"
    async with database.engine.begin() as conn:
        user_id = await conn.scalar(
            text('INSERT INTO users (id, email, "updatedAt") VALUES (:i, :e, now()) RETURNING id'),
            {"i": f"live{id(database)}", "e": email},
        )
        token = f"live-token-{id(database)}"
        await conn.execute(
            text(
                'INSERT INTO sessions (id, "sessionToken", "userId", expires) '
                "VALUES (:i, :t, :u, now() + interval '1 day')"
            ),
            {"i": f"s{id(database)}", "t": token, "u": user_id},
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, database=database),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}", token, database
    finally:
        server.should_exit = True
        await task
        cleanup = Database.from_url(database_url, settings)
        async with cleanup.engine.begin() as conn:
            await conn.execute(text("DELETE FROM users WHERE email = :e"), {"e": email})
        await cleanup.engine.dispose()


async def _assistant_rows(database: Database, conversation_id: str) -> list[tuple[str, str]]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT status, content FROM messages "
                "WHERE \"conversationId\" = :c AND role = 'assistant'"
            ),
            {"c": conversation_id},
        )
        return [(r.status, r.content) for r in rows]


async def test_a_client_that_leaves_mid_stream_does_not_stop_the_answer(
    settings: Settings, database_url: str, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(chunks=["part "] * 40, gap=0.03))
    async with live_app(chat_settings(settings, groq_fake), database_url) as (url, token, database):
        conversation_id = None
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            client.stream(
                "POST",
                "/api/chat",
                json={"message": "Tell me a long story", "stream": True},
                headers={"authorization": f"Bearer {token}"},
            ) as response,
        ):
            deltas = 0
            async for line in response.aiter_lines():
                if (
                    line.startswith("data:")
                    and '"conversationId"' in line
                    and conversation_id is None
                ):
                    conversation_id = line.split('"conversationId":"', 1)[1].split('"', 1)[0]
                if line.startswith("event: delta"):
                    deltas += 1
                if deltas >= 2:
                    break  # leaving the block closes the connection
        assert conversation_id is not None
        rows: list[tuple[str, str]] = []
        for _ in range(100):
            rows = await _assistant_rows(database, conversation_id)
            if rows and rows[0][0] != "streaming":
                break
            await asyncio.sleep(0.05)
        assert rows == [("complete", "part " * 40)]
        assert groq_fake.disconnects == 0 and groq_fake.completed == 1
        await database.engine.dispose()


async def test_two_requests_at_once_on_one_conversation_give_one_409(
    settings: Settings, database_url: str, groq_fake: FakeLLM
) -> None:
    groq_fake.default = Scenario(chunks=["slow "] * 10, gap=0.05)
    async with live_app(chat_settings(settings, groq_fake), database_url) as (url, token, database):
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as client:
            created = await client.post("/api/conversations", json={"title": "race"})
            conversation_id = created.json()["id"]
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/api/chat", json={"message": f"q{i}", "conversationId": conversation_id}
                    )
                    for i in range(2)
                )
            )
            assert sorted(a.status_code for a in answers) == [200, 409]
            conflict = next(a for a in answers if a.status_code == 409)
            assert conflict.headers["content-type"].startswith("application/problem+json")
            # Afterwards the conversation is free again.
            again = await client.post(
                "/api/chat", json={"message": "q3", "conversationId": conversation_id}
            )
            assert again.status_code == 200
        assert len(await _assistant_rows(database, conversation_id)) == 2
        await database.engine.dispose()


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*")


async def test_stop_on_the_generating_process_ends_the_stream_as_cancelled(
    settings: Settings, database_url: str, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(chunks=["part "] * 200, gap=0.03))
    async with live_app(chat_settings(settings, groq_fake), database_url) as (url, token, database):
        headers = {"authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as client,
            client.stream(
                "POST", "/api/chat", json={"message": "Go on and on", "stream": True}
            ) as response,
        ):
            events: list[tuple[str, str]] = []
            name = ""
            stopped = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, line[6:]))
                    if stopped is None and sum(n == "delta" for n, _ in events) == 2:
                        start = msgspec.json.decode(events[0][1])
                        stopped = await client.post(f"/api/chat/{start['conversationId']}/stop")
        assert stopped is not None and stopped.status_code == 200
        assert stopped.json()["stopped"] is True
        final_name, final_data = events[-1]
        final = msgspec.json.decode(final_data)
        assert final_name == "error" and final["code"] == "cancelled"
        assert final["assistantMessage"]["status"] == "cancelled"
        assert stopped.json()["message"]["content"] == final["assistantMessage"]["content"]
        rows = await _assistant_rows(database, start["conversationId"])
        assert rows == [("cancelled", final["assistantMessage"]["content"])]
        for _ in range(40):  # the fake notices at its next write
            if groq_fake.disconnects:
                break
            await asyncio.sleep(0.05)
        assert groq_fake.disconnects == 1
        await database.engine.dispose()


async def test_an_answer_given_whole_is_stored_when_its_json_arrives(
    settings: Settings, database_url: str, groq_fake: FakeLLM
) -> None:
    """Another connection holds the answer's row locked past the time a stream waits for the
    last write (2 s): the JSON answer waits for that write, so what the client reads next (a
    page, a share snapshot) has the answer, not a row still `streaming`."""
    groq_fake.next(Scenario(chunks=["held "] * 4, gap=0.25))
    async with live_app(chat_settings(settings, groq_fake), database_url) as (url, token, database):
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            asked = asyncio.create_task(
                client.post(
                    "/api/chat",
                    json={"message": "Answer slowly"},
                    headers={"authorization": f"Bearer {token}"},
                )
            )
            async with database.engine.connect() as locker:
                answer_id = None
                for _ in range(100):  # the answer row, committed before the model is asked
                    answer_id = await locker.scalar(
                        text(
                            "SELECT m.id FROM messages m JOIN sessions s "
                            'ON s."userId" = m."userId" WHERE s."sessionToken" = :t '
                            "AND m.role = 'assistant' AND m.status = 'streaming'"
                        ),
                        {"t": token},
                    )
                    if answer_id is not None:
                        break
                    await asyncio.sleep(0.02)
                assert answer_id is not None
                await locker.execute(
                    text("SELECT 1 FROM messages WHERE id = :a FOR UPDATE"), {"a": answer_id}
                )
                await asyncio.sleep(3.5)  # the answer ends meanwhile; its last write waits
                await locker.commit()
            response = await asked
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["aiMessage"]["id"] == answer_id
        assert await _assistant_rows(database, body["conversationId"]) == [
            ("complete", "held " * 4)
        ]
        await database.engine.dispose()
