"""Chat fixtures: an app whose Groq (and Gemini fallback) are the loopback fakes."""

from __future__ import annotations

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


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse a text/event-stream body into (event, data) pairs."""
    events = []
    for block in body.replace("\r\n", "\n").strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], msgspec.json.decode(fields.get("data", "null"))))
    return events
