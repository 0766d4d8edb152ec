"""POST /api/chat through HTTP with the fake providers: storage, streaming, history window,
model choice, failures, limits. SECURITY.md items 17, 19-22, 24-27."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.settings import Settings
from tests.auth.conftest import count
from tests.chat.conftest import chat_settings, sse_events
from tests.conftest import http_client
from tests.fakes.llm import FakeLLM, Scenario


async def _row(connection: AsyncConnection, message_id: str) -> Any:
    """The message row once stored: an answer's last write may still be on its way when the
    response has ended (the stream waits for it up to 2 s, then ends and the write goes on)."""
    deadline = time.monotonic() + 15
    while True:
        row = (
            await connection.execute(
                text("SELECT * FROM messages WHERE id = :i"), {"i": message_id}
            )
        ).one()
        if row.status != "streaming" or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.05)


async def test_json_chat_stores_both_messages_in_a_new_conversation(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    response = await api.post(
        "/api/chat",
        json={"message": "Explain PostgreSQL keyset pagination to a new engineer please, briefly"},
    )
    assert response.status_code == 200
    body = response.json()
    conversation = (
        await connection.execute(
            text("SELECT * FROM conversations WHERE id = :i"), {"i": body["conversationId"]}
        )
    ).one()
    assert conversation.title == "Explain PostgreSQL keyset pagination to a new engineer"
    assert len(conversation.title) <= 60
    assert conversation.generatingUntil is None

    user = await _row(connection, body["userMessage"]["id"])
    assert (user.role, user.userId) == ("user", api.user_id)  # type: ignore[attr-defined]
    ai = await _row(connection, body["aiMessage"]["id"])
    assert ai.content == "Hello, world!" == body["aiMessage"]["content"]
    assert (ai.role, ai.status, ai.model, ai.provider) == (
        "assistant", "complete", "groq/llama-3.3-70b-versatile", "groq",
    )  # fmt: skip
    assert (ai.promptTokens, ai.completionTokens, ai.tokensEstimated) == (11, 7, False)
    assert ai.timeToFirstTokenMs is not None and ai.totalTimeMs >= ai.timeToFirstTokenMs
    assert ai.promptMessageIds == [user.id]
    assert ai.replyToId == user.id
    assert conversation.updatedAt >= ai.createdAt
    assert await count(connection, "messages") == 2


async def test_streamed_chat_sends_start_batched_deltas_and_done(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(chunks=[f"w{i} " for i in range(200)]))
    response = await api.post("/api/chat", json={"message": "Count", "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    start, done = events[0][1], events[-1][1]
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert "".join(deltas) == "".join(f"w{i} " for i in range(200))
    assert 1 <= len(deltas) < 200  # batched, not one event per token
    assert done["assistantMessage"]["content"] == "".join(deltas)
    assert start["userMessage"]["content"] == "Count"
    stored = await _row(connection, done["assistantMessage"]["id"])
    assert stored.status == "complete"


async def test_accept_event_stream_asks_for_streaming(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/chat", json={"message": "Hi"}, headers={"accept": "text/event-stream"}
    )
    assert [name for name, _ in sse_events(response.text)][-1] == "done"


async def test_history_window_keeps_the_last_ten_messages_in_order(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    conversation_id = None
    for turn in range(15):
        body = {"message": f"question {turn}"}
        if conversation_id:
            body["conversationId"] = conversation_id
        conversation_id = (await api.post("/api/chat", json=body)).json()["conversationId"]
    sent = groq_fake.received[-1].body["messages"]
    assert sent[0] == {"role": "system", "content": "You are a test assistant."}
    assert len(sent) == 1 + 10 + 1
    assert sent[-1] == {"role": "user", "content": "question 14"}
    earlier = sent[1:-1]
    assert [m["role"] for m in earlier] == ["user", "assistant"] * 5
    assert [m["content"] for m in earlier if m["role"] == "user"] == [
        f"question {n}" for n in range(9, 14)
    ]


async def test_history_window_respects_the_models_token_budget(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM, tmp_path: Path
) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[[models]]\nid = "groq/tiny"\nprovider = "groq"\nmodel = "tiny"\nname = "Tiny"\n'
        "context_window = 3000\nmax_output_tokens = 500\n"
    )
    configured = chat_settings(settings, groq_fake, models_file=models, chat_context_margin=100)
    from tests.auth.conftest import make_session, make_user

    token = await make_session(connection, await make_user(connection, "t@example.com"))
    app = create_app(configured, database=Database.bound_to(connection))
    async with http_client(app) as client:
        client.headers["authorization"] = f"Bearer {token}"
        conversation_id = None
        for turn in range(4):
            body = {"message": f"{turn} " + "x" * 2400, "model": "groq/tiny"}  # ~600 tokens each
            if conversation_id:
                body["conversationId"] = conversation_id
            conversation_id = (await client.post("/api/chat", json=body)).json()["conversationId"]
        huge = "y" * 20_000  # alone larger than the budget: still sent
        await client.post(
            "/api/chat",
            json={"message": huge, "conversationId": conversation_id, "model": "groq/tiny"},
        )
    third = groq_fake.received[3].body["messages"]
    # budget 3000 - 500 - 100 - system - new message(~604) leaves room for three earlier turns
    assert third[-1]["content"].startswith("3 ")
    assert 2 <= len(third) - 2 < 6
    assert sum(len(m["content"]) for m in third) < 4 * 3000
    last = groq_fake.received[4].body["messages"]
    assert [m["role"] for m in last] == ["system", "user"]
    assert last[-1]["content"] == huge


async def test_an_unknown_model_is_a_400_naming_the_available_ones(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    response = await api.post("/api/chat", json={"message": "Hi", "model": "gemini"})
    assert response.status_code == 400
    assert "groq/llama-3.3-70b-versatile" in response.json()["detail"]
    assert await count(connection, "messages") == 0
    assert await count(connection, "conversations") == 0


async def test_the_users_default_model_is_used_when_none_is_asked(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    await api.patch("/api/users/me/preferences", json={"defaultModel": "groq/llama-3.1-8b-instant"})
    body = (await api.post("/api/chat", json={"message": "Hi"})).json()
    assert body["aiMessage"]["model"] == "groq/llama-3.1-8b-instant"
    assert groq_fake.received[-1].body["model"] == "llama-3.1-8b-instant"
    asked = (await api.post("/api/chat", json={"message": "Hi", "model": "groq"})).json()
    assert asked["aiMessage"]["model"] == "groq/llama-3.3-70b-versatile"


async def test_a_failure_before_any_token_is_an_error_event_and_an_error_row(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(status=503))
    response = await api.post("/api/chat", json={"message": "Hi", "stream": True})
    events = sse_events(response.text)
    assert [name for name, _ in events] == ["start", "error"]
    error = events[-1][1]
    assert error["code"] == "unavailable"
    assert "secret" not in response.text and "gsk_" not in response.text
    row = await _row(connection, error["assistantMessage"]["id"])
    assert (row.status, row.content, row.errorCode) == ("error", "", "unavailable")
    # The question was stored before the model was asked, and survives the failure.
    assert await count(connection, "messages", "role = 'user' AND content = 'Hi'") == 1
    assert await count(connection, "messages") == 2


async def test_a_failure_mid_answer_keeps_the_partial_text_as_incomplete(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(disconnect_after=2))
    body = (await api.post("/api/chat", json={"message": "Hi"})).json()
    assert body["aiMessage"]["status"] == "incomplete"
    row = await _row(connection, body["aiMessage"]["id"])
    assert (row.status, row.content, row.errorCode) == ("incomplete", "Hello, ", "unavailable")
    assert await count(connection, "messages", "role = 'assistant'") == 1


async def test_a_rate_limited_provider_falls_back_and_records_the_attempt(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    from tests.auth.conftest import make_session, make_user

    token = await make_session(connection, await make_user(connection, "f@example.com"))
    app = create_app(
        chat_settings(settings, groq_fake, gemini_fake), database=Database.bound_to(connection)
    )
    groq_fake.next(Scenario(status=429, retry_after="3"))
    async with http_client(app) as client:
        body = (
            await client.post(
                "/api/chat", json={"message": "Hi"}, headers={"authorization": f"Bearer {token}"}
            )
        ).json()
    ai = body["aiMessage"]
    assert (ai["status"], ai["provider"], ai["model"]) == (
        "complete",
        "gemini",
        "gemini/gemini-2.5-flash",
    )
    assert ai["attempts"][0]["kind"] == "rate_limited"


async def test_a_busy_conversation_refuses_a_second_generation(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    conversation_id = (await api.post("/api/chat", json={"message": "Hi"})).json()["conversationId"]
    await connection.execute(
        text("UPDATE conversations SET \"generatingUntil\" = now() + interval '1 minute'")
    )
    response = await api.post(
        "/api/chat", json={"message": "Again", "conversationId": conversation_id}
    )
    assert response.status_code == 409
    assert await count(connection, "messages", "content = 'Again'") == 0
    # An expired lease (a crashed process) does not block for ever.
    await connection.execute(
        text("UPDATE conversations SET \"generatingUntil\" = now() - interval '1 minute'")
    )
    again = await api.post(
        "/api/chat", json={"message": "Again", "conversationId": conversation_id}
    )
    assert again.status_code == 200


async def test_chat_is_rate_limited_per_user(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    from tests.auth.conftest import make_session, make_user

    token = await make_session(connection, await make_user(connection, "r@example.com"))
    app = create_app(
        chat_settings(settings, groq_fake, chat_rate_limit=2),
        database=Database.bound_to(connection),
    )
    async with http_client(app) as client:
        client.headers["authorization"] = f"Bearer {token}"
        codes = [
            (await client.post("/api/chat", json={"message": "Hi"})).status_code for _ in range(3)
        ]
        limited = await client.post("/api/chat", json={"message": "Hi"})
    assert codes == [200, 200, 429]
    assert int(limited.headers["retry-after"]) >= 1
    assert await count(connection, "messages", "role = 'user'") == 2


async def test_ids_roles_and_user_ids_in_the_body_are_ignored(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    body = (
        await api.post(
            "/api/chat",
            json={
                "message": "Hi",
                "userId": "someone-else",
                "role": "assistant",
                "id": "chosen-id",
            },
        )
    ).json()
    row = await _row(connection, body["userMessage"]["id"])
    assert (row.role, row.userId) == ("user", api.user_id)  # type: ignore[attr-defined]
    assert row.id != "chosen-id"


async def test_oversized_and_malformed_requests_are_refused_and_store_nothing(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    too_long = await api.post("/api/chat", json={"message": "x" * 32_001})
    assert too_long.status_code == 400 and "32000" in too_long.json()["detail"]
    empty = await api.post("/api/chat", json={"message": "   "})
    assert empty.status_code == 400
    missing = await api.post("/api/chat", json={"conversationId": "x"})
    assert missing.status_code == 400 and "message" in missing.json()["detail"]
    broken = await api.post(
        "/api/chat", content=b'{"message": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    huge = await api.post(
        "/api/chat", content=b'{"message": "' + b"x" * 17_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert huge.status_code == 413
    wrong_type = await api.post("/api/chat", json={"message": 42})
    assert wrong_type.status_code == 400
    assert await count(connection, "messages") == 0
