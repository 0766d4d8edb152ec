"""Chat fixtures: an app whose Groq (and Gemini fallback) are the loopback fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.settings import Settings
from tests.auth.conftest import make_session, make_user
from tests.conftest import http_client
from tests.fakes.llm import FakeLLM
from tests.llm.conftest import provider_settings


def chat_settings(
    settings: Settings, groq: FakeLLM, gemini: FakeLLM | None = None, **extra: Any
) -> Settings:
    changes: dict[str, Any] = {
        "groq_api_key": "gsk_test_key",
        "groq_base_url": groq.url,
        "system_prompt": "You are a test assistant.",
        **extra,
    }
    if gemini is not None:
        changes |= {"gemini_api_key": "gemini-key", "gemini_base_url": gemini.url}
    return provider_settings(settings, **changes)


@pytest.fixture
async def api(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in (bearer) as Ada, chatting with the fake Groq."""
    user_id = await make_user(connection, "ada@example.com", "Ada")
    token = await make_session(connection, user_id)
    app = create_app(chat_settings(settings, groq_fake), database=Database.bound_to(connection))
    async with http_client(app) as client:
        client.headers["authorization"] = f"Bearer {token}"
        client.user_id = user_id  # type: ignore[attr-defined]
        yield client


async def chat_json(
    api: httpx.AsyncClient, message: str, conversation_id: str | None = None
) -> dict[str, Any]:
    """One chat turn through this API's JSON body, answered 200; the answer's JSON."""
    body: dict[str, Any] = {"message": message}
    if conversation_id:
        body["conversationId"] = conversation_id
    response = await api.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse a text/event-stream body into (event, data) pairs."""
    events = []
    for block in body.replace("\r\n", "\n").strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], msgspec.json.decode(fields.get("data", "null"))))
    return events


def ui_body(chat_id: str, question: str, message_id: str = "q1") -> dict[str, Any]:
    """An AI SDK request that sends only the last message."""
    parts = [{"type": "text", "text": question}]
    return {"id": chat_id, "message": {"id": message_id, "role": "user", "parts": parts}}


async def read_ui_stream(
    response: httpx.Response, two_deltas: asyncio.Event | None = None
) -> list[dict[str, Any]]:
    """The chunks of a UI message stream as they come (`[DONE]` as a chunk of its own);
    `two_deltas` is set once two text deltas have arrived."""
    chunks: list[dict[str, Any]] = []
    async for line in response.aiter_lines():
        if line == "data: [DONE]":
            chunks.append({"type": "[DONE]"})
        elif line.startswith("data: "):
            chunks.append(msgspec.json.decode(line[6:]))
            if two_deltas and sum(c["type"] == "text-delta" for c in chunks) >= 2:
                two_deltas.set()
    return chunks


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


def answering(
    client: httpx.AsyncClient, url: str, chat_id: str, question: str
) -> tuple[asyncio.Task[list[dict[str, Any]]], asyncio.Event]:
    """Ask in the background; the event is set once two text deltas have arrived."""
    two_deltas = asyncio.Event()

    async def read() -> list[dict[str, Any]]:
        body = ui_body(chat_id, question)
        async with client.stream("POST", f"{url}/api/chat", json=body) as response:
            assert response.status_code == 200, await response.aread()
            return await read_ui_stream(response, two_deltas)

    return asyncio.create_task(read()), two_deltas
