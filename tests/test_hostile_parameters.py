"""Query parameters the API decodes itself (cursors, `q`, `from`/`to`, `tz`) are answered, or
refused with a 400 problem naming them, whatever their value: never a 500 (issue 20, item 4)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.auth.conftest import make_session, make_user
from tests.hostile import ODD_QUERIES, QUERIES, TAG_IDS, b64
from tests.search.test_search import Seeder
from tests.test_bad_input import assert_problem

Seeded = tuple[httpx.AsyncClient, Seeder]
SEARCH = "/api/conversations/search"


@pytest.fixture
async def seeded(client: httpx.AsyncClient, connection: AsyncConnection) -> Seeded:
    """Signed in (bearer) as a new user, with a seeder of their rows."""
    user_id = await make_user(connection, "hostile@example.com")
    client.headers["authorization"] = f"Bearer {await make_session(connection, user_id)}"
    return client, Seeder(connection, user_id)


def _unb64(cursor: str) -> str:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def _ids(page: dict[str, Any], key: str = "conversations") -> list[str]:
    return [row["id"] for row in page[key]]


async def _get(client: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


# Search: the query text.


@pytest.mark.parametrize(
    "q", ["-" * 33, "-" * 256, "- " * 40 + "-", "-(" * 40, "x " + "-" * 100], ids=str.__len__
)
async def test_a_query_of_dashes_without_words_finds_nothing(seeded: Seeded, q: str) -> None:
    client, seed = seeded
    await seed.conversation("plans", "plans for the weekend")
    page = await _get(client, SEARCH, q=q)
    assert page["results"] == []


async def test_a_long_run_of_dashes_negates_by_its_parity(seeded: Seeded) -> None:
    client, seed = seeded
    await seed.conversation("hawaiian", "pizza with pineapple is controversial")
    await seed.conversation("margherita", "pizza with basil and tomato")
    odd = await _get(client, SEARCH, q="pizza " + "-" * 33 + "pineapple")
    even = await _get(client, SEARCH, q="pizza " + "-" * 34 + "pineapple")
    assert [r["conversation"]["title"] for r in odd["results"]] == ["margherita"]
    assert [r["conversation"]["title"] for r in even["results"]] == ["hawaiian"]


# Search: `from` and `to`.


@pytest.mark.parametrize(
    ("name", "value"),
    [("from", "0001-01-01T00:00:00+05:00"), ("to", "9999-12-31T23:59:59-05:00")],
)
async def test_from_or_to_beyond_the_calendar_in_utc_is_a_400_naming_it(
    seeded: Seeded, name: str, value: str
) -> None:
    client, _ = seeded
    response = await client.get(SEARCH, params={"q": "plans", name: value})
    assert_problem(response, 400, name)


# Search: cursors.


def _ranked(*fields: Any) -> str:
    return b64(json.dumps(list(fields)))


async def test_a_search_cursor_with_an_aware_as_of_gives_the_same_next_page(
    seeded: Seeded,
) -> None:
    client, seed = seeded
    for age in (1, 2, 3):
        await seed.conversation(f"plans {age}", "plans for the weekend", age_days=age)
    first = await _get(client, SEARCH, q="plans", limit=1)
    score, conversation_id, as_of, mode = json.loads(_unb64(first["nextCursor"]))
    east = (
        datetime.fromisoformat(as_of).replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    )
    aware = _ranked(score, conversation_id, east.isoformat(), mode)
    issued = await _get(client, SEARCH, q="plans", limit=1, cursor=first["nextCursor"])
    assert await _get(client, SEARCH, q="plans", limit=1, cursor=aware) == issued


@pytest.mark.parametrize("score", ["1e999999", "1e-999999", "NaN", "-Infinity", "0.0000001"])
async def test_a_search_cursor_with_a_score_no_page_ends_at_is_a_400(
    seeded: Seeded, score: str
) -> None:
    client, _ = seeded
    cursor = _ranked(score, "c1", "2026-01-01T00:00:00")
    response = await client.get(SEARCH, params={"q": "plans", "cursor": cursor})
    assert_problem(response, 400, "cursor")


async def test_a_search_cursor_nested_thousands_deep_is_a_400(seeded: Seeded) -> None:
    client, _ = seeded
    cursor = b64("[" * 3000 + "]" * 3000)
    response = await client.get(SEARCH, params={"q": "plans", "cursor": cursor})
    assert_problem(response, 400, "cursor")


async def test_a_search_cursor_from_30_days_before_a_conversation_is_answered(
    seeded: Seeded,
) -> None:
    """The recency boost divided by zero for a conversation updated 30 days after `as_of`."""
    client, seed = seeded
    await seed.conversation("plans", "plans for the weekend")
    found = await _get(client, SEARCH, q="plans")
    updated = datetime.fromisoformat(found["results"][0]["conversation"]["updatedAt"])
    as_of = (updated - timedelta(days=30)).replace(tzinfo=None)
    cursor = _ranked("999", "zzzz", as_of.isoformat(), "fulltext")
    page = await _get(client, SEARCH, q="plans", cursor=cursor)
    assert [r["conversation"]["title"] for r in page["results"]] == ["plans"]


# Lists, the trash and message pages.


async def _three_of_each(seeded: Seeded) -> tuple[httpx.AsyncClient, str]:
    """Three conversations, three in the trash, and one with three messages (its id)."""
    client, seed = seeded
    for age in (1, 2, 3):
        trashed = await seed.conversation(f"old {age}", "hello", age_days=age)
        assert (await client.delete(f"/api/conversations/{trashed}")).status_code == 204
    chatty = await seed.conversation("chatty", "one", "two", "three", age_days=0.5)
    for age in (4, 5):
        await seed.conversation(f"kept {age}", "hello", age_days=age)
    return client, chatty


PAGES = [
    pytest.param("/api/conversations", "cursor", "conversations", id="list"),
    pytest.param("/api/conversations/trash", "cursor", "conversations", id="trash"),
    pytest.param("/api/conversations/{id}/messages", "before", "messages", id="messages"),
]


@pytest.mark.parametrize(("path", "field", "key"), PAGES)
@pytest.mark.parametrize("offset", [timedelta(0), timedelta(hours=5, minutes=30)])
async def test_an_aware_cursor_is_the_same_instant_as_the_one_issued(
    seeded: Seeded, path: str, field: str, key: str, offset: timedelta
) -> None:
    client, chatty = await _three_of_each(seeded)
    url = path.replace("{id}", chatty)
    first = await _get(client, url, limit=1)
    stamp, row_id = _unb64(first["nextCursor"]).split("|", 1)
    at = datetime.fromisoformat(stamp).replace(tzinfo=UTC).astimezone(timezone(offset))
    aware = b64(f"{at.isoformat()}|{row_id}")
    issued = await _get(client, url, limit=1, **{field: first["nextCursor"]})
    assert await _get(client, url, limit=1, **{field: aware}) == issued
    assert _ids(issued, key) and _ids(issued, key) != _ids(first, key)


@pytest.mark.parametrize(("path", "field", "key"), PAGES)
async def test_the_cursor_of_the_issue_is_answered(
    seeded: Seeded, path: str, field: str, key: str
) -> None:
    client, chatty = await _three_of_each(seeded)
    # 2026-01-01T00:00:00Z|x: before everything seeded now, after ids that sort below "x".
    cursor = "MjAyNi0wMS0wMVQwMDowMDowMFp8eA"
    assert _unb64(cursor) == "2026-01-01T00:00:00Z|x"
    await _get(client, path.replace("{id}", chatty), **{field: cursor})


@pytest.mark.parametrize(("path", "field", "key"), PAGES)
@pytest.mark.parametrize("cursor", ["2026-01-01T00:00:00|\x00", "2026-01-01T00:00:00|a\x00b"])
async def test_a_cursor_with_nul_in_its_id_is_a_400_naming_it(
    seeded: Seeded, path: str, field: str, key: str, cursor: str
) -> None:
    client, chatty = await _three_of_each(seeded)
    response = await client.get(path.replace("{id}", chatty), params={field: b64(cursor)})
    assert_problem(response, 400, field)


# Stats: time zones.


@pytest.mark.parametrize("zone", ["posixrules", "right/UTC", "posix/UTC", "localtime"])
async def test_a_zone_is_answered_exactly_when_postgresql_knows_it(
    seeded: Seeded, connection: AsyncConnection, zone: str
) -> None:
    # Python's zoneinfo opens all of these; which ones PostgreSQL knows depends on its build
    # (its own tz data, or the system's as on Debian's packages): the server decides.
    known = await connection.scalar(
        text("SELECT count(*) FROM pg_timezone_names WHERE name = :zone"), {"zone": zone}
    )
    client, seed = seeded
    await seed.conversation("plans", "plans for the weekend")
    response = await client.get("/api/users/me/stats", params={"tz": zone})
    if known:
        assert response.status_code == 200, response.text
        assert response.json()["messageCount"] == 1
    else:
        assert_problem(response, 400, "tz")


@pytest.mark.parametrize("zone", ["posixrules", "right/UTC"])
async def test_a_preferred_zone_postgresql_does_not_know_is_a_400_and_keeps_the_old_one(
    seeded: Seeded, connection: AsyncConnection, zone: str
) -> None:
    known = await connection.scalar(
        text("SELECT count(*) FROM pg_timezone_names WHERE name = :zone"), {"zone": zone}
    )
    client, _ = await seeded_with_zone(seeded, "Europe/Berlin")
    response = await client.patch("/api/users/me/preferences", json={"timeZone": zone})
    if known:
        assert response.status_code == 200, response.text
        assert response.json()["timeZone"] == zone
    else:
        assert_problem(response, 400, "timeZone")
        kept = await client.get("/api/users/me/preferences")
        assert kept.json()["timeZone"] == "Europe/Berlin"


async def seeded_with_zone(seeded: Seeded, zone: str) -> Seeded:
    client, seed = seeded
    response = await client.patch("/api/users/me/preferences", json={"timeZone": zone})
    assert response.status_code == 200, response.text
    return client, seed


async def test_a_zone_both_know_is_answered(seeded: Seeded) -> None:
    client, seed = seeded
    await seed.conversation("plans", "plans for the weekend")
    stats = await _get(client, "/api/users/me/stats", tz="America/Argentina/Buenos_Aires")
    assert stats["messageCount"] == 1


# Search filters in `q` and the list's `tag` (issue 23 item 4).


@pytest.mark.parametrize("q", QUERIES, ids=range(len(QUERIES)))
async def test_a_hostile_search_filter_is_a_400_naming_q(seeded: Seeded, q: str) -> None:
    client, seed = seeded
    await seed.conversation("hello", "hello there")
    assert_problem(await client.get(SEARCH, params={"q": q}), 400, "q")


@pytest.mark.parametrize("q", ODD_QUERIES, ids=range(len(ODD_QUERIES)))
async def test_an_odd_but_valid_search_filter_is_answered(seeded: Seeded, q: str) -> None:
    client, seed = seeded
    await seed.conversation("hello", "hello there")
    response = await client.get(SEARCH, params={"q": q})
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []


@pytest.mark.parametrize("tag", TAG_IDS, ids=range(len(TAG_IDS)))
async def test_a_hostile_tag_id_is_a_400_or_not_found(seeded: Seeded, tag: str) -> None:
    client, _ = seeded
    response = await client.get("/api/conversations", params={"tag": tag})
    assert_problem(response, 400 if not tag or len(tag) > 255 else 404)
