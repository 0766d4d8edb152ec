"""Sessions shared with NextAuth: cookie or bearer, sliding expiry, sign-out, CSRF and origins.

SECURITY.md items 8-11, 13, 14 and 18.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.lib.time import utc_now
from app.settings import Settings
from tests.auth.conftest import (
    BASE,
    count,
    csrf_token,
    make_session,
    make_user,
    set_cookies,
)

PRIVATE = "/api/auth/sessions"


async def test_a_session_written_by_nextauth_authenticates_by_cookie_and_bearer(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "grace@example.com", "Grace")
    token = await make_session(connection, user_id)

    by_cookie = await client.get(PRIVATE, headers={"cookie": f"authjs.session-token={token}"})
    by_legacy_cookie = await client.get(
        PRIVATE, headers={"cookie": f"next-auth.session-token={token}"}
    )
    by_bearer = await client.get(PRIVATE, headers={"authorization": f"Bearer {token}"})
    assert [r.status_code for r in (by_cookie, by_legacy_cookie, by_bearer)] == [200, 200, 200]

    session = await client.get("/api/auth/session", headers={"authorization": f"Bearer {token}"})
    assert session.json()["user"] == {
        "id": user_id,
        "name": "Grace",
        "email": "grace@example.com",
        "image": None,
    }
    assert session.json()["expires"].endswith("Z")


async def test_session_is_null_without_a_session(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/session")
    assert response.status_code == 200
    assert response.content == b"null"
    assert response.json() is None


async def test_an_unknown_token_gets_401_with_a_problem_body(client: httpx.AsyncClient) -> None:
    response = await client.get(PRIVATE, headers={"authorization": "Bearer not-a-session"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_an_expired_session_gets_401_both_ways_and_its_row_is_removed(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "old@example.com")
    token = await make_session(connection, user_id, expires_in=timedelta(seconds=-1))
    assert (
        await client.get(PRIVATE, headers={"cookie": f"authjs.session-token={token}"})
    ).status_code == 401
    assert await count(connection, "sessions", '"sessionToken" = :t', t=token) == 0

    token = await make_session(connection, user_id, expires_in=timedelta(seconds=-1))
    bearer = {"authorization": f"Bearer {token}"}
    assert (await client.get(PRIVATE, headers=bearer)).status_code == 401
    assert await count(connection, "sessions", '"sessionToken" = :t', t=token) == 0


async def _expires(connection: AsyncConnection, token: str) -> object:
    return await connection.scalar(
        text('SELECT expires FROM sessions WHERE "sessionToken" = :t'), {"t": token}
    )


async def test_a_session_is_extended_at_most_once_a_day(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "slide@example.com")
    fresh = await make_session(connection, user_id, expires_in=timedelta(days=29, hours=12))
    before = await _expires(connection, fresh)
    response = await client.get(PRIVATE, headers={"cookie": f"authjs.session-token={fresh}"})
    assert response.status_code == 200
    assert await _expires(connection, fresh) == before
    assert "authjs.session-token" not in set_cookies(response)

    due = await make_session(connection, user_id, expires_in=timedelta(days=28))
    response = await client.get(PRIVATE, headers={"cookie": f"authjs.session-token={due}"})
    extended = await _expires(connection, due)
    assert isinstance(extended, type(utc_now()))
    assert extended > utc_now() + timedelta(days=29, hours=23)
    cookie = set_cookies(response)["authjs.session-token"]["authjs.session-token"]
    assert cookie.value == due
    assert int(cookie["max-age"]) > 29 * 24 * 3600


async def test_sign_out_deletes_the_session_and_clears_the_cookie(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "bye@example.com")
    token = await make_session(connection, user_id)
    client.cookies.set("authjs.session-token", token)
    response = await client.post(
        "/api/auth/signout", headers={"x-csrf-token": await csrf_token(client)}
    )
    assert response.status_code == 200
    assert set_cookies(response)["authjs.session-token"]["authjs.session-token"]["max-age"] == "0"
    assert await count(connection, "sessions", '"sessionToken" = :t', t=token) == 0

    client.cookies.clear()
    assert (
        await client.get(PRIVATE, headers={"cookie": f"authjs.session-token={token}"})
    ).status_code == 401
    bearer = {"authorization": f"Bearer {token}"}
    assert (await client.get(PRIVATE, headers=bearer)).status_code == 401


async def test_sign_out_by_bearer_needs_no_csrf_token(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    token = await make_session(connection, await make_user(connection, "api@example.com"))
    response = await client.post("/api/auth/signout", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert await count(connection, "sessions") == 0


async def test_deleting_a_user_ends_their_sessions(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "leaving@example.com")
    token = await make_session(connection, user_id)
    await connection.execute(text("DELETE FROM users WHERE id = :u"), {"u": user_id})
    assert await count(connection, "sessions") == 0
    bearer = {"authorization": f"Bearer {token}"}
    assert (await client.get(PRIVATE, headers=bearer)).status_code == 401


async def test_session_list_shows_own_sessions_without_tokens(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "many@example.com")
    current = await make_session(connection, user_id)
    other = await make_session(connection, user_id)
    stranger = await make_session(connection, await make_user(connection, "x@example.com"))
    response = await client.get(PRIVATE, headers={"authorization": f"Bearer {current}"})
    sessions = response.json()
    assert len(sessions) == 2
    assert sorted(s["current"] for s in sessions) == [False, True]
    assert all(set(s) == {"id", "createdAt", "expires", "current"} for s in sessions)
    for token in (current, other, stranger):
        assert token not in response.text


async def test_another_users_session_cannot_be_deleted(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    mine = await make_session(connection, await make_user(connection, "a@example.com"))
    theirs_user = await make_user(connection, "b@example.com")
    await make_session(connection, theirs_user)
    their_id = await connection.scalar(
        text('SELECT id FROM sessions WHERE "userId" = :u'), {"u": theirs_user}
    )
    response = await client.delete(
        f"{PRIVATE}/{their_id}", headers={"authorization": f"Bearer {mine}"}
    )
    assert response.status_code == 404
    assert await count(connection, "sessions", '"userId" = :u', u=theirs_user) == 1


async def test_revoke_others_keeps_only_this_session(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "revoke@example.com")
    keep = await make_session(connection, user_id)
    for _ in range(3):
        await make_session(connection, user_id)
    response = await client.post(
        f"{PRIVATE}/revoke-others", headers={"authorization": f"Bearer {keep}"}
    )
    assert response.json() == {"revoked": 3}
    assert await count(connection, "sessions", '"userId" = :u', u=user_id) == 1
    bearer = {"authorization": f"Bearer {keep}"}
    assert (await client.get(PRIVATE, headers=bearer)).status_code == 200


async def test_cookie_authenticated_changes_need_the_csrf_token(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "csrf@example.com")
    token = await make_session(connection, user_id)
    await make_session(connection, user_id)
    client.cookies.set("authjs.session-token", token)
    target = f"{PRIVATE}/revoke-others"

    missing = await client.post(target)
    assert missing.status_code == 403
    csrf = await csrf_token(client)
    altered = csrf[:-1] + ("1" if csrf.endswith("0") else "0")  # one character off
    wrong = await client.post(target, headers={"x-csrf-token": altered})
    assert wrong.status_code == 403
    assert await count(connection, "sessions", '"userId" = :u', u=user_id) == 2

    # A token made for another secret (forged cookie) is refused too.
    client.cookies.set("authjs.csrf-token", f"{'a' * 64}|{'b' * 64}")
    forged = await client.post(target, headers={"x-csrf-token": "a" * 64})
    assert forged.status_code == 403
    assert await count(connection, "sessions", '"userId" = :u', u=user_id) == 2

    client.cookies.delete("authjs.csrf-token")
    ok = await client.post(target, headers={"x-csrf-token": await csrf_token(client)})
    assert ok.status_code == 200
    assert await count(connection, "sessions", '"userId" = :u', u=user_id) == 1


async def test_csrf_endpoint_keeps_a_valid_token(client: httpx.AsyncClient) -> None:
    first = await csrf_token(client)
    assert await csrf_token(client) == first
    cookie = client.cookies.get("authjs.csrf-token")
    assert cookie is not None and cookie.startswith(first + "|")


async def test_a_foreign_origin_with_the_session_cookie_is_refused(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    token = await make_session(connection, await make_user(connection, "o@example.com"))
    client.cookies.set("authjs.session-token", token)
    foreign = await client.get(PRIVATE, headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert "access-control-allow-origin" not in foreign.headers
    same = await client.get(PRIVATE, headers={"origin": BASE})
    assert same.status_code == 200
    preflight = await client.options(
        PRIVATE,
        headers={"origin": "https://evil.example", "access-control-request-method": "DELETE"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-credentials" not in preflight.headers


async def test_every_private_route_needs_a_session(
    settings: Settings, connection: AsyncConnection
) -> None:
    """Walks the route table: anything not marked public answers 401 without a session."""
    enabled = settings.model_copy(update={"auth_dev_login": True})
    app = create_app(enabled, database=Database.bound_to(connection))
    from tests.conftest import http_client

    private: list[tuple[str, str]] = []
    public: list[str] = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            path = route.path.replace("{", "").replace("}", "").replace(":str", "")
            for method in handler.http_methods:
                if method in {"HEAD", "OPTIONS"}:
                    continue
                if handler.opt.get("public"):
                    public.append(f"{method} {route.path}")
                else:
                    private.append((method, path))
    assert len(private) >= 3
    assert "GET /api/health" in public
    async with http_client(app) as client:
        for method, path in private:
            response = await client.request(method, path)
            assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
