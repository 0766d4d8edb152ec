"""Filters in the search box (issue 23 item 4): `tag:`, `pinned:`, `archived:`, `model:`,
`before:`, `after:`, with words or alone, keeping the ranking and the keyset pages; a bad
value is a 400 naming `q`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.lib.time import utc_now
from tests.auth.conftest import make_session, make_user
from tests.search.test_search import Seeder
from tests.test_bad_input import assert_problem

Seeded = tuple[httpx.AsyncClient, Seeder]
SEARCH = "/api/conversations/search"


@pytest.fixture
async def seeded(client: httpx.AsyncClient, connection: AsyncConnection) -> Seeded:
    user_id = await make_user(connection, "filters@example.com")
    client.headers["authorization"] = f"Bearer {await make_session(connection, user_id)}"
    return client, Seeder(connection, user_id)


async def _ok(response: Any) -> Any:
    answer: httpx.Response = await response
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def _tag(client: httpx.AsyncClient, name: str, *conversation_ids: str) -> str:
    tag_id = (await _ok(client.post("/api/tags", json={"name": name})))["id"]
    for conversation_id in conversation_ids:
        await _ok(client.put(f"/api/conversations/{conversation_id}/tags/{tag_id}"))
    return str(tag_id)


async def _search(client: httpx.AsyncClient, q: str, **params: Any) -> dict[str, Any]:
    return dict(await _ok(client.get(SEARCH, params={"q": q, **params})))


async def _titles(client: httpx.AsyncClient, q: str, **params: Any) -> list[str]:
    """Every result's title, page after page (at `limit`)."""
    titles: list[str] = []
    cursor = None
    while True:
        page = await _search(client, q, **params, **({"cursor": cursor} if cursor else {}))
        titles += [r["conversation"]["title"] for r in page["results"]]
        cursor = page["nextCursor"]
        if cursor is None:
            return titles


async def test_a_tag_filter_keeps_the_ranking_of_the_words(seeded: Seeded) -> None:
    client, seed = seeded
    often = await seed.conversation("often", "kubernetes kubernetes kubernetes", age_days=1)
    once = await seed.conversation("once", "we talked about kubernetes once", age_days=1)
    await seed.conversation("untagged", "kubernetes kubernetes kubernetes kubernetes")
    await seed.conversation("bread", "a recipe for bread")
    await _tag(client, "Work Stuff", often, once)
    everything = await _titles(client, "kubernetes")
    assert everything[0] == "untagged"
    tagged = await _titles(client, 'kubernetes tag:"work stuff"')
    assert tagged == [t for t in everything if t in ("often", "once")] == ["often", "once"]
    assert await _titles(client, 'tag:"WORK STUFF" kubernetes', limit=1) == tagged
    assert await _titles(client, "kubernetes tag:nothing") == []


async def test_several_tags_must_all_be_there(seeded: Seeded) -> None:
    client, seed = seeded
    both = await seed.conversation("both", "plans for the weekend")
    one = await seed.conversation("one", "plans for the week")
    await _tag(client, "home", both, one)
    await _tag(client, "urgent", both)
    assert await _titles(client, "plans tag:home tag:urgent") == ["both"]
    assert sorted(await _titles(client, "plans tag:home")) == ["both", "one"]


async def test_pinned_and_archived_filters(seeded: Seeded) -> None:
    client, seed = seeded
    pinned = await seed.conversation("pinned", "garden notes")
    archived = await seed.conversation("archived", "garden notes")
    await seed.conversation("plain", "garden notes")
    await _ok(client.put(f"/api/conversations/{pinned}/pin"))
    await _ok(client.put(f"/api/conversations/{archived}/archive"))
    assert await _titles(client, "garden pinned:true") == ["pinned"]
    assert sorted(await _titles(client, "garden pinned:false")) == ["archived", "plain"]
    assert await _titles(client, "garden archived:true") == ["archived"]
    assert sorted(await _titles(client, "garden ARCHIVED:False")) == ["pinned", "plain"]
    found = await _search(client, "garden pinned:true")
    assert found["results"][0]["conversation"]["pinnedAt"] is not None


async def test_model_before_and_after_filter_the_messages(seeded: Seeded) -> None:
    client, seed = seeded
    await seed.conversation(
        "groq old", ("assistant", "tomato soup"), age_days=40, model="llama-3.1-8b-instant"
    )
    await seed.conversation(
        "gemini old", ("assistant", "tomato soup"), age_days=40, model="gemini-2.5-flash"
    )
    await seed.conversation(
        "gemini new", ("assistant", "tomato soup"), age_days=1, model="gemini-2.5-flash"
    )
    day = (utc_now() - timedelta(days=20)).date().isoformat()
    assert sorted(await _titles(client, "tomato model:gemini-2.5-flash")) == [
        "gemini new",
        "gemini old",
    ]
    assert sorted(await _titles(client, f"tomato before:{day}")) == ["gemini old", "groq old"]
    assert await _titles(client, f"tomato after:{day} model:gemini-2.5-flash") == ["gemini new"]
    assert await _titles(client, "tomato", model="gemini-2.5-flash", to=day + "T00:00:00Z") == [
        "gemini old"
    ]
    assert await _titles(client, "tomato model:gemini-2.5-flash", model="gemini-2.5-flash") != []


