"""/api/users/me: profile, preferences, export and deletion."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.auth.conftest import count


async def test_profile_and_its_update(api: httpx.AsyncClient) -> None:
    me = (await api.get("/api/users/me")).json()
    assert (me["email"], me["name"]) == ("ada@example.com", "Ada")
    updated = await api.patch(
        "/api/users/me",
        json={"name": "Ada L.", "image": "https://example.com/a.png", "email": "evil@example.com"},
    )
    assert updated.status_code == 200
    body = updated.json()
    assert (body["name"], body["image"], body["email"]) == (
        "Ada L.", "https://example.com/a.png", "ada@example.com",
    )  # fmt: skip


async def test_the_image_must_be_an_https_url(api: httpx.AsyncClient) -> None:
    for image in ["http://example.com/a.png", "javascript:alert(1)", "file:///etc/passwd", "x"]:
        response = await api.patch("/api/users/me", json={"image": image})
        assert response.status_code == 400, image
    assert (await api.get("/api/users/me")).json()["image"] is None


async def test_preferences_start_with_prismas_defaults(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    assert await count(connection, "user_preferences") == 0
    prefs = (await api.get("/api/users/me/preferences")).json()
    assert (prefs["defaultModel"], prefs["theme"], prefs["language"]) == ("groq", "dark", "en")
    assert await count(connection, "user_preferences") == 1
    await api.get("/api/users/me/preferences")
    assert await count(connection, "user_preferences") == 1


async def test_preferences_are_validated(api: httpx.AsyncClient) -> None:
    ok = await api.patch(
        "/api/users/me/preferences",
        json={"defaultModel": "gemini", "theme": "system", "language": "pt-BR"},
    )
    assert ok.status_code == 200
    assert ok.json()["defaultModel"] == "gemini"  # a catalogue alias, even if not configured here
    for body in [
        {"defaultModel": "gpt-17"},
        {"theme": "neon"},
        {"language": "not a tag"},
        {"language": "x" * 50},
    ]:
        assert (await api.patch("/api/users/me/preferences", json=body)).status_code == 400, body
    assert (await api.get("/api/users/me/preferences")).json()["theme"] == "system"


async def test_export_holds_everything_but_no_tokens(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    await api.post("/api/chat", json={"message": "remember this"})
    response = await api.get("/api/users/me/export")
    body = response.json()
    assert body["user"]["email"] == "ada@example.com"
    [conversation] = body["conversations"]
    assert [m["content"] for m in conversation["messages"]] == ["remember this", "Hello, world!"]
    token = api.headers["authorization"].split()[1]
    assert token not in response.text
    assert "sessionToken" not in response.text and "access_token" not in response.text


async def test_deleting_the_account_removes_everything(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    await api.post("/api/chat", json={"message": "soon gone"})
    await api.get("/api/users/me/preferences")
    assert (await api.delete("/api/users/me")).status_code == 204
    for table in ["users", "conversations", "messages", "sessions", "user_preferences"]:
        assert await count(connection, table) == 0, table
    assert (await api.get("/api/users/me")).status_code == 401
