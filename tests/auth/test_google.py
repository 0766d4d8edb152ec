"""Google sign-in (OIDC code flow) against a local issuer, through the real Authlib client.

SECURITY.md items 1-7 and 32, each with the negative cases.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.settings import Settings
from tests.auth.conftest import (
    BASE,
    CLIENT_ID,
    authorize,
    count,
    error_of,
    make_user,
    set_cookies,
    sign_in_with_google,
    start_google,
)
from tests.conftest import http_client
from tests.fakes.oidc import FakeIssuer, unpublished_key


async def test_signin_redirects_with_state_pkce_and_nonce(
    google_client: httpx.AsyncClient, issuer: FakeIssuer
) -> None:
    response = await start_google(google_client, "/chat")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{issuer.url}/authorize"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"{BASE}/api/auth/callback/google"
    assert query["scope"] == "openid email profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert len(query["code_challenge"]) == 43

    check = set_cookies(response)["authjs.oauth-check"]["authjs.oauth-check"]
    assert check["httponly"] is True
    assert 0 < int(check["max-age"]) <= 15 * 60
    assert check["samesite"].lower() == "lax"
    # Sealed: neither the state nor the nonce can be read from the cookie.
    assert query["state"] not in check.value and query["nonce"] not in check.value


async def test_a_new_google_account_makes_user_account_and_session(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    response = await sign_in_with_google(google_client, "/chat")
    assert response.status_code == 302
    assert response.headers["location"] == f"{BASE}/chat"
    session_cookie = set_cookies(response)["authjs.session-token"]["authjs.session-token"]
    assert session_cookie["httponly"] is True
    assert session_cookie["samesite"].lower() == "lax"
    assert session_cookie["path"] == "/"
    assert session_cookie["domain"] == ""
    assert session_cookie["secure"] == ""  # plain http here; https is tested below

    user = (
        await connection.execute(
            text('SELECT id, name, image, "emailVerified" FROM users WHERE email = :e'),
            {"e": "ada@example.com"},
        )
    ).one()
    assert (user.name, user.image) == ("Ada Lovelace", issuer.picture)
    assert user.emailVerified is not None
    account = (
        await connection.execute(text('SELECT * FROM accounts WHERE "userId" = :u'), {"u": user.id})
    ).one()
    assert (account.type, account.provider, account.providerAccountId) == (
        "oidc",
        "google",
        "google-sub-1",
    )
    assert account.access_token.startswith("ya29.") and account.id_token.count(".") == 2
    assert account.token_type.lower() == "bearer" and account.scope == "openid email profile"
    assert account.expires_at > time.time()
    assert await count(connection, "sessions", '"userId" = :u', u=user.id) == 1

    me = await google_client.get("/api/auth/session")
    assert me.json()["user"] == {
        "id": user.id,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "image": issuer.picture,
    }
    # The session token never travels in a URL, and responses never carry OAuth tokens.
    assert session_cookie.value not in response.headers["location"]
    assert "ya29." not in me.text and "refresh" not in me.text


async def test_token_request_carries_the_verifier_and_the_same_redirect_uri(
    google_client: httpx.AsyncClient, issuer: FakeIssuer
) -> None:
    await sign_in_with_google(google_client)
    [token_request] = issuer.token_requests
    [authorize_request] = issuer.authorize_requests
    assert token_request["redirect_uri"] == authorize_request["redirect_uri"]
    digest = hashlib.sha256(token_request["code_verifier"].encode()).digest()
    assert (
        base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        == authorize_request["code_challenge"]
    )
    assert token_request["authorization"].startswith("Basic ")


async def test_a_known_google_account_signs_in_its_user_again(
    google_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    await sign_in_with_google(google_client)
    issuer_email_changed = await sign_in_with_google(google_client)
    assert issuer_email_changed.status_code == 302
    assert await count(connection, "users") == 1
    assert await count(connection, "accounts") == 1
    assert await count(connection, "sessions") == 2


async def test_each_login_makes_a_new_unguessable_session(
    google_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    tokens = set()
    for _ in range(3):
        response = await sign_in_with_google(google_client)
        token = set_cookies(response)["authjs.session-token"]["authjs.session-token"].value
        assert len(token) == 64 and int(token, 16) >= 0  # 256 bits, hex
        tokens.add(token)
    assert len(tokens) == 3
    assert await count(connection, "sessions") == 3


async def _assert_refused(
    client: httpx.AsyncClient, connection: AsyncConnection, response: httpx.Response, error: str
) -> None:
    assert response.status_code == 302
    assert error_of(response) == error
    assert "authjs.session-token" not in set_cookies(response)
    assert await count(connection, "users") == 0
    assert await count(connection, "accounts") == 0
    assert await count(connection, "sessions") == 0


async def test_callback_without_state_is_refused_before_any_token_request(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    started = await start_google(google_client)
    callback = urlsplit(authorize(started.headers["location"]))
    code = parse_qs(callback.query)["code"][0]
    response = await google_client.get("/api/auth/callback/google", params={"code": code})
    await _assert_refused(google_client, connection, response, "Verification")
    assert issuer.token_requests == []


async def test_callback_with_a_mismatched_state_is_refused(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    started = await start_google(google_client)
    callback = urlsplit(authorize(started.headers["location"]))
    code = parse_qs(callback.query)["code"][0]
    response = await google_client.get(
        "/api/auth/callback/google", params={"code": code, "state": "forged-state"}
    )
    await _assert_refused(google_client, connection, response, "Verification")
    assert issuer.token_requests == []


async def test_callback_without_the_check_cookie_is_refused(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    started = await start_google(google_client)
    callback = authorize(started.headers["location"])
    google_client.cookies.clear()
    response = await google_client.get(callback)
    await _assert_refused(google_client, connection, response, "Verification")
    assert issuer.token_requests == []


async def test_a_replayed_callback_is_refused(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    started = await start_google(google_client)
    callback = authorize(started.headers["location"])
    first = await google_client.get(callback)
    assert error_of(first) is None
    assert set_cookies(first)["authjs.oauth-check"]["authjs.oauth-check"]["max-age"] == "0"
    replay = await google_client.get(callback)
    assert error_of(replay) == "Verification"
    assert len(issuer.token_requests) == 1
    assert await count(connection, "sessions") == 1


async def test_access_denied_at_the_issuer_is_reported(
    google_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    await start_google(google_client)
    response = await google_client.get(
        "/api/auth/callback/google", params={"error": "access_denied", "state": "x"}
    )
    await _assert_refused(google_client, connection, response, "AccessDenied")


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"nonce": "not-the-nonce"}, "wrong nonce"),
        ({"aud": "someone-else.apps.googleusercontent.com"}, "wrong audience"),
        ({"azp": "someone-else.apps.googleusercontent.com"}, "wrong azp"),
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"sub": None}, "no subject"),
    ],
)
async def test_an_id_token_with_bad_claims_is_refused(
    google_client: httpx.AsyncClient,
    issuer: FakeIssuer,
    connection: AsyncConnection,
    override: dict[str, object],
    why: str,
) -> None:
    issuer.claims_override = override
    response = await sign_in_with_google(google_client)
    await _assert_refused(google_client, connection, response, "Verification")


@pytest.mark.parametrize("signing", ["none", "hs256"])
async def test_unsigned_or_hmac_id_tokens_are_refused(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection, signing: str
) -> None:
    issuer.signing = signing
    response = await sign_in_with_google(google_client)
    await _assert_refused(google_client, connection, response, "Verification")


async def test_an_id_token_signed_by_an_unknown_key_is_refused(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    issuer.unpublished_key = unpublished_key()
    response = await sign_in_with_google(google_client)
    await _assert_refused(google_client, connection, response, "Verification")
    assert issuer.jwks_requests == 2  # looked again for the unknown kid, then refused


async def test_key_rotation_is_followed_by_fetching_the_jwks_again(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    assert error_of(await sign_in_with_google(google_client)) is None
    assert issuer.jwks_requests == 1
    assert error_of(await sign_in_with_google(google_client)) is None
    assert issuer.jwks_requests == 1  # cached

    issuer.rotate_key()
    assert error_of(await sign_in_with_google(google_client)) is None
    assert issuer.jwks_requests == 2
    assert await count(connection, "sessions") == 3


async def test_an_existing_email_is_not_linked_to_a_new_google_account(
    google_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "ada@example.com")
    response = await sign_in_with_google(google_client)
    assert error_of(response) == "OAuthAccountNotLinked"
    assert await count(connection, "accounts") == 0
    assert await count(connection, "sessions", '"userId" = :u', u=user_id) == 0
    explained = await google_client.get(response.headers["location"])
    assert explained.status_code == 403
    assert explained.json()["error"] == "OAuthAccountNotLinked"


async def test_linking_by_email_needs_the_setting_and_a_verified_email(
    google_settings: Settings, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "ada@example.com")
    linking = google_settings.model_copy(update={"auth_allow_email_linking": True})
    async with http_client(create_app(linking, database=Database.bound_to(connection))) as client:
        issuer.email_verified = False
        assert error_of(await sign_in_with_google(client)) == "AccessDenied"
        assert await count(connection, "accounts") == 0

        issuer.email_verified = True
        assert error_of(await sign_in_with_google(client)) is None
    assert await count(connection, "accounts", '"userId" = :u', u=user_id) == 1
    assert await count(connection, "users") == 1


@pytest.mark.parametrize(
    ("callback_url", "lands_on"),
    [
        ("/conversations/42", f"{BASE}/conversations/42"),
        (f"{BASE}/settings", f"{BASE}/settings"),
        ("https://evil.example", f"{BASE}/"),
        ("//evil.example", f"{BASE}/"),
        ("/\\evil.example", f"{BASE}/"),
        ("https://127.0.0.1:8000.evil.example/", f"{BASE}/"),
        ("javascript:alert(1)", f"{BASE}/"),
    ],
)
async def test_after_login_redirects_stay_on_this_site(
    google_client: httpx.AsyncClient, callback_url: str, lands_on: str
) -> None:
    response = await sign_in_with_google(google_client, callback_url)
    assert response.headers["location"] == lands_on


async def test_without_google_credentials_the_provider_is_absent(
    client: httpx.AsyncClient,
) -> None:
    providers = (await client.get("/api/auth/providers")).json()
    assert "google" not in providers
    response = await client.get("/api/auth/signin/google")
    assert response.status_code == 404
    assert "not configured" in response.json()["detail"]


async def test_https_sites_use_secure_prefixed_cookies(
    google_settings: Settings, connection: AsyncConnection, issuer: FakeIssuer
) -> None:
    secure = google_settings.model_copy(update={"auth_url": "https://chat.example"})
    app = create_app(secure, database=Database.bound_to(connection))
    async with http_client(app) as client:
        started = await client.get("/api/auth/signin/google")
        check = set_cookies(started)["__Secure-authjs.oauth-check"]["__Secure-authjs.oauth-check"]
        assert check["secure"] is True
        query = parse_qs(urlsplit(started.headers["location"]).query)
        assert query["redirect_uri"] == ["https://chat.example/api/auth/callback/google"]


async def test_two_parallel_callbacks_for_one_google_account_make_one_user(
    google_settings: Settings, database_url: str, issuer: FakeIssuer
) -> None:
    """Needs real commits and a pool: two requests at once on separate connections."""
    issuer.subject = "race-sub"
    issuer.email = "race@example.com"
    database = Database.from_url(database_url, google_settings)
    try:
        async with (
            http_client(create_app(google_settings, database=database)) as first,
            http_client(
                create_app(
                    google_settings, database=Database.from_url(database_url, google_settings)
                )
            ) as second,
        ):
            callbacks = []
            for client in (first, second):
                started = await start_google(client)
                callbacks.append((client, authorize(started.headers["location"])))
            responses = await asyncio.gather(*(c.get(url) for c, url in callbacks))
        assert all(error_of(r) is None for r in responses), [
            r.headers.get("location") for r in responses
        ]
        async with database.engine.connect() as conn:
            assert await count(conn, "users", "email = 'race@example.com'") == 1
            assert await count(conn, "accounts", "\"providerAccountId\" = 'race-sub'") == 1
            assert (
                await count(
                    conn,
                    "sessions",
                    "\"userId\" IN (SELECT id FROM users WHERE email = 'race@example.com')",
                )
                == 2
            )
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text("DELETE FROM users WHERE email = 'race@example.com'"))
        await database.engine.dispose()


async def test_session_tokens_never_reach_the_logs(
    google_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    response = await sign_in_with_google(google_client)
    token = set_cookies(response)["authjs.session-token"]["authjs.session-token"].value
    await google_client.get("/api/auth/session")
    await google_client.get("/api/auth/sessions", headers={"authorization": f"Bearer {token}"})
    assert caplog.records  # the flow did log (httpx requests at least)
    assert token not in caplog.text


async def test_an_unverified_google_email_makes_no_user_and_no_account(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    """Account pre-hijacking: a Google identity claiming someone's address without Google
    having verified it must not become the user that the address's owner later signs into."""
    issuer.email_verified = False
    response = await sign_in_with_google(google_client)
    assert error_of(response) == "AccessDenied"
    assert await count(connection, "users") == 0
    assert await count(connection, "accounts") == 0
    assert await count(connection, "sessions") == 0
    explained = await google_client.get(response.headers["location"])
    assert explained.status_code == 403


async def test_a_callback_replayed_with_its_check_cookie_makes_no_token_request(
    google_client: httpx.AsyncClient, issuer: FakeIssuer, connection: AsyncConnection
) -> None:
    """The server remembers a used state: a copy of the check cookie does not bring it back."""
    started = await start_google(google_client)
    check = google_client.cookies["authjs.oauth-check"]
    callback = authorize(started.headers["location"])
    assert error_of(await google_client.get(callback)) is None
    google_client.cookies.clear()
    google_client.cookies.set("authjs.oauth-check", check)
    replay = await google_client.get(callback)
    assert error_of(replay) == "Verification"
    assert len(issuer.token_requests) == 1
    assert await count(connection, "sessions") == 1
