"""Reasoning (issue 23, item 5) through HTTP, with the fakes speaking each vendor's reasoning
wire format: Groq's gpt-oss `delta.reasoning`, Gemini 2.5's parts with `thought: true`. It is
stored apart from the answer, streamed in both formats, and never sent back to a model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.settings import Settings
from tests.auth.conftest import make_session, make_user
from tests.chat.conftest import chat_settings, read_ui_stream, sse_events, text_of, ui_body
from tests.conftest import http_client
from tests.fakes.llm import FakeLLM, Scenario

THOUGHTS = ["The user asks for a sum. ", "Two plus two ", "is four."]


@pytest.fixture
async def both(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> AsyncIterator[httpx.AsyncClient]:
    user_id = await make_user(connection, "ada@example.com", "Ada")
    token = await make_session(connection, user_id)
    app = create_app(
        chat_settings(settings, groq_fake, gemini_fake), database=Database.bound_to(connection)
    )
    async with http_client(app) as client:
        client.headers["authorization"] = f"Bearer {token}"
        yield client


async def _stored(connection: AsyncConnection, message_id: str) -> object:
    return (
        await connection.execute(
            text("SELECT content, reasoning, status FROM messages WHERE id = :i"),
            {"i": message_id},
        )
    ).one()


async def test_groq_gpt_oss_reasoning_streams_as_reasoning_events_and_is_stored_apart(
    both: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(reasoning=THOUGHTS, chunks=["2 + 2 = ", "4."]))
    response = await both.post(
        "/api/chat",
        json={"message": "What is 2+2?", "model": "groq/openai/gpt-oss-120b", "stream": True},
    )
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    assert names.index("reasoning") < names.index("delta")
    assert "".join(d["text"] for n, d in events if n == "reasoning") == "".join(THOUGHTS)
    assert "".join(d["text"] for n, d in events if n == "delta") == "2 + 2 = 4."
    [sent] = groq_fake.received
    assert sent.body["model"] == "openai/gpt-oss-120b"
    assert sent.body["include_reasoning"] is True

    done = events[-1][1]["assistantMessage"]
    assert (done["content"], done["reasoning"]) == ("2 + 2 = 4.", "".join(THOUGHTS))
    row = await _stored(connection, done["id"])
    assert (row.content, row.reasoning, row.status) == (  # type: ignore[attr-defined]
        "2 + 2 = 4.", "".join(THOUGHTS), "complete",
    )  # fmt: skip

    # The next prompt holds the answer, never the reasoning.
    await both.post(
        "/api/chat",
        json={"conversationId": done["conversationId"], "message": "And 3+3?",
              "model": "groq/openai/gpt-oss-120b"},
    )  # fmt: skip
    prompt = groq_fake.received[-1].body["messages"]
    assert {"role": "assistant", "content": "2 + 2 = 4."} in prompt
    assert not any("Two plus two" in m["content"] for m in prompt)


async def test_gemini_thought_summaries_stream_as_ai_sdk_reasoning_parts(
    both: httpx.AsyncClient, connection: AsyncConnection, gemini_fake: FakeLLM
) -> None:
    gemini_fake.next(Scenario(reasoning=THOUGHTS, chunks=["Four", "."]))
    body = ui_body("thinkingChat01", "What is 2+2?") | {"model": "gemini/gemini-2.5-flash"}
    async with both.stream("POST", "/api/chat", json=body) as response:
        assert response.status_code == 200
        chunks = await read_ui_stream(response)
    types = [c["type"] for c in chunks]
    assert types[:2] == ["start", "reasoning-start"]
    assert types.index("reasoning-end") < types.index("text-start")
    assert types[-2:] == ["finish", "[DONE]"]
    reasoning = "".join(c["delta"] for c in chunks if c["type"] == "reasoning-delta")
    assert reasoning == "".join(THOUGHTS)
    assert text_of(chunks) == "Four."
    ids = {c["id"] for c in chunks if c["type"].startswith("reasoning-")}
    assert len(ids) == 1 and ids != {c["id"] for c in chunks if c["type"] == "text-start"}

    [sent] = gemini_fake.received
    thinking = sent.body["generationConfig"]["thinkingConfig"]
    assert thinking.get("includeThoughts", thinking.get("include_thoughts")) is True
    answer_id = chunks[0]["messageId"]
    row = await _stored(connection, answer_id)
    assert (row.content, row.reasoning) == ("Four.", "".join(THOUGHTS))  # type: ignore[attr-defined]
    page = (await both.get("/api/conversations/thinkingChat01/messages")).json()
    assert page["messages"][-1]["reasoning"] == "".join(THOUGHTS)


async def test_models_that_do_not_think_are_not_asked_to_and_have_no_reasoning(
    both: httpx.AsyncClient, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(reasoning=THOUGHTS))
    gemini_fake.next(Scenario(reasoning=THOUGHTS))
    groq = await both.post("/api/chat", json={"message": "Hi", "stream": True})
    lite = await both.post(
        "/api/chat",
        json={"message": "Hi", "stream": True, "model": "gemini/gemini-2.5-flash-lite"},
    )
    for response in (groq, lite):
        events = sse_events(response.text)
        assert "reasoning" not in [name for name, _ in events]
        assert events[-1][1]["assistantMessage"]["reasoning"] is None
    assert "include_reasoning" not in groq_fake.received[-1].body
    assert "thinkingConfig" not in gemini_fake.received[-1].body.get("generationConfig", {})


async def test_an_answer_that_failed_after_reasoning_keeps_it_as_incomplete(
    both: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(reasoning=THOUGHTS, chunks=["Four", "x", "y"], disconnect_after=1))
    response = await both.post(
        "/api/chat",
        json={"message": "2+2?", "model": "groq/openai/gpt-oss-120b", "stream": True},
    )
    events = sse_events(response.text)
    assert events[-1][0] == "error"
    stored = events[-1][1]["assistantMessage"]
    assert (stored["status"], stored["content"]) == ("incomplete", "Four")
    assert stored["reasoning"] == "".join(THOUGHTS)
    row = await _stored(connection, stored["id"])
    assert row.reasoning == "".join(THOUGHTS)  # type: ignore[attr-defined]
