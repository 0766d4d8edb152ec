"""Conversations, messages, regenerate, export, reactions; and strict ownership (item 15)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.auth.conftest import count, make_session, make_user
from tests.chat.conftest import chat_json
from tests.fakes.llm import FakeLLM, Scenario


async def test_conversations_are_listed_newest_first_with_count_and_preview(
    api: httpx.AsyncClient,
) -> None:
    first = (await chat_json(api, "first topic"))["conversationId"]
    second = (await chat_json(api, "second topic"))["conversationId"]
    await chat_json(api, "more on the first", first)
    listed = (await api.get("/api/conversations")).json()["conversations"]
    assert [c["id"] for c in listed] == [first, second]
    assert listed[0]["messageCount"] == 4
    assert listed[0]["lastMessage"] == "Hello, world!"
    assert listed[0]["lastMessageRole"] == "assistant"
    assert listed[1]["title"] == "second topic"


async def test_conversation_pages_have_no_duplicates_or_gaps(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    made = [
        (await api.post("/api/conversations", json={"title": f"c{i}"})).json()["id"]
        for i in range(7)
    ]
    # Same updatedAt for several rows: the id breaks the tie.
    await connection.execute(
        text("UPDATE conversations SET \"updatedAt\" = date_trunc('second', now())")
    )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/conversations", params=params)).json()
        seen += [c["id"] for c in page["conversations"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen)) == 7


async def test_the_conversation_list_is_one_sql_statement_whatever_the_page_size(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    for i in range(30):
        await api.post("/api/conversations", json={"title": f"c{i}"})
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    def record_driver(query: Any) -> None:
        statements.append(query.query)

    # The list runs on asyncpg directly (a statement compiled once), the rest through
    # SQLAlchemy: both are watched.
    sync_engine = connection.sync_engine
    driver = (await connection.get_raw_connection()).driver_connection
    event.listen(sync_engine, "before_cursor_execute", record)
    driver.add_query_logger(record_driver)
    try:
        for size in (5, 30):
            statements.clear()
            response = await api.get("/api/conversations", params={"limit": size})
            assert len(response.json()["conversations"]) == size
            listing = [s for s in statements if "FROM conversations" in s]
            assert len(listing) == 1, statements
            real = [s for s in statements if "SAVEPOINT" not in s]  # the test's transaction
            assert real == listing  # the session lookup was cached by the posts before
    finally:
        event.remove(sync_engine, "before_cursor_execute", record)
        driver.remove_query_logger(record_driver)


async def test_messages_come_in_chronological_keyset_pages(api: httpx.AsyncClient) -> None:
    conversation_id = None
    for i in range(6):
        conversation_id = (await chat_json(api, f"m{i}", conversation_id))["conversationId"]
    newest = (
        await api.get(f"/api/conversations/{conversation_id}/messages", params={"limit": 4})
    ).json()
    assert [m["content"] for m in newest["messages"]] == [
        "m4",
        "Hello, world!",
        "m5",
        "Hello, world!",
    ]
    older = (
        await api.get(
            f"/api/conversations/{conversation_id}/messages",
            params={"limit": 4, "before": newest["nextCursor"]},
        )
    ).json()
    assert [m["content"] for m in older["messages"]] == [
        "m2",
        "Hello, world!",
        "m3",
        "Hello, world!",
    ]
    detail = (await api.get(f"/api/conversations/{conversation_id}")).json()
    assert len(detail["messages"]) == 12
    clamped = await api.get(
        f"/api/conversations/{conversation_id}/messages", params={"limit": 10**6}
    )
    assert clamped.status_code == 200
    bad_cursor = await api.get(
        f"/api/conversations/{conversation_id}/messages", params={"before": "!!"}
    )
    assert bad_cursor.status_code == 400


async def test_rename_and_delete_a_conversation(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    conversation_id = (await chat_json(api, "hello"))["conversationId"]
    renamed = await api.patch(
        f"/api/conversations/{conversation_id}", json={"title": "  Renamed  "}
    )
    assert renamed.json()["title"] == "Renamed"
    too_long = await api.patch(f"/api/conversations/{conversation_id}", json={"title": "t" * 201})
    assert too_long.status_code == 400
    assert (await api.delete(f"/api/conversations/{conversation_id}")).status_code == 204
    assert await count(connection, "messages", '"deletedAt" IS NULL') == 0  # in the trash
    assert (await api.get(f"/api/conversations/{conversation_id}")).status_code == 404


async def test_regenerate_keeps_the_earlier_answer_as_a_version(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    conversation_id = (await chat_json(api, "tell me a joke"))["conversationId"]
    groq_fake.next(Scenario(chunks=["A better ", "joke"]))
    again = await api.post(f"/api/conversations/{conversation_id}/regenerate", json={})
    assert again.status_code == 200
    assert again.json()["aiMessage"]["content"] == "A better joke"
    sent = groq_fake.received[-1].body["messages"]
    assert sent[-1] == {"role": "user", "content": "tell me a joke"}
    assert len(sent) == 2  # the earlier answer is not part of the new prompt

    current = (await api.get(f"/api/conversations/{conversation_id}/messages")).json()["messages"]
    assert [m["content"] for m in current] == ["tell me a joke", "A better joke"]
    everything = (
        await api.get(
            f"/api/conversations/{conversation_id}/messages", params={"includeVersions": "true"}
        )
    ).json()["messages"]
    versions = [m for m in everything if m["role"] == "assistant"]
    assert [m["content"] for m in versions] == ["Hello, world!", "A better joke"]
    assert versions[0]["supersededAt"] is not None and versions[1]["supersededAt"] is None
    assert versions[0]["replyToId"] == versions[1]["replyToId"]


async def test_export_as_json_and_markdown(api: httpx.AsyncClient) -> None:
    conversation_id = (await chat_json(api, "export me"))["conversationId"]
    as_json = await api.get(f"/api/conversations/{conversation_id}/export")
    assert as_json.headers["content-disposition"].endswith('.json"')
    assert [m["content"] for m in as_json.json()["messages"]] == ["export me", "Hello, world!"]
    as_markdown = await api.get(
        f"/api/conversations/{conversation_id}/export", params={"format": "markdown"}
    )
    assert as_markdown.headers["content-type"].startswith("text/markdown")
    assert "# export me" in as_markdown.text and "Hello, world!" in as_markdown.text
    assert (
        await api.get(f"/api/conversations/{conversation_id}/export", params={"format": "pdf"})
    ).status_code == 400


async def test_reactions_are_one_of_each_type_per_user_and_message(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    answer = (await chat_json(api, "react"))["aiMessage"]["id"]
    for _ in range(2):
        assert (await api.put(f"/api/messages/{answer}/reactions/like")).status_code == 204
    assert (await api.put(f"/api/messages/{answer}/reactions/helpful")).status_code == 204
    assert await count(connection, "message_reactions") == 2
    assert (await api.put(f"/api/messages/{answer}/reactions/love")).status_code == 400
    conversation = (await api.get("/api/conversations")).json()["conversations"][0]["id"]
    messages = (await api.get(f"/api/conversations/{conversation}/messages")).json()["messages"]
    assert messages[-1]["reactions"] == ["helpful", "like"]
    assert (await api.delete(f"/api/messages/{answer}/reactions/like")).status_code == 204
    assert await count(connection, "message_reactions") == 1


async def test_deleting_a_message(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    answer = (await chat_json(api, "delete my answer"))["aiMessage"]["id"]
    assert (await api.delete(f"/api/messages/{answer}")).status_code == 204
    assert await count(connection, "messages", 'id = :i AND "deletedAt" IS NULL', i=answer) == 0
    assert (await api.delete(f"/api/messages/{answer}")).status_code == 404


async def test_another_users_ids_are_not_found_everywhere_and_nothing_changes(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    mine = await chat_json(api, "private thoughts")
    conversation_id, message_id = mine["conversationId"], mine["aiMessage"]["id"]
    await api.put(f"/api/messages/{message_id}/reactions/like")
    before = await connection.execute(
        text('SELECT id, content, "supersededAt" FROM messages ORDER BY id')
    )
    snapshot = before.all()

    other = await make_session(connection, await make_user(connection, "mallory@example.com"))
    mallory = {"authorization": f"Bearer {other}"}
    attempts = [
        ("GET", f"/api/conversations/{conversation_id}", None),
        ("PATCH", f"/api/conversations/{conversation_id}", {"title": "mine now"}),
        ("DELETE", f"/api/conversations/{conversation_id}", None),
        ("GET", f"/api/conversations/{conversation_id}/messages", None),
        ("POST", f"/api/conversations/{conversation_id}/regenerate", {}),
        ("GET", f"/api/conversations/{conversation_id}/export", None),
        ("POST", "/api/chat", {"message": "hijack", "conversationId": conversation_id}),
        ("DELETE", f"/api/messages/{message_id}", None),
        ("PUT", f"/api/messages/{message_id}/reactions/dislike", None),
        ("DELETE", f"/api/messages/{message_id}/reactions/like", None),
    ]
    for method, path, body in attempts:
        response = await api.request(method, path, json=body, headers=mallory)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
        assert "private thoughts" not in response.text
    after = await connection.execute(
        text('SELECT id, content, "supersededAt" FROM messages ORDER BY id')
    )
    assert after.all() == snapshot
    assert await count(connection, "message_reactions") == 1
    assert await count(connection, "conversations", "title = 'private thoughts'") == 1
    listed = (await api.get("/api/conversations", headers=mallory)).json()["conversations"]
    assert listed == []


async def test_a_chat_that_starts_a_conversation_reads_no_tree_and_no_history(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    """A conversation made by the chat itself has no messages: nothing to adopt, no history
    to walk, no need to ask whether it has messages. Its second question does all of that."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    def record_driver(query: Any) -> None:
        statements.append(query.query)

    sync_engine = connection.sync_engine
    driver = (await connection.get_raw_connection()).driver_connection
    event.listen(sync_engine, "before_cursor_execute", record)
    driver.add_query_logger(record_driver)
    try:
        first = await chat_json(api, "a new topic")
        started = list(statements)
        statements.clear()
        await chat_json(api, "and more on it", first["conversationId"])
        continued = list(statements)
    finally:
        event.remove(sync_engine, "before_cursor_execute", record)
        driver.remove_query_logger(record_driver)

    def tree_work(found: list[str]) -> list[str]:
        return [
            s
            for s in found
            if "WITH RECURSIVE" in s  # the walk up the branch (history, live leaf)
            or "LAG(id)" in s  # adopting a conversation read in linear order
            or ("FROM messages" in s and "LIMIT" in s and "UPDATE" not in s and "INSERT" not in s)
        ]

    assert tree_work(started) == [], started
    assert any("WITH RECURSIVE" in s for s in continued), continued
