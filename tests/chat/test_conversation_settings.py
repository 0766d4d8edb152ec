"""Per-conversation settings (issue 23, item 3) through HTTP: set at creation and later, a
default system prompt in the preferences, each reaching the fake vendor in its own wire terms,
recorded with each answer, and a model's limits as a clear 400."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.settings import Settings
from tests.auth.conftest import count, make_session, make_user
from tests.chat.conftest import chat_settings
from tests.conftest import http_client
from tests.fakes.llm import FakeLLM


@pytest.fixture
async def both(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in as Ada, with Groq and Gemini (both fakes) configured."""
    user_id = await make_user(connection, "ada@example.com", "Ada")
    token = await make_session(connection, user_id)
    app = create_app(
        chat_settings(settings, groq_fake, gemini_fake), database=Database.bound_to(connection)
    )
    async with http_client(app) as client:
        client.headers["authorization"] = f"Bearer {token}"
        yield client


async def _answer_row(connection: AsyncConnection, message_id: str) -> object:
    return (
        await connection.execute(text("SELECT * FROM messages WHERE id = :i"), {"i": message_id})
    ).one()


async def test_settings_given_at_creation_reach_groq_as_its_own_parameters(
    both: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    created = await both.post(
        "/api/conversations",
        json={
            "title": "Poems",
            "systemPrompt": "You answer in rhyme.",
            "model": "groq/llama-3.1-8b-instant",
            "temperature": 0.3,
            "maxOutputTokens": 500,
        },
    )
    assert created.status_code == 201, created.text
    conversation = created.json()
    assert (conversation["systemPrompt"], conversation["model"]) == (
        "You answer in rhyme.", "groq/llama-3.1-8b-instant",
    )  # fmt: skip
    assert (conversation["temperature"], conversation["maxOutputTokens"]) == (0.3, 500)
    assert conversation["titleSource"] == "user"

    answer = await both.post(
        "/api/chat", json={"conversationId": conversation["id"], "message": "A cat?"}
    )
    assert answer.status_code == 200, answer.text
    [sent] = groq_fake.received
    assert sent.body["model"] == "llama-3.1-8b-instant"
    assert sent.body["temperature"] == 0.3
    assert sent.body["max_completion_tokens"] == 500
    assert sent.body["messages"][0] == {"role": "system", "content": "You answer in rhyme."}
    ai = answer.json()["aiMessage"]
    assert (ai["model"], ai["temperature"], ai["maxOutputTokens"], ai["systemPrompt"]) == (
        "groq/llama-3.1-8b-instant", 0.3, 500, "You answer in rhyme.",
    )  # fmt: skip
    exported = (await both.get("/api/users/me/export")).json()["conversations"][0]
    assert (exported["systemPrompt"], exported["temperature"], exported["titleSource"]) == (
        "You answer in rhyme.", 0.3, "user",
    )  # fmt: skip
    assert exported["messages"][-1]["temperature"] == 0.3
    row = await _answer_row(connection, ai["id"])
    assert (row.temperature, row.maxOutputTokens, row.systemPrompt) == (  # type: ignore[attr-defined]
        0.3, 500, "You answer in rhyme.",
    )  # fmt: skip


async def test_settings_changed_later_reach_gemini_as_generation_config_and_system_instruction(
    both: httpx.AsyncClient, gemini_fake: FakeLLM, groq_fake: FakeLLM
) -> None:
    first = (await both.post("/api/chat", json={"message": "Hello"})).json()
    conversation_id = first["conversationId"]
    assert groq_fake.received[-1].body.get("temperature") is None  # nothing set: not sent

    changed = await both.patch(
        f"/api/conversations/{conversation_id}",
        json={
            "model": "gemini/gemini-2.5-flash-lite",
            "temperature": 1.5,
            "maxOutputTokens": 256,
            "systemPrompt": "Be brief.",
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Hello"  # the title is left alone
    answer = await both.post(
        "/api/chat", json={"conversationId": conversation_id, "message": "And now?"}
    )
    assert answer.status_code == 200, answer.text
    [sent] = gemini_fake.received
    assert sent.path == "/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent"
    assert sent.body["generationConfig"]["temperature"] == 1.5
    assert sent.body["generationConfig"]["maxOutputTokens"] == 256
    assert sent.body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert answer.json()["aiMessage"]["temperature"] == 1.5

    # Each answer keeps what it was made with; null takes a setting back to the default.
    await both.patch(f"/api/conversations/{conversation_id}", json={"temperature": None})
    again = await both.post(
        "/api/chat", json={"conversationId": conversation_id, "message": "Once more"}
    )
    assert "temperature" not in gemini_fake.received[-1].body["generationConfig"]
    page = (await both.get(f"/api/conversations/{conversation_id}/messages")).json()
    temperatures = [m["temperature"] for m in page["messages"] if m["role"] == "assistant"]
    assert temperatures == [None, 1.5, None]
    assert again.json()["aiMessage"]["maxOutputTokens"] == 256


async def test_the_preferences_default_system_prompt_applies_and_an_empty_one_sends_none(
    both: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    saved = await both.patch("/api/users/me/preferences", json={"systemPrompt": "Speak French."})
    assert saved.status_code == 200 and saved.json()["systemPrompt"] == "Speak French."
    first = (await both.post("/api/chat", json={"message": "Hi"})).json()
    assert groq_fake.received[-1].body["messages"][0] == {
        "role": "system", "content": "Speak French.",
    }  # fmt: skip

    conversation_id = first["conversationId"]
    await both.patch(f"/api/conversations/{conversation_id}", json={"systemPrompt": ""})
    await both.post("/api/chat", json={"conversationId": conversation_id, "message": "Bye"})
    roles = [m["role"] for m in groq_fake.received[-1].body["messages"]]
    assert "system" not in roles

    await both.patch("/api/users/me/preferences", json={"systemPrompt": None})
    other = (await both.post("/api/chat", json={"message": "Server default?"})).json()
    assert groq_fake.received[-1].body["messages"][0]["content"] == "You are a test assistant."
    assert other["aiMessage"]["systemPrompt"] == "You are a test assistant."


async def test_a_models_output_limit_is_a_clear_400_and_nothing_is_stored(
    both: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    too_many = await both.post(
        "/api/conversations",
        json={"model": "groq/llama-3.1-8b-instant", "maxOutputTokens": 9000},
    )
    assert too_many.status_code == 400
    assert "8192" in too_many.json()["detail"] and "maxOutputTokens" in too_many.json()["detail"]
    assert await count(connection, "conversations") == 0

    # Allowed by the conversation's model, too many for the one a request asks for.
    conversation = (
        await both.post(
            "/api/conversations",
            json={"model": "groq/llama-3.3-70b-versatile", "maxOutputTokens": 20000},
        )
    ).json()
    refused = await both.post(
        "/api/chat",
        json={
            "conversationId": conversation["id"],
            "message": "Hi",
            "model": "groq/llama-3.1-8b-instant",
        },
    )
    assert refused.status_code == 400
    assert "llama-3.1-8b-instant" in refused.json()["detail"]
    assert await count(connection, "messages") == 0
    assert groq_fake.received == []

    # Changing the model to one with a lower limit is refused as well.
    lower = await both.patch(
        f"/api/conversations/{conversation['id']}", json={"model": "groq/llama-3.1-8b-instant"}
    )
    assert lower.status_code == 400


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"maxOutputTokens": 0}, "maxOutputTokens"),
        ({"maxOutputTokens": 1.5}, "maxOutputTokens"),
        ({"maxOutputTokens": 10**12}, "maxOutputTokens"),  # beyond any model (and int4)
        ({"systemPrompt": "x" * 8001}, "systemPrompt"),
        ({"model": "nope/unknown"}, "available"),
        ({"model": "dev-echo"}, "available"),  # known, but not offered here
    ],
)
async def test_bad_settings_are_a_400_naming_the_field(
    both: httpx.AsyncClient, connection: AsyncConnection, body: dict[str, object], says: str
) -> None:
    created = await both.post("/api/conversations", json={"title": "Keep"})
    conversation_id = created.json()["id"]
    for response in (
        await both.post("/api/conversations", json=body),
        await both.patch(f"/api/conversations/{conversation_id}", json=body),
    ):
        assert response.status_code == 400, response.text
        assert says in response.text
    assert await count(connection, "conversations") == 1
    kept = (await both.get(f"/api/conversations/{conversation_id}")).json()
    assert (kept["temperature"], kept["maxOutputTokens"], kept["systemPrompt"]) == (
        None, None, None,
    )  # fmt: skip


async def test_a_long_system_prompt_at_the_limit_is_kept_whole(
    both: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    prompt = "p" * 8000
    too_long = await both.patch("/api/users/me/preferences", json={"systemPrompt": prompt + "p"})
    assert too_long.status_code == 400
    conversation = (await both.post("/api/conversations", json={"systemPrompt": prompt})).json()
    await both.post("/api/chat", json={"conversationId": conversation["id"], "message": "Hi"})
    assert groq_fake.received[-1].body["messages"][0]["content"] == prompt


async def test_another_users_conversation_settings_are_not_found(
    both: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    eve = await make_user(connection, "eve@example.com", "Eve")
    eves = await connection.execute(
        text(
            'INSERT INTO conversations (id, "userId", title, "updatedAt") '
            "VALUES ('eves', :u, 'Eve''s', now()) RETURNING id"
        ),
        {"u": eve},
    )
    assert eves.scalar() == "eves"
    response = await both.patch("/api/conversations/eves", json={"temperature": 1.0})
    assert response.status_code == 404
    temperature = await connection.scalar(
        text("SELECT temperature FROM conversations WHERE id = 'eves'")
    )
    assert temperature is None


async def test_regenerate_uses_the_conversations_settings(
    both: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    conversation = (
        await both.post("/api/conversations", json={"temperature": 0.9, "maxOutputTokens": 64})
    ).json()
    await both.post("/api/chat", json={"conversationId": conversation["id"], "message": "Hi"})
    again = await both.post(f"/api/conversations/{conversation['id']}/regenerate")
    assert again.status_code == 200, again.text
    sent = groq_fake.received[-1].body
    assert (sent["temperature"], sent["max_completion_tokens"]) == (0.9, 64)
    assert again.json()["aiMessage"]["temperature"] == 0.9
