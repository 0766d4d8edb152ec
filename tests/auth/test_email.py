"""Email sign-in links through a real SMTP server on loopback; dev-login; sign-in rate limits.

SECURITY.md items 12 and 21 (sign-in part).
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.lib.time import utc_now
from app.settings import Settings
from tests.auth.conftest import BASE, count, csrf_token, error_of, make_user, set_cookies
from tests.conftest import TEST_SECRET, http_client, lifespan_of

LINK = re.compile(r"(http://\S+/api/auth/callback/email\?\S+)")


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def link(self) -> str:
        body = self.messages[-1].get_payload(decode=True)
        assert isinstance(body, bytes)
        found = LINK.search(body.decode())
        assert found, body
        return found.group(1)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
async def email_client(
    settings: Settings, connection: AsyncConnection, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(
        update={"smtp_url": f"smtp://127.0.0.1:{mailbox[1]}", "email_from": "Chat <chat@test>"}
    )
    async with http_client(create_app(configured, database=Database.bound_to(connection))) as c:
        yield c


async def _ask_for_link(
    client: httpx.AsyncClient, email: str, callback: str = "/chat"
) -> httpx.Response:
    return await client.post(
        "/api/auth/signin/email",
        json={"email": email, "callbackUrl": callback},
        headers={"x-csrf-token": await csrf_token(client)},
    )


async def test_email_link_signs_a_new_user_in_once(
    email_client: httpx.AsyncClient, mailbox: tuple[Mailbox, int], connection: AsyncConnection
) -> None:
    box, _ = mailbox
    response = await _ask_for_link(email_client, "  New.Person@Example.com ")
    assert response.status_code == 200
    [message] = box.messages
    assert message["To"] == "new.person@example.com"
    assert message["From"] == "Chat <chat@test>"
    link = box.link()
    token = re.search(r"token=([0-9a-f]+)", link)
    assert token is not None and len(token.group(1)) == 64
    assert token.group(1) not in response.text

    stored = (await connection.execute(text("SELECT * FROM verificationtokens"))).one()
    assert stored.identifier == "new.person@example.com"
    assert stored.token == hashlib.sha256(f"{token.group(1)}{TEST_SECRET}".encode()).hexdigest()
    assert timedelta(hours=23, minutes=59) < stored.expires - utc_now() <= timedelta(hours=24)

    email_client.cookies.clear()
    signed_in = await email_client.get(link)
    assert signed_in.status_code == 302
    assert signed_in.headers["location"] == f"{BASE}/chat"
    assert "authjs.session-token" in set_cookies(signed_in)
    user = (await connection.execute(text("SELECT * FROM users"))).one()
    assert user.email == "new.person@example.com" and user.emailVerified is not None
    assert await count(connection, "verificationtokens") == 0

    again = await email_client.get(link)
    assert error_of(again) == "Verification"
    assert await count(connection, "sessions") == 1


async def test_the_answer_is_the_same_for_known_and_unknown_addresses(
    email_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    await make_user(connection, "known@example.com")
    known = await _ask_for_link(email_client, "known@example.com")
    unknown = await _ask_for_link(email_client, "unknown@example.com")
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())


async def test_an_expired_link_is_refused_and_removed(
    email_client: httpx.AsyncClient, mailbox: tuple[Mailbox, int], connection: AsyncConnection
) -> None:
    await _ask_for_link(email_client, "late@example.com")
    await connection.execute(text("UPDATE verificationtokens SET expires = :t"), {"t": utc_now()})
    response = await email_client.get(mailbox[0].link())
    assert error_of(response) == "Verification"
    assert await count(connection, "verificationtokens") == 0
    assert await count(connection, "users") == 0


async def test_a_token_made_by_nextauth_is_accepted(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    token = "f" * 64  # NextAuth stores sha256(token + secret), as we do
    await connection.execute(
        text("INSERT INTO verificationtokens (identifier, token, expires) VALUES (:i, :t, :e)"),
        {
            "i": "shared@example.com",
            "t": hashlib.sha256(f"{token}{TEST_SECRET}".encode()).hexdigest(),
            "e": utc_now() + timedelta(hours=1),
        },
    )
    response = await client.get(
        "/api/auth/callback/email", params={"token": token, "email": "shared@example.com"}
    )
    assert error_of(response) is None
    assert response.headers["location"] == f"{BASE}/"


async def test_a_wrong_token_for_the_address_is_refused(
    email_client: httpx.AsyncClient, mailbox: tuple[Mailbox, int], connection: AsyncConnection
) -> None:
    await _ask_for_link(email_client, "one@example.com")
    link = mailbox[0].link().replace("one%40example.com", "two%40example.com")
    assert error_of(await email_client.get(link)) == "Verification"
    assert await count(connection, "verificationtokens") == 1


async def test_asking_for_a_link_needs_the_csrf_token(
    email_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    response = await email_client.post(
        "/api/auth/signin/email", json={"email": "someone@example.com"}
    )
    assert response.status_code == 403
    assert await count(connection, "verificationtokens") == 0


@pytest.mark.parametrize("body", [{"email": "not-an-email"}, {"email": ""}, {}, {"email": 5}])
async def test_bad_email_requests_are_400(email_client: httpx.AsyncClient, body: object) -> None:
    response = await email_client.post(
        "/api/auth/signin/email",
        json=body,
        headers={"x-csrf-token": await csrf_token(email_client)},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_sign_in_requests_are_rate_limited_per_address(
    settings: Settings, connection: AsyncConnection
) -> None:
    strict = settings.model_copy(update={"auth_signin_limit": 2})
    async with http_client(create_app(strict, database=Database.bound_to(connection))) as client:
        answers = [await _ask_for_link(client, "spam@example.com") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert int(answers[-1].headers["retry-after"]) > 0
        assert answers[-1].json()["status"] == 429
        other = await _ask_for_link(client, "other@example.com")
        assert other.status_code == 200
    assert await count(connection, "verificationtokens") == 3


async def test_sign_in_requests_are_rate_limited_per_ip(
    settings: Settings, connection: AsyncConnection
) -> None:
    strict = settings.model_copy(update={"auth_signin_limit": 1})  # 3 per IP
    async with http_client(create_app(strict, database=Database.bound_to(connection))) as client:
        codes = [(await _ask_for_link(client, f"u{i}@example.com")).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]


async def test_dev_login_signs_in_when_enabled(
    settings: Settings, connection: AsyncConnection
) -> None:
    enabled = settings.model_copy(update={"auth_dev_login": True})
    async with http_client(create_app(enabled, database=Database.bound_to(connection))) as client:
        response = await client.post(
            "/api/auth/dev-login", json={"email": "dev@example.com", "name": "Dev"}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["user"]["email"] == "dev@example.com" and body["user"]["name"] == "Dev"
        bearer = {"authorization": f"Bearer {body['sessionToken']}"}
        assert (await client.get("/api/auth/session", headers=bearer)).json()["user"][
            "name"
        ] == "Dev"
        assert (
            set_cookies(response)["authjs.session-token"]["authjs.session-token"].value
            == body["sessionToken"]
        )


@pytest.mark.parametrize(
    "changes", [{"auth_dev_login": False}, {"auth_dev_login": True, "app_env": "production"}]
)
async def test_dev_login_does_not_exist_otherwise(
    settings: Settings, connection: AsyncConnection, changes: dict[str, object]
) -> None:
    configured = settings.model_copy(update=changes)
    async with http_client(
        create_app(configured, database=Database.bound_to(connection))
    ) as client:
        response = await client.post("/api/auth/dev-login", json={"email": "dev@example.com"})
    assert response.status_code == 404
    assert await count(connection, "users") == 0


async def _link_for(client: httpx.AsyncClient, box: Mailbox, email: str) -> str:
    assert (await _ask_for_link(client, email)).status_code == 200
    return box.link()


async def test_an_email_link_never_joins_a_user_whose_address_came_unproven_with_an_oauth_account(
    email_client: httpx.AsyncClient, mailbox: tuple[Mailbox, int], connection: AsyncConnection
) -> None:
    """Pre-hijacking left over from before unverified Google addresses were refused: the
    claimer keeps their user (without the address); the owner gets a user of their own."""
    claimer = await make_user(connection, "victim@example.com")
    await connection.execute(
        text(
            'INSERT INTO accounts (id, "userId", type, provider, "providerAccountId") '
            "VALUES ('acc1', :u, 'oidc', 'google', 'attacker-sub')"
        ),
        {"u": claimer},
    )
    link = await _link_for(email_client, mailbox[0], "victim@example.com")
    email_client.cookies.clear()
    assert (await email_client.get(link)).status_code == 302
    owner = (
        await connection.execute(
            text('SELECT id, "emailVerified" FROM users WHERE email = :e'),
            {"e": "victim@example.com"},
        )
    ).one()
    assert owner.id != claimer and owner.emailVerified is not None
    placeholder = f"{claimer}@unverified.invalid"
    assert await count(connection, "users", "id = :u AND email = :e", u=claimer, e=placeholder)
    assert await count(connection, "sessions", '"userId" = :u', u=owner.id) == 1
    assert await count(connection, "sessions", '"userId" = :u', u=claimer) == 0
    assert await count(connection, "accounts", '"userId" = :u', u=owner.id) == 0


async def test_an_email_link_joins_an_unverified_user_that_has_no_other_sign_in(
    email_client: httpx.AsyncClient, mailbox: tuple[Mailbox, int], connection: AsyncConnection
) -> None:
    user_id = await make_user(connection, "dev@example.com")  # as dev-login makes one
    link = await _link_for(email_client, mailbox[0], "dev@example.com")
    email_client.cookies.clear()
    assert (await email_client.get(link)).status_code == 302
    assert await count(connection, "users") == 1
    assert await count(connection, "users", 'id = :u AND "emailVerified" IS NOT NULL', u=user_id)
    assert await count(connection, "sessions", '"userId" = :u', u=user_id) == 1


def _client_from(app: Any, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


async def test_requests_for_someones_address_do_not_lock_its_owner_out(
    settings: Settings, connection: AsyncConnection, mailbox: tuple[Mailbox, int]
) -> None:
    strict = settings.model_copy(
        update={"auth_signin_limit": 2, "smtp_url": f"smtp://127.0.0.1:{mailbox[1]}"}
    )
    app = create_app(strict, database=Database.bound_to(connection))
    async with lifespan_of(app):
        async with _client_from(app, "198.51.100.66") as attacker:
            codes = [
                (await _ask_for_link(attacker, "victim@example.com")).status_code for _ in range(3)
            ]
        assert codes == [200, 200, 429]
        async with _client_from(app, "192.0.2.10") as owner:
            answer = await _ask_for_link(owner, "victim@example.com")
            assert answer.status_code == 200
            owner.cookies.clear()
            assert "authjs.session-token" in set_cookies(await owner.get(mailbox[0].link()))


async def test_a_link_refused_by_the_rate_limit_is_spent_all_the_same(
    settings: Settings, connection: AsyncConnection, mailbox: tuple[Mailbox, int]
) -> None:
    strict = settings.model_copy(
        update={"auth_signin_limit": 1, "smtp_url": f"smtp://127.0.0.1:{mailbox[1]}"}
    )  # 3 per IP
    app = create_app(strict, database=Database.bound_to(connection))
    async with lifespan_of(app), _client_from(app, "198.51.100.7") as client:
        for address in ("a@example.com", "b@example.com"):
            assert (await _ask_for_link(client, address)).status_code == 200
        link = mailbox[0].link()
        assert (await _ask_for_link(client, "c@example.com")).status_code == 200
        refused = await client.get(link)  # the fourth sign-in request from this IP
        assert refused.status_code == 429
        assert await count(connection, "verificationtokens", "identifier = 'b@example.com'") == 0
        assert await count(connection, "sessions") == 0
    async with lifespan_of(app), _client_from(app, "192.0.2.99") as elsewhere:
        assert error_of(await elsewhere.get(link)) == "Verification"
    assert await count(connection, "sessions") == 0


async def test_production_without_smtp_has_no_email_sign_in(
    settings: Settings, connection: AsyncConnection
) -> None:
    production = settings.model_copy(update={"app_env": "production", "smtp_url": None})
    async with http_client(create_app(production, database=Database.bound_to(connection))) as c:
        assert "email" not in (await c.get("/api/auth/providers")).json()
        asked = await c.post(
            "/api/auth/signin/email",
            json={"email": "ada@example.com"},
            headers={"x-csrf-token": await csrf_token(c)},
        )
        assert asked.status_code == 404
        assert (await c.get("/api/auth/callback/email?token=x&email=a@b.c")).status_code == 404
    assert await count(connection, "verificationtokens") == 0


async def test_development_without_smtp_writes_the_email_to_the_outbox_not_the_log(
    settings: Settings, connection: AsyncConnection
) -> None:
    # The records themselves, not stderr: Litestar sets up its logging (a queue and a thread
    # writing to the sys.stderr of the time) once a process, and under xdist that stream could
    # be an earlier test's capture, closed since ("I/O operation on closed file"). The handler
    # goes on the root once the app has set its logging up (that replaces the root's handlers).
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    async with http_client(create_app(settings, database=Database.bound_to(connection))) as c:
        logging.getLogger().addHandler(handler)
        try:
            assert (await _ask_for_link(c, "ada@example.com")).status_code == 200
        finally:
            logging.getLogger().removeHandler(handler)
    [written] = (settings.data_dir / "outbox").glob("*.eml")
    assert written.stat().st_mode & 0o077 == 0
    body = message_from_bytes(written.read_bytes()).get_payload(decode=True)
    assert isinstance(body, bytes)
    found = LINK.search(body.decode())
    assert found is not None
    token = re.search(r"token=([0-9a-f]+)", found.group(1))
    assert token is not None
    logged = "\n".join(record.getMessage() for record in records)
    assert str(written) in logged
    assert token.group(1) not in logged
