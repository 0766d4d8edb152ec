"""The trash (issue 14): deleting moves conversations and messages there; they are found by
nothing else, come back whole, and are purged after the retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.chat.trash import TrashPurger, parse_age, purge
from app.db.engine import Database
from app.lib.time import utc_now
from tests.auth.conftest import make_session, make_user
from tests.fakes.llm import FakeLLM
from tests.search.test_search import Seeder
from tests.stats.test_rollups import assert_rollups_match_messages


async def _chat(
    api: httpx.AsyncClient, message: str, conversation_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if conversation_id:
        body["conversationId"] = conversation_id
    response = await api.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _trash_ids(api: httpx.AsyncClient) -> list[str]:
    response = await api.get("/api/conversations/trash")
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["conversations"]]


async def _age_trash(connection: AsyncConnection, days: float) -> None:
    """Pretend everything in the trash was deleted `days` ago."""
    for table in ("conversations", "messages"):
        await connection.execute(
            text(
                f'UPDATE {table} SET "deletedAt" = "deletedAt" - make_interval(secs => :s) '
                'WHERE "deletedAt" IS NOT NULL'
            ),
            {"s": days * 86400},
        )


async def test_a_trashed_conversation_is_found_by_nothing_but_the_trash(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    kept = (await _chat(api, "keep this about otters"))["conversationId"]
    gone = (await _chat(api, "trash this about otters"))["conversationId"]

    assert (await api.delete(f"/api/conversations/{gone}")).status_code == 204

    listed = (await api.get("/api/conversations")).json()["conversations"]
    assert [c["id"] for c in listed] == [kept]
    assert (await api.get(f"/api/conversations/{gone}")).status_code == 404
    assert (await api.get(f"/api/conversations/{gone}/messages")).status_code == 404
    assert (await api.get(f"/api/conversations/{gone}/export")).status_code == 404
    assert (await api.patch(f"/api/conversations/{gone}", json={"title": "x"})).status_code == 404
    found = (await api.get("/api/conversations/search", params={"q": "otters"})).json()
    assert [r["conversation"]["id"] for r in found["results"]] == [kept]
    exported = (await api.get("/api/users/me/export")).json()
    assert [c["id"] for c in exported["conversations"]] == [kept]
    assert await _trash_ids(api) == [gone]


async def test_a_trashed_conversation_cannot_be_chatted_in(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    gone = (await _chat(api, "hello"))["conversationId"]
    await api.delete(f"/api/conversations/{gone}")
    asked = len(groq_fake.received)

    response = await api.post("/api/chat", json={"message": "again", "conversationId": gone})
    assert response.status_code == 404
    assert (await api.post(f"/api/conversations/{gone}/regenerate")).status_code == 404
    assert len(groq_fake.received) == asked


async def test_a_restored_conversation_comes_back_whole(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    first = await _chat(api, "first question")
    conversation_id = first["conversationId"]
    await _chat(api, "second question", conversation_id)
    before = (await api.get(f"/api/conversations/{conversation_id}")).json()
    # A message deleted before the conversation stays deleted after its restore.
    earlier = first["userMessage"]["id"]
    assert (await api.delete(f"/api/messages/{earlier}")).status_code == 204
    kept = [m for m in before["messages"] if m["id"] != earlier]

    await api.delete(f"/api/conversations/{conversation_id}")
    restored = await api.post(f"/api/conversations/{conversation_id}/restore")

    assert restored.status_code == 200, restored.text
    assert restored.json()["messages"] == kept
    again = (await api.get(f"/api/conversations/{conversation_id}")).json()
    assert again["messages"] == kept
    assert again["updatedAt"] == before["updatedAt"]
    assert await _trash_ids(api) == []
    listed = (await api.get("/api/conversations")).json()["conversations"]
    assert listed[0]["messageCount"] == len(kept)
    assert (await _chat(api, "third question", conversation_id))["conversationId"]


async def test_the_trash_pages_newest_deletion_first(api: httpx.AsyncClient) -> None:
    made = [
        (await api.post("/api/conversations", json={"title": f"c{i}"})).json()["id"]
        for i in range(5)
    ]
    for conversation_id in made:
        await api.delete(f"/api/conversations/{conversation_id}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/conversations/trash", params=params)).json()
        seen += [c["id"] for c in page["conversations"]]
        assert all(c["deletedAt"] for c in page["conversations"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))


async def test_a_trashed_message_leaves_pages_and_the_history_window(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    first = await _chat(api, "my secret is 42")
    conversation_id = first["conversationId"]
    await _chat(api, "something else", conversation_id)
    secret = first["userMessage"]["id"]

    assert (await api.delete(f"/api/messages/{secret}")).status_code == 204
    assert (await api.delete(f"/api/messages/{secret}")).status_code == 404
    page = (await api.get(f"/api/conversations/{conversation_id}/messages")).json()
    assert secret not in [m["id"] for m in page["messages"]]
    await _chat(api, "what is my secret?", conversation_id)

    sent = groq_fake.received[-1].body["messages"]
    assert all("42" not in m["content"] for m in sent)
    assert sent[-1] == {"role": "user", "content": "what is my secret?"}


async def test_search_skips_trashed_messages(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    seed = Seeder(connection, api.user_id)  # type: ignore[attr-defined]
    conversation_id = await seed.conversation("notes", "about walruses", "about penguins")
    page = (await api.get(f"/api/conversations/{conversation_id}/messages")).json()
    walrus = next(m["id"] for m in page["messages"] if "walrus" in m["content"])

    await api.delete(f"/api/messages/{walrus}")

    for query in ("walruses", "walrus"):  # full text, then the fuzzy fallback
        found = (await api.get("/api/conversations/search", params={"q": query})).json()
        assert found["results"] == []
    found = (await api.get("/api/conversations/search", params={"q": "penguins"})).json()
    assert [r["conversation"]["id"] for r in found["results"]] == [conversation_id]


async def test_stats_stop_counting_trashed_messages_and_count_restored_ones(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    users = [api.user_id]  # type: ignore[attr-defined]
    one = await _chat(api, "one")
    two = await _chat(api, "two")
    assert (await api.get("/api/users/me/stats")).json()["messageCount"] == 4

    await api.delete(f"/api/messages/{one['aiMessage']['id']}")
    await assert_rollups_match_messages(connection, users)
    await api.delete(f"/api/conversations/{two['conversationId']}")
    await assert_rollups_match_messages(connection, users)
    stats = (await api.get("/api/users/me/stats")).json()
    assert (stats["messageCount"], stats["conversationCount"]) == (1, 1)
    assert stats["lastMessageAt"] == one["userMessage"]["createdAt"]

    await api.post(f"/api/conversations/{two['conversationId']}/restore")
    await assert_rollups_match_messages(connection, users)
    assert (await api.get("/api/users/me/stats")).json()["messageCount"] == 3
    # Removing trashed rows for good changes nothing more.
    await api.delete(f"/api/conversations/{one['conversationId']}?permanent=true")
    await assert_rollups_match_messages(connection, users)
    assert (await api.get("/api/users/me/stats")).json()["messageCount"] == 2


async def test_quotas_keep_counting_trashed_answers(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    answered = await _chat(api, "count me")
    await api.delete(f"/api/conversations/{answered['conversationId']}")
    usage = (await api.get("/api/users/me/usage")).json()
    assert usage["messages"]["used"] == 1


async def test_permanent_delete_removes_at_once_also_from_the_trash(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    live = (await api.post("/api/conversations", json={"title": "live"})).json()["id"]
    trashed = (await api.post("/api/conversations", json={"title": "trashed"})).json()["id"]
    await api.delete(f"/api/conversations/{trashed}")

    for conversation_id in (live, trashed):
        response = await api.delete(
            f"/api/conversations/{conversation_id}", params={"permanent": "true"}
        )
        assert response.status_code == 204
    rows = await connection.scalar(
        text("SELECT count(*) FROM conversations WHERE id IN (:a, :b)"), {"a": live, "b": trashed}
    )
    assert rows == 0
    assert await _trash_ids(api) == []
    assert (await api.post(f"/api/conversations/{trashed}/restore")).status_code == 404


async def test_another_users_trash_is_invisible(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    mine = (await api.post("/api/conversations", json={"title": "mine"})).json()["id"]
    await api.delete(f"/api/conversations/{mine}")
    eve = await make_user(connection, "eve@example.com", "Eve")
    as_eve = {"authorization": f"Bearer {await make_session(connection, eve)}"}

    trash = (await api.get("/api/conversations/trash", headers=as_eve)).json()
    assert trash["conversations"] == []
    restore = await api.post(f"/api/conversations/{mine}/restore", headers=as_eve)
    assert restore.status_code == 404
    for params in ({}, {"permanent": "true"}):
        gone = await api.delete(f"/api/conversations/{mine}", params=params, headers=as_eve)
        assert gone.status_code == 404
    assert await _trash_ids(api) == [mine]


async def test_purge_removes_only_what_is_older_than_the_retention(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    old = (await api.post("/api/conversations", json={"title": "old"})).json()["id"]
    seed = Seeder(connection, api.user_id)  # type: ignore[attr-defined]
    await seed.message(old, "user", "old words", utc_now())
    await api.delete(f"/api/conversations/{old}")
    await _age_trash(connection, 31)
    recent = (await api.post("/api/conversations", json={"title": "recent"})).json()["id"]
    await api.delete(f"/api/conversations/{recent}")
    database = Database.bound_to(connection)

    async with database.session_maker() as db:
        would = await purge(db, timedelta(days=30), dry_run=True)
    assert (would.conversations, would.messages) == (1, 1)
    assert set(await _trash_ids(api)) == {old, recent}

    purged = await TrashPurger(database, timedelta(days=30)).run_once()
    assert purged is not None
    assert (purged.conversations, purged.messages) == (1, 1)
    assert await _trash_ids(api) == [recent]
    left = await connection.scalar(
        text('SELECT count(*) FROM messages WHERE "conversationId" = :c'), {"c": old}
    )
    assert left == 0


async def test_purge_takes_trashed_messages_of_live_conversations(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    seed = Seeder(connection, api.user_id)  # type: ignore[attr-defined]
    conversation_id = await seed.conversation("live", "keep me", "drop me")
    page = (await api.get(f"/api/conversations/{conversation_id}/messages")).json()
    drop = next(m["id"] for m in page["messages"] if m["content"] == "drop me")
    await api.delete(f"/api/messages/{drop}")
    await _age_trash(connection, 2)

    async with Database.bound_to(connection).session_maker() as db:
        assert (await purge(db, timedelta(days=3))).messages == 0
        assert (await purge(db, parse_age("36h"))).messages == 1
    page = (await api.get(f"/api/conversations/{conversation_id}/messages")).json()
    assert [m["content"] for m in page["messages"]] == ["keep me"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("7", timedelta(days=7))],
)
def test_ages_are_read_in_days_or_hours(raw: str, expected: timedelta) -> None:
    assert parse_age(raw) == expected


def test_other_ages_are_refused() -> None:
    with pytest.raises(ValueError, match="30d or 12h"):
        parse_age("1 week")
