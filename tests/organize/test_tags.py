"""Tags (issue 23 item 4): per user, a name and a colour, many per conversation; CRUD, the
list's filter, the conversation JSON, exports, account deletion, and others' ids (404)."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.users.schemas import UserExport
from tests.auth.conftest import count
from tests.organize.conftest import listed, new_conversation, new_tag, ok
from tests.test_bad_input import assert_problem


async def test_tags_are_created_listed_by_name_renamed_recoloured_and_deleted(
    api: httpx.AsyncClient,
) -> None:
    work = await new_tag(api, "work", "#2563EB")
    await new_tag(api, "Holidays", "#16a34a")
    tags = (await ok(api.get("/api/tags")))["tags"]
    assert [(t["name"], t["color"], t["conversationCount"]) for t in tags] == [
        ("Holidays", "#16a34a", 0),
        ("work", "#2563eb", 0),  # colours are kept in lower case
    ]
    renamed = await ok(
        api.patch(f"/api/tags/{work}", json={"name": "  Work  ", "color": "#dc2626"})
    )
    assert (renamed["name"], renamed["color"]) == ("Work", "#dc2626")
    await ok(api.delete(f"/api/tags/{work}"), 204)
    assert [t["name"] for t in (await ok(api.get("/api/tags")))["tags"]] == ["Holidays"]


async def test_a_tag_without_a_colour_gets_the_default_one(api: httpx.AsyncClient) -> None:
    made = await ok(api.post("/api/tags", json={"name": "plain"}), 201)
    assert made["color"] == "#6b7280"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 41}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"name": 'say "hi"'}, "name"),
        ({"name": "ok", "color": "blue"}, "color"),
        ({"name": "ok", "color": "#12345"}, "color"),
        ({"color": "#123456"}, "name"),
    ],
)
async def test_a_bad_tag_is_a_400_naming_the_field_and_nothing_is_stored(
    api: httpx.AsyncClient, connection: AsyncConnection, body: dict[str, str], field: str
) -> None:
    assert_problem(await api.post("/api/tags", json=body), 400, field)
    assert await count(connection, "tags") == 0


async def test_a_name_of_40_characters_is_taken(api: httpx.AsyncClient) -> None:
    made = await ok(api.post("/api/tags", json={"name": "é" * 40}), 201)
    assert made["name"] == "é" * 40


async def test_duplicate_names_are_refused_whatever_their_case(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    await new_tag(api, "Work")
    other = await new_tag(api, "home")
    duplicate = await api.post("/api/tags", json={"name": "wORK"})
    assert_problem(duplicate, 409)
    assert "Work" in duplicate.json()["detail"]
    assert_problem(await api.patch(f"/api/tags/{other}", json={"name": "WORK"}), 409)
    assert sorted(await _names(connection)) == ["Work", "home"]
    # A tag may change the case of its own name.
    assert (await ok(api.patch(f"/api/tags/{other}", json={"name": "Home"})))["name"] == "Home"


async def test_the_101st_tag_is_refused(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    for index in range(100):
        await new_tag(api, f"tag {index}")
    assert_problem(await api.post("/api/tags", json={"name": "one more"}), 409)
    assert await count(connection, "tags") == 100


async def test_a_conversation_has_many_tags_shown_in_its_json(api: httpx.AsyncClient) -> None:
    chat = await new_conversation(api, "trip")
    work, home = await new_tag(api, "work", "#111111"), await new_tag(api, "Home", "#222222")
    await ok(api.put(f"/api/conversations/{chat}/tags/{work}"))
    await ok(api.put(f"/api/conversations/{chat}/tags/{work}"))  # again: no change
    labels = await ok(api.put(f"/api/conversations/{chat}/tags/{home}"))
    expected = [
        {"id": home, "name": "Home", "color": "#222222"},
        {"id": work, "name": "work", "color": "#111111"},
    ]
    assert labels["tags"] == expected
    assert (await ok(api.get(f"/api/conversations/{chat}")))["tags"] == expected
    assert (await listed(api))[0]["tags"] == expected
    counts = {t["name"]: t["conversationCount"] for t in (await ok(api.get("/api/tags")))["tags"]}
    assert counts == {"Home": 1, "work": 1}
    removed = await ok(api.delete(f"/api/conversations/{chat}/tags/{work}"))
    assert [t["name"] for t in removed["tags"]] == ["Home"]


async def test_deleting_a_tag_takes_it_off_its_conversations(api: httpx.AsyncClient) -> None:
    chat = await new_conversation(api, "trip")
    work = await new_tag(api, "work")
    await ok(api.put(f"/api/conversations/{chat}/tags/{work}"))
    await ok(api.delete(f"/api/tags/{work}"), 204)
    assert (await ok(api.get(f"/api/conversations/{chat}")))["tags"] == []


async def test_the_list_filters_by_tag_and_pages(api: httpx.AsyncClient) -> None:
    work = await new_tag(api, "work")
    tagged = []
    for index in range(5):
        chat = await new_conversation(api, f"c{index}")
        if index % 2 == 0:
            await ok(api.put(f"/api/conversations/{chat}/tags/{work}"))
            tagged.append(chat)
    pinned = tagged[0]
    await ok(api.put(f"/api/conversations/{pinned}/pin"))
    found = [c["id"] for c in await listed(api, tag=work, limit=1)]
    assert found == [pinned, tagged[2], tagged[1]]
    assert len(await listed(api)) == 5


async def test_another_users_tag_or_conversation_is_not_found_and_nothing_changes(
    api: httpx.AsyncClient, connection: AsyncConnection, bob: dict[str, str]
) -> None:
    mine = await new_conversation(api, "mine")
    my_tag = await new_tag(api, "mine")
    await ok(api.put(f"/api/conversations/{mine}/tags/{my_tag}"))
    theirs = await new_conversation(api, "theirs", **bob)
    their_tag = await new_tag(api, "theirs", **bob)
    before = await _links(connection)
    for response in (
        await api.put(f"/api/conversations/{mine}/tags/{their_tag}"),
        await api.delete(f"/api/conversations/{mine}/tags/{their_tag}"),
        await api.put(f"/api/conversations/{theirs}/tags/{my_tag}"),
        await api.put(f"/api/conversations/{mine}/tags/{my_tag}", headers=bob),
        await api.delete(f"/api/conversations/{mine}/tags/{my_tag}", headers=bob),
        await api.patch(f"/api/tags/{their_tag}", json={"name": "stolen"}),
        await api.delete(f"/api/tags/{their_tag}"),
        await api.get("/api/conversations", params={"tag": their_tag}),
        await api.get("/api/conversations", params={"tag": "no-such-tag"}),
    ):
        assert_problem(response, 404)
    assert await _links(connection) == before
    assert sorted(await _names(connection)) == ["mine", "theirs"]
    assert [t["name"] for t in (await ok(api.get("/api/tags", headers=bob)))["tags"]] == ["theirs"]


async def test_a_trashed_conversation_cannot_be_tagged(api: httpx.AsyncClient) -> None:
    chat = await new_conversation(api, "gone")
    work = await new_tag(api, "work")
    await ok(api.delete(f"/api/conversations/{chat}"), 204)
    assert_problem(await api.put(f"/api/conversations/{chat}/tags/{work}"), 404)


async def test_exports_carry_the_tags(api: httpx.AsyncClient) -> None:
    chat = await new_conversation(api, "trip")
    work = await new_tag(api, "work", "#123456")
    await ok(api.put(f"/api/conversations/{chat}/tags/{work}"))
    await ok(api.put(f"/api/conversations/{chat}/pin"))
    one = await ok(api.get(f"/api/conversations/{chat}/export"))
    assert one["tags"] == [{"id": work, "name": "work", "color": "#123456"}]
    assert one["pinnedAt"] is not None and one["archivedAt"] is None
    response = await api.get("/api/users/me/export")
    assert response.status_code == 200, response.text
    everything = msgspec.json.decode(response.content, type=UserExport)
    assert [(t["id"], t["name"], t["color"]) for t in everything.tags] == [
        (work, "work", "#123456")
    ]
    (exported,) = everything.conversations
    assert exported["tags"] == [work]
    assert exported["pinnedAt"] == one["pinnedAt"]


async def test_deleting_the_account_removes_its_tags(
    api: httpx.AsyncClient, connection: AsyncConnection, bob: dict[str, str]
) -> None:
    chat = await new_conversation(api, "trip")
    work = await new_tag(api, "work")
    await ok(api.put(f"/api/conversations/{chat}/tags/{work}"))
    await new_tag(api, "kept", **bob)
    await ok(api.delete("/api/users/me"), 204)
    assert await _names(connection) == ["kept"]
    assert await _links(connection) == []


async def _names(connection: AsyncConnection) -> list[str]:
    return list((await connection.scalars(text("SELECT name FROM tags ORDER BY name"))).all())


async def _links(connection: AsyncConnection) -> list[tuple[str, str]]:
    rows = await connection.execute(
        text('SELECT "conversationId", "tagId" FROM conversation_tags ORDER BY 1, 2')
    )
    return [(r[0], r[1]) for r in rows]
