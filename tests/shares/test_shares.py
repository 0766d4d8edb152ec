"""Share links (issue 24, item 2): a read-only snapshot at an unguessable link, shown to anyone
holding it, revoked at once, dead with its conversation, copied by a signed-in person."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.lib.logs import SecretQueryFilter, redact_path
from app.settings import Settings
from tests.auth.conftest import count, csrf_token, make_session, make_user
from tests.chat.conftest import chat_json, chat_settings
from tests.conftest import http_client
from tests.fakes.llm import FakeLLM, Scenario

TOKEN_CHARS = 43  # 32 random bytes, base64url


async def _share(api: httpx.AsyncClient, conversation_id: str) -> dict[str, Any]:
    response = await api.post(f"/api/conversations/{conversation_id}/shares")
    assert response.status_code == 201, response.text
    return dict(response.json())


@asynccontextmanager
async def _other(
    api: httpx.AsyncClient, token: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Another client of the same app: signed out, or with another session's bearer token."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        transport=api._transport, base_url=api.base_url, headers=headers
    ) as other:
        yield other


def _assert_share_headers(response: httpx.Response) -> None:
    assert response.headers["x-robots-tag"] == "noindex, nofollow"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


async def test_a_signed_out_reader_sees_the_snapshot_and_nothing_of_the_owner(
    api: httpx.AsyncClient,
) -> None:
    first = await chat_json(api, "What is a share link?")
    conversation_id = first["conversationId"]
    await chat_json(api, "And a second question", conversation_id)
    share = await _share(api, conversation_id)
    assert len(share["token"]) == TOKEN_CHARS
    assert share["url"] == f"http://127.0.0.1:8000/s/{share['token']}"
    assert share["conversationId"] == conversation_id and share["messageCount"] == 4

    async with _other(api) as reader:
        response = await reader.get(f"/api/shared/{share['token']}")
    assert response.status_code == 200, response.text
    _assert_share_headers(response)
    body = response.json()
    assert set(body) == {"title", "sharedAt", "messages"}
    assert body["title"] == "What is a share link?"
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "What is a share link?"),
        ("assistant", "Hello, world!"),
        ("user", "And a second question"),
        ("assistant", "Hello, world!"),
    ]
    assert {m["model"] for m in body["messages"] if m["role"] == "assistant"} == {
        first["aiMessage"]["model"]
    }
    assert body["messages"][0]["createdAt"] == first["userMessage"]["createdAt"]
    assert set(body["messages"][0]) == {"role", "content", "model", "createdAt", "status"}
    # Nothing that names the owner, their rows or their other conversations.
    assert "ada@example.com" not in response.text and api.user_id not in response.text  # type: ignore[attr-defined]
    assert conversation_id not in response.text and first["userMessage"]["id"] not in response.text


async def test_later_messages_are_not_in_the_snapshot(api: httpx.AsyncClient) -> None:
    conversation_id = (await chat_json(api, "before sharing"))["conversationId"]
    share = await _share(api, conversation_id)
    await chat_json(api, "after sharing", conversation_id)
    await api.patch(f"/api/conversations/{conversation_id}", json={"title": "renamed later"})

    body = (await api.get(f"/api/shared/{share['token']}")).json()
    assert [m["content"] for m in body["messages"]] == ["before sharing", "Hello, world!"]
    assert body["title"] == "before sharing"


async def test_only_the_current_versions_are_shared_and_nothing_from_the_trash(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    first = await chat_json(api, "keep this question")
    conversation_id = first["conversationId"]
    groq_fake.next(Scenario(chunks=["second ", "version"]))
    regenerated = await api.post(f"/api/conversations/{conversation_id}/regenerate", json={})
    assert regenerated.status_code == 200, regenerated.text
    trashed = await chat_json(api, "trash this question", conversation_id)
    assert (await api.delete(f"/api/messages/{trashed['userMessage']['id']}")).status_code == 204

    share = await _share(api, conversation_id)
    body = (await api.get(f"/api/shared/{share['token']}")).json()
    assert [m["content"] for m in body["messages"]] == [
        "keep this question",
        "second version",
        "Hello, world!",  # the answer to the trashed question is not in the trash itself
    ]
    assert share["messageCount"] == 3


async def test_the_version_switched_to_is_the_one_shared(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    """Review finding: a snapshot kept only versions not superseded, so an earlier answer
    switched back to (POST .../branch) was left out and the question stood alone."""
    first = await chat_json(api, "which version")
    conversation_id = first["conversationId"]
    groq_fake.next(Scenario(chunks=["second ", "version"]))
    regenerated = await api.post(f"/api/conversations/{conversation_id}/regenerate", json={})
    assert regenerated.status_code == 200, regenerated.text
    switched = await api.post(
        f"/api/conversations/{conversation_id}/branch",
        json={"messageId": first["aiMessage"]["id"]},
    )
    assert switched.status_code == 200, switched.text
    share = await _share(api, conversation_id)
    body = (await api.get(f"/api/shared/{share['token']}")).json()
    assert [m["content"] for m in body["messages"]] == ["which version", "Hello, world!"]


async def test_an_answer_being_written_and_a_failed_empty_one_are_left_out(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    asked = await chat_json(api, "first question")
    conversation_id = asked["conversationId"]
    groq_fake.next(Scenario(status=400))
    failed = await api.post(
        "/api/chat", json={"message": "fails", "conversationId": conversation_id}
    )
    assert failed.json()["aiMessage"]["status"] == "error", failed.text
    # An answer as its row stands while it is being written (in another process, say).
    await connection.execute(
        text(
            'INSERT INTO messages (id, content, role, model, "conversationId", "userId", '
            "status, \"createdAt\") VALUES ('streaming1', 'half an ans', 'assistant', "
            "'m', :c, :u, 'streaming', now())"
        ),
        {"c": conversation_id, "u": api.user_id},  # type: ignore[attr-defined]
    )
    share = await _share(api, conversation_id)
    body = (await api.get(f"/api/shared/{share['token']}")).json()
    assert [(m["role"], m["content"], m["status"]) for m in body["messages"]] == [
        ("user", "first question", "complete"),
        ("assistant", "Hello, world!", "complete"),
        ("user", "fails", "complete"),
    ]


async def test_the_token_is_kept_only_as_its_hash(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    conversation_id = (await chat_json(api, "hash me"))["conversationId"]
    share = await _share(api, conversation_id)
    row = (
        await connection.execute(
            text(
                "SELECT *, row_to_json(s)::text AS whole FROM conversation_shares s WHERE id = :id"
            ),
            {"id": share["id"]},
        )
    ).one()
    assert row.tokenHash == hashlib.sha256(share["token"].encode()).hexdigest()
    assert share["token"] not in row.whole
    # The list and the export never show a link again.
    listed = (await api.get("/api/shares")).text
    assert share["token"] not in listed and "token" not in listed.lower().replace("tokenhash", "")


async def test_two_shares_of_one_conversation_have_different_unguessable_links(
    api: httpx.AsyncClient,
) -> None:
    conversation_id = (await chat_json(api, "share twice"))["conversationId"]
    one, two = await _share(api, conversation_id), await _share(api, conversation_id)
    assert one["token"] != two["token"] and one["id"] != two["id"]
    assert (await api.get(f"/api/shared/{one['token']}")).status_code == 200
    assert (await api.get(f"/api/shared/{two['token']}")).status_code == 200


async def test_your_shares_are_listed_in_pages_and_revoked_at_once(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    conversation_id = (await chat_json(api, "list me"))["conversationId"]
    made = [await _share(api, conversation_id) for _ in range(5)]
    # Same createdAt for several: the id breaks the tie.
    await connection.execute(
        text("UPDATE conversation_shares SET \"createdAt\" = date_trunc('second', now())")
    )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await api.get("/api/shares", params=params)
        assert page.status_code == 200, page.text
        seen += [s["id"] for s in page.json()["shares"]]
        assert all(s["active"] and "token" not in s for s in page.json()["shares"])
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(s["id"] for s in made) and len(seen) == 5

    revoked = made[0]
    assert (await api.delete(f"/api/shares/{revoked['id']}")).status_code == 204
    async with _other(api) as reader:
        gone = await reader.get(f"/api/shared/{revoked['token']}")
        assert gone.status_code == 404
        assert gone.headers["content-type"].startswith("application/problem+json")
        _assert_share_headers(gone)
        assert (await reader.get(f"/s/{revoked['token']}")).status_code == 404
        assert (await reader.get(f"/api/shared/{made[1]['token']}")).status_code == 200
    assert (await api.delete(f"/api/shares/{revoked['id']}")).status_code == 404
    assert revoked["id"] not in (await api.get("/api/shares")).text


async def test_another_users_conversation_cannot_be_shared_and_nothing_is_stored(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    conversation_id = (await chat_json(api, "mine alone"))["conversationId"]
    share = await _share(api, conversation_id)
    bob = await make_session(connection, await make_user(connection, "bob@example.com", "Bob"))
    before = await count(connection, "conversation_shares")
    async with _other(api, bob) as other:
        refused = await other.post(f"/api/conversations/{conversation_id}/shares")
        assert refused.status_code == 404, refused.text
        assert (await other.post("/api/conversations/no-such-id/shares")).status_code == 404
        # Nor can Bob list, revoke or see Ada's shares as his.
        assert (await other.get("/api/shares")).json() == {"shares": [], "nextCursor": None}
        assert (await other.delete(f"/api/shares/{share['id']}")).status_code == 404
    assert await count(connection, "conversation_shares") == before
    assert (await api.get(f"/api/shared/{share['token']}")).status_code == 200


async def test_malformed_and_unknown_tokens_are_404_never_500(api: httpx.AsyncClient) -> None:
    conversation_id = (await chat_json(api, "real one"))["conversationId"]
    real = (await _share(api, conversation_id))["token"]
    tokens = [
        "x",
        "a" * TOKEN_CHARS,  # well formed, unknown
        real[:-1],
        real + "A",
        real[:-1] + "!",
        "é" * TOKEN_CHARS,
        "%F0%9F%92%A5" * 3,
        "%FF%FE",
        "a" * 5000,
        "..%2F..%2Fetc%2Fpasswd",
    ]
    async with _other(api) as reader:
        for token in tokens:
            for path in (f"/api/shared/{token}", f"/s/{token}"):
                response = await reader.get(path)
                assert response.status_code == 404, (path, response.status_code, response.text)
            copied = await api.post(f"/api/shared/{token}/copy")
            assert copied.status_code == 404, (token, copied.text)
        # NUL is refused everywhere as a 400 that names the parameter.
        nul = await reader.get("/api/shared/abc%00def")
        assert nul.status_code == 400 and nul.json()["errors"][0]["field"] == "token"


async def test_a_trashed_conversations_links_stop_and_a_deleted_ones_are_gone(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    conversation_id = (await chat_json(api, "trash me later"))["conversationId"]
    share = await _share(api, conversation_id)
    link = f"/api/shared/{share['token']}"
    async with _other(api) as reader:
        assert (await reader.get(link)).status_code == 200
        assert (await api.delete(f"/api/conversations/{conversation_id}")).status_code == 204
        assert (await reader.get(link)).status_code == 404
        assert (await reader.get(f"/s/{share['token']}")).status_code == 404
        listed = (await api.get("/api/shares")).json()["shares"]
        assert [(s["id"], s["active"]) for s in listed] == [(share["id"], False)]
        # A trashed conversation cannot be shared either.
        assert (await api.post(f"/api/conversations/{conversation_id}/shares")).status_code == 404

        restored = await api.post(f"/api/conversations/{conversation_id}/restore")
        assert restored.status_code == 200
        assert (await reader.get(link)).status_code == 200

        deleted = await api.delete(f"/api/conversations/{conversation_id}?permanent=true")
        assert deleted.status_code == 204
        assert (await reader.get(link)).status_code == 404
    assert (
        await count(connection, "conversation_shares", '"conversationId" = :c', c=conversation_id)
        == 0
    )


async def test_an_empty_or_too_long_conversation_is_not_shared(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    user = await make_user(connection, "long@example.com")
    token = await make_session(connection, user)
    small = chat_settings(settings, groq_fake, share_max_bytes=1024)
    async with http_client(create_app(small, database=Database.bound_to(connection))) as client:
        client.headers["authorization"] = f"Bearer {token}"
        empty = (await client.post("/api/conversations", json={})).json()["id"]
        refused = await client.post(f"/api/conversations/{empty}/shares")
        assert refused.status_code == 400 and "no messages" in refused.json()["detail"]

        long = (await chat_json(client, "x" * 2000))["conversationId"]
        refused = await client.post(f"/api/conversations/{long}/shares")
        assert refused.status_code == 400 and "too long" in refused.json()["detail"]
    assert await count(connection, "conversation_shares") == 0


async def test_reading_links_is_rate_limited_per_ip_and_making_them_per_user(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    user = await make_user(connection, "busy@example.com")
    token = await make_session(connection, user)
    limited = chat_settings(settings, groq_fake, share_rate_limit=3, share_rate_window=60)
    async with http_client(create_app(limited, database=Database.bound_to(connection))) as client:
        client.headers["authorization"] = f"Bearer {token}"
        conversation_id = (await chat_json(client, "popular"))["conversationId"]
        share = await _share(client, conversation_id)
        statuses = [
            (await client.get(path)).status_code
            for path in (
                f"/api/shared/{share['token']}",
                f"/s/{share['token']}",
                "/api/shared/" + "b" * TOKEN_CHARS,  # unknown links count too
                f"/api/shared/{share['token']}",
            )
        ]
        assert statuses == [200, 200, 404, 429]
        refused = await client.get(f"/s/{share['token']}")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        _assert_share_headers(refused)
        # Shares made count per user, apart from reads: two more, then no more.
        made = [
            (await client.post(f"/api/conversations/{conversation_id}/shares")).status_code
            for _ in range(3)
        ]
        assert made == [201, 201, 429]
    assert await count(connection, "conversation_shares") == 3


async def test_a_signed_in_reader_copies_the_conversation_and_goes_on_with_it(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    first = await chat_json(api, "Ada's question")
    conversation_id = first["conversationId"]
    await chat_json(api, "Ada's second question", conversation_id)
    share = await _share(api, conversation_id)
    bob_id = await make_user(connection, "bob@example.com", "Bob")
    bob = await make_session(connection, bob_id)
    async with _other(api, bob) as other:
        copied = await other.post(f"/api/shared/{share['token']}/copy")
        assert copied.status_code == 201, copied.text
        copy = copied.json()
        assert copy["id"] != conversation_id and copy["title"] == "Ada's question"
        assert [(m["role"], m["content"]) for m in copy["messages"]] == [
            ("user", "Ada's question"),
            ("assistant", "Hello, world!"),
            ("user", "Ada's second question"),
            ("assistant", "Hello, world!"),
        ]
        # Each answer is a reply to its question, as in a conversation of Bob's own.
        messages = copy["messages"]
        assert messages[1]["replyToId"] == messages[0]["id"]
        assert messages[3]["replyToId"] == messages[2]["id"]
        assert [
            c["id"] for c in (await other.get("/api/conversations")).json()["conversations"]
        ] == [copy["id"]]
        groq_fake.received.clear()
        groq_fake.next(Scenario(chunks=["Bob's ", "answer"]))
        answer = await chat_json(other, "Bob goes on", copy["id"])
        assert answer["aiMessage"]["content"] == "Bob's answer"
    sent = [m["content"] for m in groq_fake.received[-1].body["messages"]]
    assert sent[-5:] == [
        "Ada's question", "Hello, world!", "Ada's second question", "Hello, world!", "Bob goes on"
    ]  # fmt: skip
    # The rows are Bob's; Ada's conversation is untouched.
    assert (
        await count(
            connection,
            "messages",
            '"conversationId" = :c AND "userId" = :u',
            c=copy["id"],
            u=bob_id,
        )
        == 6
    )
    assert len((await api.get(f"/api/conversations/{conversation_id}")).json()["messages"]) == 4


async def test_a_copy_of_todays_answers_does_not_spend_the_readers_daily_budget(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    budget = chat_settings(settings, groq_fake, quota_daily_messages=1)
    ada = await make_session(connection, await make_user(connection, "ada@example.com"))
    bob = await make_session(connection, await make_user(connection, "bob@example.com"))
    app = create_app(budget, database=Database.bound_to(connection))
    async with http_client(app) as client:
        client.headers["authorization"] = f"Bearer {ada}"
        asked = await chat_json(client, "today's question")
        share = await _share(client, asked["conversationId"])
        client.headers["authorization"] = f"Bearer {bob}"
        copied = await client.post(f"/api/shared/{share['token']}/copy")
        assert copied.status_code == 201
        usage = (await client.get("/api/users/me/usage")).json()
        assert usage["messages"]["used"] == 0
        await chat_json(client, "Bob's one question of the day", copied.json()["id"])
        refused = await client.post("/api/chat", json={"message": "one too many"})
        assert refused.status_code == 429


async def test_copying_needs_a_session_and_with_the_cookie_a_csrf_token(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    conversation_id = (await chat_json(api, "copy me"))["conversationId"]
    share = await _share(api, conversation_id)
    before = await count(connection, "conversations")
    async with _other(api) as reader:
        signed_out = await reader.post(f"/api/shared/{share['token']}/copy")
        assert signed_out.status_code == 401
        bob = await make_session(connection, await make_user(connection, "bob@example.com"))
        reader.cookies.set("authjs.session-token", bob)
        no_csrf = await reader.post(f"/api/shared/{share['token']}/copy")
        assert no_csrf.status_code == 403
        assert await count(connection, "conversations") == before
        token = await csrf_token(reader)
        with_csrf = await reader.post(
            f"/api/shared/{share['token']}/copy", headers={"x-csrf-token": token}
        )
        assert with_csrf.status_code == 201, with_csrf.text
    assert await count(connection, "conversations") == before + 1


async def test_the_export_lists_shares_without_tokens_and_deleting_the_account_removes_them(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    conversation_id = (await chat_json(api, "exported share"))["conversationId"]
    share = await _share(api, conversation_id)
    export = await api.get("/api/users/me/export")
    assert export.status_code == 200
    assert export.json()["shares"] == [
        {
            k: share[k]
            for k in ("id", "conversationId", "title", "messageCount", "createdAt", "active")
        }
    ]
    assert share["token"] not in export.text
    assert hashlib.sha256(share["token"].encode()).hexdigest() not in export.text

    assert (await api.delete("/api/users/me")).status_code == 204
    assert await count(connection, "conversation_shares") == 0
    async with _other(api) as reader:
        assert (await reader.get(f"/api/shared/{share['token']}")).status_code == 404


async def test_the_shared_page_is_the_built_in_page_with_its_policy(api: httpx.AsyncClient) -> None:
    conversation_id = (await chat_json(api, "page me"))["conversationId"]
    share = await _share(api, conversation_id)
    async with _other(api) as reader:
        response = await reader.get(f"/s/{share['token']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "require-trusted-types-for 'script'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    _assert_share_headers(response)
    assert 'id="shared-view"' in response.text
    assert "set-cookie" not in response.headers


def test_share_tokens_stay_out_of_the_access_log_and_the_apps_warnings() -> None:
    token = "Q" * TOKEN_CHARS
    for path, logged in [
        (f"/s/{token}", "/s/[redacted]"),
        (f"/api/shared/{token}", "/api/shared/[redacted]"),
        (f"/api/shared/{token}/copy", "/api/shared/[redacted]/copy"),
        (f"/s/{token}?token=x", "/s/[redacted]?token=[redacted]"),
        ("/api/shares", "/api/shares"),
    ]:
        record = logging.LogRecord(
            "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5", "GET", path, "1.1", 200), None,
        )  # fmt: skip
        SecretQueryFilter().filter(record)
        assert record.getMessage() == f'127.0.0.1:5 - "GET {logged} HTTP/1.1" 200'
        # The app's own warnings (database away, a statement timed out) log the path so.
        assert redact_path(path) == logged.split("?")[0] + ("?token=x" if "?" in path else "")
