"""Pins and the archive (issue 23 item 4): pinned conversations first in the list with exact
keyset pages across the pinned/unpinned boundary; archived ones out of the list unless
`archived=true`, kept (not the trash), found by search; a new message unarchives."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.lib.time import utc_now
from tests.hostile import b64
from tests.organize.conftest import listed, new_conversation, ok
from tests.test_bad_input import assert_problem


async def _made(api: httpx.AsyncClient, connection: AsyncConnection, n: int) -> list[str]:
    """`n` conversations, c0 the oldest; newest first as the list gives them unpinned."""
    ids = [await new_conversation(api, f"c{index}") for index in range(n)]
    for index, conversation_id in enumerate(ids):
        await connection.execute(
            text('UPDATE conversations SET "updatedAt" = :at WHERE id = :id'),
            {"at": utc_now() - timedelta(minutes=n - index), "id": conversation_id},
        )
    return ids[::-1]


async def test_pinned_conversations_come_first_and_pinning_is_no_activity(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    newest_first = await _made(api, connection, 4)
    oldest = newest_first[-1]
    before = (await ok(api.get(f"/api/conversations/{oldest}")))["updatedAt"]
    labels = await ok(api.put(f"/api/conversations/{oldest}/pin"))
    assert labels["pinnedAt"] is not None
    again = await ok(api.put(f"/api/conversations/{oldest}/pin"))
    assert again["pinnedAt"] == labels["pinnedAt"]  # pinned since the first time
    rows = await listed(api)
    assert [r["id"] for r in rows] == [oldest, *newest_first[:-1]]
    assert rows[0]["pinnedAt"] == labels["pinnedAt"] and rows[1]["pinnedAt"] is None
    assert rows[0]["updatedAt"] == before
    await ok(api.delete(f"/api/conversations/{oldest}/pin"))
    assert [r["id"] for r in await listed(api)] == newest_first


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("tied", [False, True], ids=["distinct", "same-updatedAt"])
async def test_pages_are_exact_across_the_pinned_boundary(
    api: httpx.AsyncClient, connection: AsyncConnection, limit: int, tied: bool
) -> None:
    newest_first = await _made(api, connection, 7)
    if tied:  # every row the same updatedAt: the id orders them
        await connection.execute(
            text("UPDATE conversations SET \"updatedAt\" = date_trunc('second', now())")
        )
        newest_first.sort(reverse=True)
    pinned = [newest_first[1], newest_first[4], newest_first[6]]
    for conversation_id in pinned:
        await ok(api.put(f"/api/conversations/{conversation_id}/pin"))
    expected = pinned + [c for c in newest_first if c not in pinned]
    assert [r["id"] for r in await listed(api, limit=limit)] == expected


async def test_a_cursor_issued_before_pins_continues_among_the_unpinned(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    newest_first = await _made(api, connection, 4)
    await ok(api.put(f"/api/conversations/{newest_first[3]}/pin"))
    second = (await ok(api.get(f"/api/conversations/{newest_first[1]}")))["updatedAt"]
    at = second.replace("Z", "").replace("+00:00", "")
    page = await ok(
        api.get("/api/conversations", params={"cursor": b64(f"{at}|{newest_first[1]}")})
    )
    assert [r["id"] for r in page["conversations"]] == [newest_first[2]]


async def test_archived_conversations_leave_the_list_and_have_their_own_view(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    newest_first = await _made(api, connection, 5)
    archived = [newest_first[0], newest_first[3]]
    for conversation_id in archived:
        labels = await ok(api.put(f"/api/conversations/{conversation_id}/archive"))
        assert labels["archivedAt"] is not None
    await ok(api.put(f"/api/conversations/{newest_first[3]}/pin"))
    assert [r["id"] for r in await listed(api)] == [
        newest_first[1], newest_first[2], newest_first[4]
    ]  # fmt: skip
    view = await listed(api, archived="true", limit=1)
    assert [r["id"] for r in view] == [newest_first[3], newest_first[0]]  # pinned first
    assert all(r["archivedAt"] for r in view)
    # Archived is kept whole: readable, not in the trash.
    assert (await ok(api.get(f"/api/conversations/{newest_first[0]}")))["archivedAt"]
    assert (await ok(api.get("/api/conversations/trash")))["conversations"] == []
    await ok(api.delete(f"/api/conversations/{newest_first[0]}/archive"))
    assert newest_first[0] in [r["id"] for r in await listed(api)]


async def test_trash_and_restore_keep_the_archive_and_the_pin(api: httpx.AsyncClient) -> None:
    chat = await new_conversation(api, "kept")
    await ok(api.put(f"/api/conversations/{chat}/archive"))
    await ok(api.put(f"/api/conversations/{chat}/pin"))
    await ok(api.delete(f"/api/conversations/{chat}"), 204)
    assert await listed(api, archived="true") == []
    assert_problem(await api.put(f"/api/conversations/{chat}/pin"), 404)
    assert [c["id"] for c in (await ok(api.get("/api/conversations/trash")))["conversations"]] == [
        chat
    ]
    restored = await ok(api.post(f"/api/conversations/{chat}/restore"))
    assert restored["archivedAt"] and restored["pinnedAt"]
    assert [r["id"] for r in await listed(api, archived="true")] == [chat]


async def test_a_new_message_takes_a_conversation_out_of_the_archive(
    api: httpx.AsyncClient,
) -> None:
    chat = await ok(api.post("/api/chat", json={"message": "first question"}))
    conversation_id = chat["conversationId"]
    await ok(api.put(f"/api/conversations/{conversation_id}/archive"))
    assert await listed(api) == []
    await ok(api.post("/api/chat", json={"message": "one more", "conversationId": conversation_id}))
    rows = await listed(api)
    assert [r["id"] for r in rows] == [conversation_id]
    assert rows[0]["archivedAt"] is None and rows[0]["messageCount"] == 4


async def test_search_finds_archived_conversations(api: httpx.AsyncClient) -> None:
    chat = await ok(api.post("/api/chat", json={"message": "sourdough starter recipe"}))
    await ok(api.put(f"/api/conversations/{chat['conversationId']}/archive"))
    found = await ok(api.get("/api/conversations/search", params={"q": "sourdough"}))
    (result,) = found["results"]
    assert result["conversation"]["archivedAt"] is not None


async def test_another_users_conversation_cannot_be_pinned_or_archived(
    api: httpx.AsyncClient, connection: AsyncConnection, bob: dict[str, str]
) -> None:
    mine = await new_conversation(api, "mine")
    for path in ("pin", "archive"):
        for method in ("PUT", "DELETE"):
            response = await api.request(method, f"/api/conversations/{mine}/{path}", headers=bob)
            assert_problem(response, 404)
    state = (
        await connection.execute(
            text('SELECT "pinnedAt", "archivedAt" FROM conversations WHERE id = :id'), {"id": mine}
        )
    ).one()
    assert tuple(state) == (None, None)


@pytest.mark.parametrize("value", ["maybe", "2", ""])
async def test_archived_must_be_a_boolean(api: httpx.AsyncClient, value: str) -> None:
    assert_problem(await api.get("/api/conversations", params={"archived": value}), 400)


async def test_regenerating_in_an_archived_conversation_takes_it_out_too(
    api: httpx.AsyncClient,
) -> None:
    chat = await ok(api.post("/api/chat", json={"message": "first question"}))
    conversation_id = chat["conversationId"]
    await ok(api.put(f"/api/conversations/{conversation_id}/archive"))
    await ok(api.post(f"/api/conversations/{conversation_id}/regenerate", json={"stream": False}))
    assert [r["id"] for r in await listed(api)] == [conversation_id]
    assert await listed(api, archived="true") == []
