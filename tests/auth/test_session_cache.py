"""The session lookup is cached for a moment; revocation through the API ends it at once."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth.services import SessionCache
from app.db.models import Session, User
from tests.auth.conftest import make_session, make_user

PRIVATE = "/api/auth/sessions"


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _session_id(connection: AsyncConnection, token: str) -> str:
    found = await connection.scalar(
        text('SELECT id FROM sessions WHERE "sessionToken" = :t'), {"t": token}
    )
    assert isinstance(found, str)
    return found


async def test_a_signed_out_session_is_refused_at_once(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    token = await make_session(connection, await make_user(connection, "out@example.com"))
    assert (await client.get(PRIVATE, headers=_bearer(token))).status_code == 200
    assert (await client.post("/api/auth/signout", headers=_bearer(token))).status_code == 200
    assert (await client.get(PRIVATE, headers=_bearer(token))).status_code == 401


async def test_a_deleted_session_is_refused_at_once(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "two@example.com")
    keeper, lost = await make_session(connection, user_id), await make_session(connection, user_id)
    assert (await client.get(PRIVATE, headers=_bearer(lost))).status_code == 200
    lost_id = await _session_id(connection, lost)
    deleted = await client.delete(f"{PRIVATE}/{lost_id}", headers=_bearer(keeper))
    assert deleted.status_code == 204
    assert (await client.get(PRIVATE, headers=_bearer(lost))).status_code == 401


async def test_revoking_the_others_refuses_them_at_once_and_keeps_this_one(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "many@example.com")
    current, other = (
        await make_session(connection, user_id),
        await make_session(connection, user_id),
    )
    assert (await client.get(PRIVATE, headers=_bearer(other))).status_code == 200
    revoked = await client.post(f"{PRIVATE}/revoke-others", headers=_bearer(current))
    assert revoked.json() == {"revoked": 1}
    assert (await client.get(PRIVATE, headers=_bearer(other))).status_code == 401
    assert (await client.get(PRIVATE, headers=_bearer(current))).status_code == 200


async def test_a_deleted_accounts_session_is_refused_at_once(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    token = await make_session(connection, await make_user(connection, "gone@example.com"))
    assert (await client.get(PRIVATE, headers=_bearer(token))).status_code == 200
    assert (await client.delete("/api/users/me", headers=_bearer(token))).status_code == 204
    assert (await client.get(PRIVATE, headers=_bearer(token))).status_code == 401


def test_a_lookup_that_raced_with_a_revocation_is_not_kept() -> None:
    cache = SessionCache(ttl=60)
    session, user = Session(id="s1", session_token="t", user_id="u1"), User(id="u1")
    started = cache.epoch
    cache.forget(user_id="u1")  # revoked while the lookup was reading the old row
    cache.put("t", session, user, started)
    assert cache.get("t") is None
    cache.put("t", session, user, cache.epoch)
    assert cache.get("t") is not None


def test_entries_older_than_the_ttl_are_looked_up_again() -> None:
    cache = SessionCache(ttl=0)
    cache.put("t", Session(id="s1", session_token="t", user_id="u1"), User(id="u1"), cache.epoch)
    assert cache.get("t") is None
