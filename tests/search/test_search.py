"""GET /api/conversations/search and GET /api/users/me/stats, on real rows, through HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.lib.time import utc_now
from app.search.services import split_terms
from prisma_compat import cuid
from tests.auth.conftest import make_session, make_user


class Seeder:
    def __init__(self, connection: AsyncConnection, user_id: str) -> None:
        self.connection = connection
        self.user_id = user_id

    async def conversation(self, title: str, *messages: str | tuple[str, str], age_days: float = 0,
                           **columns: Any) -> str:  # fmt: skip
        at = utc_now() - timedelta(days=age_days)
        conversation_id = cuid()
        await self.connection.execute(
            text('INSERT INTO conversations (id, title, "userId", "createdAt", "updatedAt") '
                 "VALUES (:i, :t, :u, :at, :at)"),
            {"i": conversation_id, "t": title, "u": self.user_id, "at": at},
        )  # fmt: skip
        for index, message in enumerate(messages):
            role, content = message if isinstance(message, tuple) else ("user", message)
            await self.message(
                conversation_id, role, content, at + timedelta(seconds=index), **columns
            )
        return conversation_id

    async def message(
        self, conversation_id: str, role: str, content: str, at: datetime, **columns: Any
    ) -> str:
        message_id = cuid()
        values = {"id": message_id, "content": content, "role": role, "conversationId": conversation_id,
                  "userId": self.user_id, "createdAt": at, **columns}  # fmt: skip
        names = ", ".join(f'"{k}"' for k in values)
        await self.connection.execute(
            text(f"INSERT INTO messages ({names}) VALUES ({', '.join(':' + k for k in values)})"),
            values,
        )
        return message_id


@pytest.fixture
async def seeded(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> tuple[httpx.AsyncClient, Seeder]:
    user_id = await make_user(connection, "searcher@example.com")
    client.headers["authorization"] = f"Bearer {await make_session(connection, user_id)}"
    return client, Seeder(connection, user_id)


async def _search(client: httpx.AsyncClient, q: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/conversations/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _titles(page: dict[str, Any]) -> list[str]:
    return [r["conversation"]["title"] for r in page["results"]]


async def test_better_matches_rank_first_and_recent_ones_break_ties(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    await seed.conversation("once", "we talked about kubernetes once", age_days=1)
    await seed.conversation("often", "kubernetes kubernetes kubernetes everywhere",
                            "more kubernetes questions", age_days=1)  # fmt: skip
    await seed.conversation("old twin", "deploying kubernetes clusters", age_days=200)
    await seed.conversation("new twin", "deploying kubernetes clusters", age_days=0)
    await seed.conversation("unrelated", "a recipe for bread")
    page = await _search(client, "kubernetes")
    titles = _titles(page)
    assert page["mode"] == "fulltext"
    assert titles[0] == "often"
    assert titles.index("new twin") < titles.index("old twin")
    assert "unrelated" not in titles
    scores = [r["score"] for r in page["results"]]
    assert scores == sorted(scores, reverse=True)


async def test_stemming_accents_phrases_exclusion_and_or(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    await seed.conversation("runner", "I run every morning before work")
    await seed.conversation("coffee", "The café on the corner opened today")
    await seed.conversation("fox", "the quick brown fox jumps")
    await seed.conversation("brown quick", "brown bread is quick to bake")
    await seed.conversation("hawaiian", "pizza with pineapple is controversial")
    await seed.conversation("margherita", "pizza with basil and tomato")
    assert _titles(await _search(client, "running")) == ["runner"]
    assert _titles(await _search(client, "cafe")) == ["coffee"]
    assert _titles(await _search(client, "CAFÉ")) == ["coffee"]
    assert _titles(await _search(client, '"quick brown"')) == ["fox"]
    assert _titles(await _search(client, "pizza -pineapple")) == ["margherita"]
    assert sorted(_titles(await _search(client, "basil OR pineapple"))) == [
        "hawaiian",
        "margherita",
    ]


async def test_partial_words_and_typos_fall_back_to_trigrams(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    await seed.conversation("db", "PostgreSQL handles JSON surprisingly well")
    await seed.conversation("mail", "Did you receive my message yesterday?")
    partial = await _search(client, "postgre")
    assert partial["mode"] == "fuzzy"
    assert _titles(partial) == ["db"]
    assert "<mark>PostgreSQL</mark>" in partial["results"][0]["matches"][0]["snippet"]
    typo = await _search(client, "recieve")
    assert _titles(typo) == ["mail"]


async def test_a_fuzzy_match_marks_the_word_closest_to_a_query_word(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    await seed.conversation("mail", "Did you receive my message yesterday?")
    page = await _search(client, "mesage yesterdy")
    assert page["mode"] == "fuzzy"
    snippet = page["results"][0]["matches"][0]["snippet"]
    assert snippet.count("<mark>") == 1
    assert "<mark>message</mark>" in snippet or "<mark>yesterday</mark>" in snippet


async def test_the_fuzzy_fallback_leaves_out_excluded_words(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    await seed.conversation("db", "PostgreSQL handles JSON surprisingly well")
    await seed.conversation("versus", "PostgreSQL or MySQL for a small shop")
    await seed.conversation("later", "PostgreSQL replication", "then MySQL came up")
    await seed.conversation("MySQL notes", "PostgreSQL did it better")
    page = await _search(client, "postgre -mysql")
    assert page["mode"] == "fuzzy"
    assert _titles(page) == ["db"]


async def test_fuzzy_results_come_in_pages_without_duplicates_or_gaps(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    for i in range(23):
        await seed.conversation(f"f{i:02}", f"PostgreSQL tuning note {i}", "and PostgreSQL again")
    seen: list[str] = []
    cursor = None
    while True:
        page = await _search(client, "postgre", limit=10, **({"cursor": cursor} if cursor else {}))
        assert page["mode"] == "fuzzy"
        assert all(len(r["matches"]) == 2 for r in page["results"])
        seen += [r["conversation"]["id"] for r in page["results"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 23


async def test_matches_carry_escaped_snippets_with_marks(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    await seed.conversation(
        "xss",
        ("assistant", "<script>alert(1)</script> costs & benefits: 5 > 3 when you vacuum often"),
    )
    [result] = (await _search(client, "vacuum"))["results"]
    [match] = result["matches"]
    assert match["role"] == "assistant"
    assert "5 &gt; 3" in match["snippet"]
    assert "<script" not in match["snippet"]
    assert "<mark>vacuum</mark>" in match["snippet"]
    assert set(match) == {"source", "messageId", "role", "createdAt", "snippet"}
    assert match["source"] == "message"


async def test_titles_match_too(seeded: tuple[httpx.AsyncClient, Seeder]) -> None:
    client, seed = seeded
    await seed.conversation("Holiday planning", "where should we go")
    assert _titles(await _search(client, "holidays")) == ["Holiday planning"]


async def test_a_conversation_found_by_its_title_shows_the_title_as_its_match(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    await seed.conversation("Holiday <planning>", "where should we go")
    await seed.conversation("Trips", "the holiday budget")
    page = await _search(client, "holiday")
    by_title = {r["conversation"]["title"]: r["matches"] for r in page["results"]}
    assert by_title["Holiday <planning>"] == [
        {"source": "title", "messageId": None, "role": None, "createdAt": None,
         "snippet": "<mark>Holiday</mark> &lt;planning&gt;"},
    ]  # fmt: skip
    [message_match] = by_title["Trips"]
    assert message_match["source"] == "message"
    assert "<mark>holiday</mark> budget" in message_match["snippet"]


async def test_an_excluded_word_leaves_out_conversations_mentioning_it_anywhere(
    seeded: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = seeded
    await seed.conversation("Sourdough starter help", "how often do I feed my starter?")
    await seed.conversation("Bread", "a starter for rye", "sourdough needs time")
    await seed.conversation("Car trouble", "the starter motor clicks")
    await seed.conversation("Sour dough?", "my starter smells of sour dough")
    for query in ("starter -sourdough", "starter - sourdoughs"):
        assert sorted(_titles(await _search(client, query))) == ["Car trouble", "Sour dough?"]
    assert _titles(await _search(client, 'starter -sourdough -"sour dough"')) == ["Car trouble"]


@pytest.mark.parametrize(
    ("query", "rest", "excluded"),
    [
        ("starter -sourdough", "starter", "sourdough"),
        ('pizza -"pineapple chunks" -ham', "pizza", '"pineapple chunks" OR ham'),
        ('-"unclosed phrase', "", '"unclosed phrase"'),
        ("foo-bar x (-y)", "foo-bar x ( )", "y"),
        ('"a -b" c', "a -b c", None),
        ("--twice", "twice", None),
    ],
)
def test_excluded_terms_are_read_as_websearch_reads_them(
    query: str, rest: str, excluded: str | None
) -> None:
    terms = split_terms(query)
    assert (terms.rest, terms.excluded) == (rest, excluded)


async def test_filters_by_role_model_and_dates(seeded: tuple[httpx.AsyncClient, Seeder]) -> None:
    client, seed = seeded
    await seed.conversation("asked", ("user", "what about sharding"), age_days=10)
    await seed.conversation(
        "answered", ("assistant", "sharding splits data"), age_days=1, model="groq/x"
    )
    assert _titles(await _search(client, "sharding", role="assistant")) == ["answered"]
    assert _titles(await _search(client, "sharding", model="groq/x")) == ["answered"]
    since = (utc_now() - timedelta(days=5)).isoformat() + "Z"
    assert _titles(await _search(client, "sharding", **{"from": since})) == ["answered"]
    assert _titles(await _search(client, "sharding", to=since)) == ["asked"]


async def test_other_users_rows_are_never_found(
    seeded: tuple[httpx.AsyncClient, Seeder], connection: AsyncConnection
) -> None:
    client, _ = seeded
    other = Seeder(connection, await make_user(connection, "other@example.com"))
    await other.conversation("their secret", "the launch code is zebra")
    await other.conversation("zebra notes", "zebras everywhere")
    assert (await _search(client, "zebra"))["results"] == []
    assert (await _search(client, "zebr"))["results"] == []  # nor by trigram


async def test_pages_have_no_duplicates_or_gaps(seeded: tuple[httpx.AsyncClient, Seeder]) -> None:
    client, seed = seeded
    for i in range(23):
        # Some conversations tie on score: the id keeps the order total.
        await seed.conversation(f"c{i:02}", "caching strategies " * (1 + i % 3), age_days=i % 2)
    seen: list[str] = []
    cursor = None
    while True:
        page = await _search(client, "caching", limit=10, **({"cursor": cursor} if cursor else {}))
        seen += [r["conversation"]["id"] for r in page["results"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 23


@pytest.mark.parametrize(
    "params",
    [{"q": ""}, {"q": "   "}, {}, {"q": "x" * 257}, {"q": "a", "role": "system"},
     {"q": "a", "from": "yesterday"}, {"q": "a", "cursor": "garbage!"},
     {"q": "a", "from": "2026-02-01", "to": "2026-01-01"}],
)  # fmt: skip
async def test_bad_queries_are_400(
    seeded: tuple[httpx.AsyncClient, Seeder], params: dict[str, str]
) -> None:
    client, _ = seeded
    response = await client.get("/api/conversations/search", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_stats_are_exact_for_seeded_rows(seeded: tuple[httpx.AsyncClient, Seeder]) -> None:
    client, seed = seeded
    now = utc_now().replace(hour=12)
    first = await seed.conversation("one", "hi")
    await seed.message(first, "assistant", "hello", now, model="groq/a", status="complete",
                       promptTokens=10, completionTokens=5, timeToFirstTokenMs=100)  # fmt: skip
    await seed.message(first, "assistant", "", now, model="groq/a", status="error",
                       promptTokens=10, completionTokens=0, timeToFirstTokenMs=None)  # fmt: skip
    second = await seed.conversation("two")
    await seed.message(second, "user", "yesterday", now - timedelta(days=1))
    await seed.message(second, "assistant", "ok", now - timedelta(days=1), model="gemini/b",
                       promptTokens=20, completionTokens=8, timeToFirstTokenMs=300)  # fmt: skip
    await seed.message(second, "user", "long ago", now - timedelta(days=40))

    stats = (await client.get("/api/users/me/stats", params={"days": 7})).json()
    assert stats["conversationCount"] == 2
    assert stats["messageCount"] == 6
    assert stats["messagesByRole"] == {"user": 3, "assistant": 3}
    assert stats["tokens"] == {"prompt": 40, "completion": 13}
    by_model = {m["model"]: m for m in stats["models"]}
    assert by_model["groq/a"] == {"model": "groq/a", "messages": 2, "promptTokens": 20,
                                  "completionTokens": 5, "avgTimeToFirstTokenMs": 100.0,
                                  "errorRate": 0.5}  # fmt: skip
    assert by_model["gemini/b"]["avgTimeToFirstTokenMs"] == 300.0
    assert stats["activeDays"] == 3
    assert stats["currentStreakDays"] == 2
    assert len(stats["daily"]) == 7
    assert stats["daily"][-1]["messages"] == 3 and stats["daily"][-1]["tokens"] == 25
    assert stats["daily"][-2]["messages"] == 2 and stats["daily"][-2]["tokens"] == 28
    assert sum(d["messages"] for d in stats["daily"]) == 5  # the 40-day-old one is outside
    assert stats["firstMessageAt"] < stats["lastMessageAt"]


async def test_stats_days_follow_the_time_zone(seeded: tuple[httpx.AsyncClient, Seeder]) -> None:
    client, seed = seeded
    today = utc_now().replace(hour=23, minute=30, second=0, microsecond=0) - timedelta(days=1)
    conversation = await seed.conversation("late")
    await seed.message(conversation, "user", "late night", today)  # 23:30 UTC
    utc = (await client.get("/api/users/me/stats", params={"days": 3})).json()["daily"]
    tokyo = (
        await client.get("/api/users/me/stats", params={"days": 3, "tz": "Asia/Tokyo"})
    ).json()["daily"]
    assert {d["date"] for d in utc if d["messages"]} == {today.date().isoformat()}
    assert {d["date"] for d in tokyo if d["messages"]} == {
        (today.date() + timedelta(days=1)).isoformat()
    }


@pytest.mark.parametrize(
    "params", [{"tz": "Mars/Olympus"}, {"days": 0}, {"days": 1000}, {"days": "x"}]
)
async def test_bad_stats_parameters_are_400(
    seeded: tuple[httpx.AsyncClient, Seeder], params: dict[str, Any]
) -> None:
    client, _ = seeded
    assert (await client.get("/api/users/me/stats", params=params)).status_code == 400


async def test_stats_see_only_the_callers_rows(
    seeded: tuple[httpx.AsyncClient, Seeder], connection: AsyncConnection
) -> None:
    client, _ = seeded
    other = Seeder(connection, await make_user(connection, "noisy@example.com"))
    await other.conversation("theirs", "a", "b", "c")
    stats = (await client.get("/api/users/me/stats")).json()
    assert (stats["conversationCount"], stats["messageCount"]) == (0, 0)
