"""Headers by rule: private answers are not stored by caches, JSON routes take JSON only, the
API docs have a policy and can be turned off, production sends HSTS (SECURITY.md 22, 44)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.settings import Settings
from tests.auth.conftest import app_client, count, csrf_token, make_session, make_user


@pytest.fixture
async def client(
    settings: Settings, connection: AsyncConnection
) -> AsyncIterator[httpx.AsyncClient]:
    async with await app_client(settings, connection) as c:
        yield c


@pytest.fixture
async def bearer(connection: AsyncConnection) -> dict[str, str]:
    user = await make_user(connection, "ada@example.com")
    return {"authorization": f"Bearer {await make_session(connection, user)}"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/conversations",
        "/api/conversations/trash",
        "/api/conversations/search?q=plans",
        "/api/users/me",
        "/api/users/me/preferences",
        "/api/users/me/stats",
        "/api/auth/sessions",
        "/api/auth/session",
    ],
)
async def test_private_answers_are_not_stored(
    client: httpx.AsyncClient, bearer: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=bearer)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"


async def test_a_private_problem_and_a_stream_are_not_stored_either(
    client: httpx.AsyncClient, bearer: dict[str, str]
) -> None:
    missing = await client.get("/api/conversations/nope", headers=bearer)
    assert missing.status_code == 404
    assert missing.headers["cache-control"] == "no-store"
    streamed = await client.post(
        "/api/chat", json={"message": "hi", "stream": True}, headers=bearer
    )
    assert streamed.status_code == 200
    # Neither a cache nor a compressing proxy (Next.js rewrites) may hold frames back.
    assert streamed.headers["cache-control"] == "no-store, no-transform"
    ui = await client.post(
        "/api/chat",
        json={
            "id": "rules000000000001",
            "message": {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]},
        },
        headers=bearer,
    )
    assert ui.status_code == 200 and ui.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert ui.headers["cache-control"] == "no-store, no-transform"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", '{"title": "sneaky"}'),
        ("application/x-www-form-urlencoded", '{"title": "sneaky"}'),
        ("multipart/form-data; boundary=x", '{"title": "sneaky"}'),
        (None, '{"title": "sneaky"}'),
    ],
)
async def test_json_routes_refuse_other_content_types_and_store_nothing(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    bearer: dict[str, str],
    content_type: str | None,
    body: str,
) -> None:
    headers = {**bearer, **({"content-type": content_type} if content_type else {})}
    response = await client.post("/api/conversations", content=body.encode(), headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await count(connection, "conversations") == 0


async def test_a_text_plain_cookie_write_with_a_valid_csrf_token_is_refused(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user = await make_user(connection, "ada@example.com")
    client.cookies.set("authjs.session-token", await make_session(connection, user))
    token = await csrf_token(client)
    response = await client.patch(
        "/api/users/me/preferences",
        content=b'{"theme": "dark"}',
        headers={"content-type": "text/plain", "x-csrf-token": token},
    )
    assert response.status_code == 415
    assert await count(connection, "user_preferences") == 0


async def test_json_with_a_charset_or_a_json_suffix_is_accepted(
    client: httpx.AsyncClient, bearer: dict[str, str]
) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = await client.post(
            "/api/conversations",
            content=b'{"title": "fine"}',
            headers={**bearer, "content-type": content_type},
        )
        assert response.status_code == 201, (content_type, response.text)


async def test_the_docs_page_has_a_policy_and_no_inline_script(client: httpx.AsyncClient) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text
    start = await client.get("/schema/assets/start.js")
    assert start.status_code == 200 and "SwaggerUIBundle" in start.text
    assert (await client.get("/schema/openapi.json")).status_code == 200
    assert "strict-transport-security" not in page.headers


async def test_production_serves_no_docs_unless_asked_and_sends_hsts(
    settings: Settings, connection: AsyncConnection
) -> None:
    production = settings.model_copy(update={"app_env": "production"})
    async with await app_client(production, connection) as c:
        for path in ("/schema", "/schema/swagger", "/schema/openapi.json"):
            assert (await c.get(path)).status_code == 404, path
        health = await c.get("/api/health")
        assert health.headers["strict-transport-security"].startswith("max-age=")
    with_docs = production.model_copy(update={"docs_enabled": True})
    async with await app_client(with_docs, connection) as c:
        assert (await c.get("/schema/openapi.json")).status_code == 200
