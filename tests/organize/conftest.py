"""Fixtures of the pins, archive and tags tests: Ada (`api`, chatting with the fake Groq) and a
second user, Bob, on the same app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.auth.conftest import make_session, make_user
from tests.chat.conftest import api  # noqa: F401 (a fixture, registered by import)


@pytest.fixture
async def bob(connection: AsyncConnection) -> dict[str, str]:
    """Bob's bearer header, for requests on Ada's app client."""
    user_id = await make_user(connection, "bob@example.com", "Bob")
    return {"authorization": f"Bearer {await make_session(connection, user_id)}"}


async def ok(response: Any, status: int = 200) -> Any:
    """The JSON of a response that must have `status`."""
    answer: httpx.Response = await response
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


async def new_conversation(client: httpx.AsyncClient, title: str, **headers: str) -> str:
    made = await ok(client.post("/api/conversations", json={"title": title}, headers=headers), 201)
    return str(made["id"])


async def new_tag(
    client: httpx.AsyncClient, name: str, color: str = "#2563eb", **headers: str
) -> str:
    made = await ok(
        client.post("/api/tags", json={"name": name, "color": color}, headers=headers), 201
    )
    return str(made["id"])


async def listed(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every conversation of the list with these parameters, page after page."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = await ok(client.get("/api/conversations", params=query))
        rows += page["conversations"]
        cursor = page["nextCursor"]
        if cursor is None:
            return rows
