"""A frontend on another origin: CORS for the configured origins only, preflights before the
session guard, and the Origin rule for cookie requests and sign-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.settings import Settings
from tests.auth.conftest import BASE, app_client, count, csrf_token, make_session, make_user

FRONTEND = "http://localhost:3300"
OTHER = "http://evil.example"


@pytest.fixture
def cors_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "auth_url": BASE,
            "cors_allowed_origins": f"{FRONTEND}, https://app.example.com",
            "auth_dev_login": True,
        }
    )


@pytest.fixture
async def client(
    cors_settings: Settings, connection: AsyncConnection
) -> AsyncIterator[httpx.AsyncClient]:
    async with await app_client(cors_settings, connection) as c:
        yield c


@pytest.fixture
async def signed_in(client: httpx.AsyncClient, connection: AsyncConnection) -> str:
    """A cookie session in `client` and its CSRF cookie; returns the CSRF token."""
    user = await make_user(connection, "ada@example.com")
    client.cookies.set("authjs.session-token", await make_session(connection, user))
    return await csrf_token(client)


def preflight(method: str, headers: str, origin: str = FRONTEND) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": headers,
    }


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.mark.parametrize("path", ["/api/auth/csrf", "/api/chat", "/api/conversations/x"])
async def test_preflight_from_an_allowed_origin_is_answered_before_sign_in(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.options(
        path, headers=preflight("POST", "content-type, x-csrf-token, authorization")
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert response.headers["access-control-allow-credentials"] == "true"
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-csrf-token", "authorization"} <= {h.lower() for h in allowed}
    methods = response.headers["access-control-allow-methods"]
    assert {"GET", "POST", "PATCH", "PUT", "DELETE"} <= set(methods.replace(" ", "").split(","))
    assert "Origin" in response.headers["vary"]
    assert int(response.headers["access-control-max-age"]) > 0


async def test_preflight_from_another_origin_gets_no_cors_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options("/api/chat", headers=preflight("POST", "content-type", OTHER))
    assert response.status_code >= 400
    assert cors_headers(response) == {}


async def test_an_allowed_origin_reads_responses_with_credentials(
    client: httpx.AsyncClient, signed_in: str
) -> None:
    response = await client.get("/api/conversations", headers={"origin": FRONTEND})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert response.headers["access-control-allow-credentials"] == "true"
    exposed = response.headers["access-control-expose-headers"].lower()
    for name in ("x-request-id", "retry-after", "x-vercel-ai-ui-message-stream"):
        assert name in exposed


async def test_another_origin_gets_no_cors_headers_and_its_cookie_requests_are_refused(
    client: httpx.AsyncClient, signed_in: str, connection: AsyncConnection
) -> None:
    listed = await client.get("/api/conversations", headers={"origin": OTHER})
    assert listed.status_code == 403
    assert cors_headers(listed) == {}
    written = await client.post(
        "/api/conversations",
        json={"title": "from elsewhere"},
        headers={"origin": OTHER, "x-csrf-token": signed_in},
    )
    assert written.status_code == 403
    assert cors_headers(written) == {}
    assert await count(connection, "conversations") == 0


async def test_cookie_writes_from_an_allowed_origin_still_need_the_csrf_token(
    client: httpx.AsyncClient, signed_in: str, connection: AsyncConnection
) -> None:
    refused = await client.post(
        "/api/conversations", json={"title": "no token"}, headers={"origin": FRONTEND}
    )
    assert refused.status_code == 403
    assert refused.headers["access-control-allow-origin"] == FRONTEND  # the client can read why
    made = await client.post(
        "/api/conversations",
        json={"title": "with token"},
        headers={"origin": FRONTEND, "x-csrf-token": signed_in},
    )
    assert made.status_code == 201
    assert await count(connection, "conversations") == 1


async def test_a_streamed_answer_carries_the_cors_headers(
    client: httpx.AsyncClient, signed_in: str
) -> None:
    response = await client.post(
        "/api/chat",
        json={"message": "hello there", "stream": True},
        headers={"origin": FRONTEND, "x-csrf-token": signed_in},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_dev_login_from_another_origin_is_refused_without_any_cookie(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    response = await client.post(
        "/api/auth/dev-login", json={"email": "attacker@example.com"}, headers={"origin": OTHER}
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert await count(connection, "users") == 0
    allowed = await client.post(
        "/api/auth/dev-login", json={"email": "ada@example.com"}, headers={"origin": FRONTEND}
    )
    assert allowed.status_code == 200


async def test_without_configured_origins_there_is_no_cors_at_all(
    settings: Settings, connection: AsyncConnection
) -> None:
    async with await app_client(settings.model_copy(update={"auth_url": BASE}), connection) as c:
        response = await c.options("/api/auth/csrf", headers=preflight("GET", "content-type"))
        assert cors_headers(response) == {}
        got = await c.get("/api/auth/csrf", headers={"origin": FRONTEND})
        assert cors_headers(got) == {}