async def test_filters_alone_list_conversations_newest_first_in_pages(seeded: Seeded) -> None:
    client, seed = seeded
    ids = [await seed.conversation(f"c{age}", "anything at all", age_days=age) for age in range(5)]
    empty = await seed.conversation("empty", age_days=0.5)
    await _tag(client, "keep", *ids[:4], empty)
    page = await _search(client, "tag:keep", limit=2)
    assert page["mode"] == "filters" and len(page["results"]) == 2
    assert all(r["score"] == 0 and r["matches"] == [] for r in page["results"])  # no message filter
    assert await _titles(client, "tag:keep", limit=2) == ["c0", "empty", "c1", "c2", "c3"]
    # A message filter keeps only conversations with such a message (not the empty one).
    day = (utc_now() - timedelta(days=2)).date().isoformat()
    assert await _titles(client, f"tag:keep after:{day}", limit=1) == ["c0", "c1", "c2"]


async def test_message_filters_alone_show_the_latest_messages_they_select(
    seeded: Seeded,
) -> None:
    client, seed = seeded
    older = await seed.conversation("older", age_days=1)
    await seed.message(older, "assistant", "an older answer", utc_now() - timedelta(days=1),
                       model="llama")  # fmt: skip
    mixed = await seed.conversation("mixed")
    at = utc_now()
    await seed.message(mixed, "user", "q1", at)
    await seed.message(mixed, "assistant", "<b>first</b> answer", at + timedelta(seconds=1),
                       model="llama")  # fmt: skip
    await seed.message(mixed, "assistant", "x" * 300, at + timedelta(seconds=2), model="llama")
    await seed.message(mixed, "assistant", "from gemini", at + timedelta(seconds=3),
                       model="gemini-2.5-flash")  # fmt: skip
    page = await _search(client, "model:llama")
    assert [r["conversation"]["title"] for r in page["results"]] == ["mixed", "older"]
    assert [m["snippet"] for m in page["results"][0]["matches"]] == [
        "x" * 160 + " …",
        "&lt;b&gt;first&lt;/b&gt; answer",  # escaped, as every snippet is
    ]
    assert page["results"][0]["matches"][0]["role"] == "assistant"
    (gemini,) = (await _search(client, "model:gemini-2.5-flash"))["results"]
    assert [m["snippet"] for m in gemini["matches"]] == ["from gemini"]


async def test_a_quoted_filter_is_searched_as_text(seeded: Seeded) -> None:
    client, seed = seeded
    await seed.conversation("literal", "set the tag:urgent label")
    await seed.conversation("other", "urgent things")
    assert await _titles(client, '"tag:urgent"') == ["literal"]


async def test_a_cursor_of_a_filters_only_search_is_refused_with_words(seeded: Seeded) -> None:
    client, seed = seeded
    for age in range(3):
        await seed.conversation(f"c{age}", "notes", age_days=age)
    page = await _search(client, "archived:false", limit=1)
    response = await client.get(SEARCH, params={"q": "notes", "cursor": page["nextCursor"]})
    assert_problem(response, 400, "cursor")
    words = await _search(client, "notes", limit=1)
    response = await client.get(SEARCH, params={"q": "pinned:false", "cursor": words["nextCursor"]})
    assert_problem(response, 400, "cursor")


@pytest.mark.parametrize(
    "q",
    [
        "tag:",
        'tag:""',
        'tag:"unclosed',
        "tag:" + "x" * 41,
        "notes " + " ".join(f"tag:t{i}" for i in range(11)),
        "pinned:maybe",
        "pinned:",
        "archived:1",
        "pinned:true pinned:false",
        "model:",
        "model:" + "x" * 201,
        "model:a<b>",
        "before:2026-13-01",
        "before:2026-02-30",
        "after:0000-01-01",
        "after:20260101",
        "before:1e999999",
        "after:\uff12\uff10\uff12\uff16-01-01",  # full-width digits
        "before:2026-01-01 after:2026-02-01",
        "after:2026-01-01 before:2026-01-01",
        "before:2026-01-01 before:2026-02-01",
    ],
)
async def test_a_bad_filter_is_a_400_naming_q(seeded: Seeded, q: str) -> None:
    client, seed = seeded
    await seed.conversation("notes", "notes")
    assert_problem(await client.get(SEARCH, params={"q": q}), 400, "q")


async def test_model_in_q_and_in_the_parameter_must_agree(seeded: Seeded) -> None:
    client, _ = seeded
    response = await client.get(SEARCH, params={"q": "x model:a", "model": "b"})
    assert_problem(response, 400, "q")


async def test_filters_leaving_no_time_between_from_and_to_are_a_400(seeded: Seeded) -> None:
    client, _ = seeded
    response = await client.get(SEARCH, params={"q": "x after:2026-06-01", "to": "2026-05-01"})
    assert_problem(response, 400, "q")


async def test_another_users_tag_of_the_same_name_selects_nothing(
    seeded: Seeded, connection: AsyncConnection
) -> None:
    client, seed = seeded
    await seed.conversation("mine", "shared words")
    other = await make_user(connection, "other@example.com")
    theirs = Seeder(connection, other)
    their_chat = await theirs.conversation("theirs", "shared words")
    bearer = {"authorization": f"Bearer {await make_session(connection, other)}"}
    tag = (await _ok(client.post("/api/tags", json={"name": "x"}, headers=bearer)))["id"]
    await _ok(client.put(f"/api/conversations/{their_chat}/tags/{tag}", headers=bearer))
    assert await _titles(client, "shared tag:x") == []
    assert await _titles(client, "tag:x") == []
