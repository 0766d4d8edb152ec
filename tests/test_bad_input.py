"""Input PostgreSQL cannot store or the decoder cannot read is a 400 problem, never a 500,
and nothing of the request is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.asgi import create_app
from app.db.engine import Database
from app.lib.problems import EXCEPTION_HANDLERS
from app.settings import Settings
from tests.auth.conftest import count, make_session, make_user
from tests.chat.conftest import chat_settings
from tests.conftest import http_client
from tests.fakes.llm import FakeLLM

PROBLEM_JSON = "application/problem+json"
DEEP = "[" * 1000 + "]" * 1000  # about 2 KB


@pytest.fixture
async def api(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in (bearer) as Ada, with one conversation "Plans"; dev-login enabled."""
    user_id = await make_user(connection, "ada@example.com", "Ada")
    token = await make_session(connection, user_id)
    app_settings = chat_settings(settings, groq_fake).model_copy(update={"auth_dev_login": True})
    app = create_app(app_settings, database=Database.bound_to(connection))
    async with http_client(app) as client:
        client.headers["authorization"] = f"Bearer {token}"
        created = await client.post("/api/conversations", json={"title": "Plans"})
        assert created.status_code == 201, created.text
        client.conversation_id = created.json()["id"]  # type: ignore[attr-defined]
        yield client


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body


async def stored(connection: AsyncConnection) -> dict[str, Any]:
    """What the request could have written: titles, messages, names, users."""
    titles = (await connection.scalars(text("SELECT title FROM conversations"))).all()
    names = (await connection.scalars(text("SELECT name FROM users"))).all()
    return {
        "titles": sorted(titles),
        "names": sorted(n or "" for n in names),
        "messages": await count(connection, "messages"),
        "sessions": await count(connection, "sessions"),
    }


NUL_REQUESTS = [
    pytest.param("POST", "/api/chat", {"json": {"message": "hi\x00there"}}, "message", id="chat"),
    pytest.param("POST", "/api/conversations", {"json": {"title": "a\x00b"}}, "title", id="create"),
    pytest.param("PATCH", "/api/conversations/{id}", {"json": {"title": "a\x00b"}}, "title",
                 id="rename"),
    pytest.param("PATCH", "/api/users/me", {"json": {"name": "A\x00da"}}, "name", id="user-name"),
    pytest.param("GET", "/api/conversations/search", {"params": {"q": "pl\x00ans"}}, "q",
                 id="search"),
    pytest.param("GET", "/api/conversations/{id}%00", {}, "conversation_id", id="path-id"),
    pytest.param("DELETE", "/api/conversations/{id}%00x", {}, "conversation_id", id="delete-id"),
    pytest.param("POST", "/api/auth/dev-login", {"json": {"email": "eve\x00@example.com"}},
                 "email", id="dev-login"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "request_kwargs", "field"), NUL_REQUESTS)
async def test_nul_in_a_string_is_a_400_naming_the_field_and_stores_nothing(
    api: httpx.AsyncClient,
    connection: AsyncConnection,
    method: str,
    path: str,
    request_kwargs: dict[str, Any],
    field: str,
) -> None:
    before = await stored(connection)
    url = path.replace("{id}", api.conversation_id)  # type: ignore[attr-defined]
    response = await api.request(method, url, **request_kwargs)
    assert_problem(response, 400, field)
    assert "NUL" in response.json()["detail"]
    assert await stored(connection) == before


async def test_nul_nested_in_a_body_names_its_path(api: httpx.AsyncClient) -> None:
    body = {"messages": [{"role": "user", "parts": [{"type": "text", "text": "x\x00"}]}]}
    response = await api.post("/api/chat", json=body)
    assert_problem(response, 400, "messages[0].parts[0].text")


async def test_an_escaped_backslash_u0000_is_ordinary_text(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/conversations", json={"title": "\\u0000 is how JSON says NUL"})
    assert response.status_code == 201
    assert response.json()["title"] == "\\u0000 is how JSON says NUL"


@pytest.mark.parametrize("path", ["/api/health", "/api/auth/session", "/api/models"])
async def test_a_session_cookie_holding_nul_is_no_session(
    api: httpx.AsyncClient, path: str
) -> None:
    del api.headers["authorization"]
    response = await api.get(path, headers={"cookie": "authjs.session-token=abc%00def"})
    assert response.status_code == 200, response.text
    if path == "/api/auth/session":
        assert response.json() is None


async def test_a_session_cookie_holding_nul_is_not_signed_in(api: httpx.AsyncClient) -> None:
    del api.headers["authorization"]
    response = await api.get("/api/conversations", headers={"cookie": "authjs.session-token=%00"})
    assert_problem(response, 401)


@pytest.mark.parametrize("value", ["abc|%00", "abc|%C3%A9", "%C3%A9|%C3%A9", "%00|%00"])
async def test_an_undecodable_csrf_cookie_is_a_403_not_a_500(
    api: httpx.AsyncClient, value: str
) -> None:
    del api.headers["authorization"]  # a bearer needs no CSRF token
    response = await api.post(
        "/api/auth/signin/email",
        json={"email": "ada@example.com"},
        headers={"cookie": f"authjs.csrf-token={value}", "x-csrf-token": "abc"},
    )
    assert_problem(response, 403)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/conversations", '{"title": ' + DEEP + "}"),
        ("/api/chat", DEEP),
        ("/api/auth/dev-login", '{"email": ' + DEEP + "}"),
    ],
)
async def test_json_nested_a_thousand_deep_is_a_400(
    api: httpx.AsyncClient, path: str, body: str
) -> None:
    headers = {"content-type": "application/json"}
    response = await api.post(path, content=body.encode(), headers=headers)
    assert_problem(response, 400)
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/conversations", "/api/chat", "/api/auth/dev-login"])
async def test_a_body_that_is_not_utf8_is_a_400(
    api: httpx.AsyncClient, connection: AsyncConnection, path: str
) -> None:
    before = await stored(connection)
    body = b'{"title": "caf\xe9", "message": "caf\xe9", "email": "caf\xe9@example.com"}'
    response = await api.post(path, content=body, headers={"content-type": "application/json"})
    assert_problem(response, 400)
    assert "UTF-8" in response.json()["detail"]
    assert await stored(connection) == before


@get("/probe/store")
async def store_text(value: FromQuery[str], db_session: NamedDependency[AsyncSession]) -> str:
    return str(await db_session.scalar(text("SELECT CAST(:value AS text)"), {"value": value}))


async def test_postgresql_refusing_nul_is_a_400_behind_the_boundary(database_url: str) -> None:
    """The safety net: were a NUL to slip past the checks, PostgreSQL's refusal is a 400."""
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    database = Database.from_url(database_url, settings)

    async def db_session() -> AsyncIterator[AsyncSession]:
        async with database.session_maker() as session:
            yield session

    app = Litestar(
        [store_text],
        dependencies={"db_session": Provide(db_session)},
        exception_handlers=EXCEPTION_HANDLERS,
        on_shutdown=[database.engine.dispose],
    )
    async with http_client(app) as client:
        fine = await client.get("/probe/store", params={"value": "plain"})
        assert fine.status_code == 200
        refused = await client.get("/probe/store", params={"value": "a\x00b"})
    assert_problem(refused, 400)
    assert "NUL" in refused.json()["detail"]
