"""Sign-in fixtures: the local OpenID issuer, an app configured for it, and flow helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.lib.time import utc_now
from app.settings import Settings
from prisma_compat import cuid
from tests.conftest import http_client
from tests.fakes.oidc import FakeIssuer

BASE = "http://127.0.0.1:8000"
CLIENT_ID = "test-client.apps.googleusercontent.com"
CLIENT_SECRET = "test-client-secret"


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    fake = FakeIssuer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture
def google_settings(settings: Settings, issuer: FakeIssuer) -> Settings:
    return settings.model_copy(
        update={
            "auth_google_id": CLIENT_ID,
            "auth_google_secret": CLIENT_SECRET,
            "auth_google_issuer": issuer.url,
            "auth_url": BASE,
        }
    )


@pytest.fixture
async def google_client(
    google_settings: Settings, connection: AsyncConnection
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(google_settings, database=Database.bound_to(connection))
    async with http_client(app) as client:
        yield client


async def app_client(settings: Settings, connection: AsyncConnection) -> Any:
    """An app for `settings` sharing the test's transaction (use with `async with`)."""
    return http_client(create_app(settings, database=Database.bound_to(connection)))


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    """The Set-Cookie headers of a response, by cookie name, with their attributes."""
    found: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


async def start_google(
    client: httpx.AsyncClient, callback_url: str | None = None
) -> httpx.Response:
    params = {"callbackUrl": callback_url} if callback_url is not None else {}
    return await client.get("/api/auth/signin/google", params=params)


def authorize(location: str) -> str:
    """Follow the issuer's authorize endpoint; returns the callback URL it sends back to."""
    answer = httpx.get(location, follow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def sign_in_with_google(
    client: httpx.AsyncClient, callback_url: str | None = None
) -> httpx.Response:
    started = await start_google(client, callback_url)
    assert started.status_code == 302, started.text
    return await client.get(authorize(started.headers["location"]))


def error_of(response: httpx.Response) -> str | None:
    location = response.headers.get("location", "")
    if "/api/auth/error?error=" not in location:
        return None
    return location.split("error=", 1)[1]


async def count(connection: AsyncConnection, table: str, where: str = "TRUE", **params: Any) -> int:
    return int(
        await connection.scalar(text(f'SELECT count(*) FROM "{table}" WHERE {where}'), params)
    )


async def make_user(connection: AsyncConnection, email: str, name: str | None = None) -> str:
    """A user row as NextAuth's Prisma adapter writes it."""
    user_id = cuid()
    await connection.execute(
        text('INSERT INTO users (id, email, name, "updatedAt") VALUES (:id, :email, :name, :now)'),
        {"id": user_id, "email": email, "name": name, "now": utc_now()},
    )
    return user_id


async def make_session(
    connection: AsyncConnection, user_id: str, expires_in: timedelta = timedelta(days=30)
) -> str:
    """A session row as NextAuth's Prisma adapter writes it (no createdAt column given)."""
    token = cuid() + cuid()
    await connection.execute(
        text(
            'INSERT INTO sessions (id, "sessionToken", "userId", expires) VALUES (:id, :t, :u, :e)'
        ),
        {"id": cuid(), "t": token, "u": user_id, "e": utc_now() + expires_in},
    )
    return token


async def csrf_token(client: httpx.AsyncClient) -> str:
    response = await client.get("/api/auth/csrf")
    assert response.status_code == 200
    return str(response.json()["csrfToken"])
