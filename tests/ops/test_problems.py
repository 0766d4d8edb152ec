"""Validation errors name the field, every 400 lists `errors`, and exports name one charset."""

from __future__ import annotations

import httpx

from app.asgi import create_app
from app.settings import Settings
from tests.ops.conftest import served, sign_in


async def test_a_missing_field_is_named_as_itself(live_settings: Settings) -> None:
    async with (
        served(create_app(live_settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        token = await sign_in(client, "problems-missing@example.com")
        bearer = {"authorization": f"Bearer {token}"}
        chat = await client.post("/api/chat", json={}, headers=bearer)
        created = await client.post("/api/conversations", json={}, headers=bearer)
        rename = await client.patch(
            f"/api/conversations/{created.json()['id']}", json={}, headers=bearer
        )
        login = await client.post("/api/auth/dev-login", json={})
    # A PATCH names every field it takes: none of them is required on its own.
    assert rename.status_code == 400
    assert rename.json()["detail"].startswith("title, systemPrompt, model,")
    for answer, field in ((chat, "message"), (login, "email")):
        assert answer.status_code == 400
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["detail"] == f"{field}: required"
        assert body["errors"] == [{"field": field, "source": "body", "message": "required"}]


async def test_every_400_lists_what_was_refused_and_where(live_settings: Settings) -> None:
    async with (
        served(create_app(live_settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        bearer = {"authorization": f"Bearer {await sign_in(client, 'problems-400@example.com')}"}
        stats = await client.get("/api/users/me/stats", params={"days": 0}, headers=bearer)
        not_a_list = await client.post("/api/auth/dev-login", json=[1])
        typed = await client.get("/api/conversations", params={"limit": "ten"}, headers=bearer)
        reaction = await client.put("/api/messages/m1/reactions/love", headers=bearer)
        sign_in_error = await client.get("/api/auth/error", params={"error": "Verification"})
    assert stats.json()["errors"] == [
        {"field": "days", "source": "query", "message": "must be between 1 and 366"}
    ]
    assert not_a_list.json()["errors"] == [
        {"field": None, "source": "body", "message": "Expected `object`, got `array`"}
    ]
    assert typed.json()["errors"][0]["field"] == "limit"
    assert typed.json()["errors"][0]["source"] == "query"
    assert reaction.json()["errors"][0]["field"] == "reaction"
    assert reaction.json()["errors"][0]["source"] == "path"
    for answer in (stats, not_a_list, typed, reaction, sign_in_error):
        assert answer.status_code == 400
        assert answer.json()["errors"], answer.text


async def test_the_markdown_export_names_its_charset_once(live_settings: Settings) -> None:
    async with (
        served(create_app(live_settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        bearer = {"authorization": f"Bearer {await sign_in(client, 'problems-md@example.com')}"}
        created = await client.post("/api/conversations", json={"title": "Notes"}, headers=bearer)
        export = await client.get(
            f"/api/conversations/{created.json()['id']}/export",
            params={"format": "markdown"},
            headers=bearer,
        )
    assert export.status_code == 200
    assert export.headers["content-type"] == "text/markdown; charset=utf-8"
    assert export.text.startswith("# Notes")
