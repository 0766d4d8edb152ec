"""Titles made by the title model (issue 23, item 1) through HTTP: beside the first answer,
never in its way, in both stream formats when ready in time, counted in usage, never over a
title the user set; a failing title model leaves the first words and is counted in /metrics;
`POST /api/conversations/{id}/title` makes one again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.chat.titles import INSTRUCTIONS, clean_title, echo_title
from app.db.engine import Database
from app.lib.errors import ConfigurationError
from app.settings import Settings
from tests.auth.conftest import make_session, make_user
from tests.chat.conftest import chat_settings, read_ui_stream, sse_events, ui_body
from tests.conftest import http_client
from tests.fakes.llm import FakeLLM, Scenario
from tests.ops.conftest import sample

TITLE_MODEL = "llama-3.1-8b-instant"  # Groq's cheapest: the default title model with Groq
QUESTION = "Explain PostgreSQL keyset pagination to a new engineer please, briefly"
FIRST_WORDS = "Explain PostgreSQL keyset pagination to a new engineer"
TITLES = "chatwithme_conversation_titles_total"


@asynccontextmanager
async def _signed_in(
    connection: AsyncConnection, app_settings: Settings, token: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with these settings, signed in as Ada (made on first use; `token`: again)."""
    if token is None:
        token = await make_session(connection, await make_user(connection, "ada@example.com"))
    async with http_client(create_app(app_settings, database=Database.bound_to(connection))) as c:
        c.headers["authorization"] = f"Bearer {token}"
        yield c


@pytest.fixture
async def api(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> AsyncIterator[httpx.AsyncClient]:
    """Groq only, the title model left to its default (the cheapest available)."""
    async with _signed_in(connection, chat_settings(settings, groq_fake, title_model=None)) as c:
        yield c


async def _title_row(connection: AsyncConnection, conversation_id: str) -> Any:
    return (
        await connection.execute(
            text('SELECT title, "titleSource" FROM conversations WHERE id = :i'),
            {"i": conversation_id},
        )
    ).one()


async def _until_title_settles(connection: AsyncConnection, conversation_id: str) -> Any:
    """The conversation once its title task has stored its outcome (a title_usages row)."""
    for _ in range(200):
        used = await connection.scalar(
            text('SELECT count(*) FROM title_usages WHERE "conversationId" = :i'),
            {"i": conversation_id},
        )
        if used:
            return await _title_row(connection, conversation_id)
        await asyncio.sleep(0.025)
    raise AssertionError("the title task stored nothing")


def _title_requests(fake: FakeLLM) -> list[dict[str, Any]]:
    return [r.body for r in fake.received if r.body.get("model") == TITLE_MODEL]


async def test_the_first_answer_gets_a_title_from_the_cheapest_model_counted_in_usage(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    groq_fake.by_model[TITLE_MODEL] = Scenario(
        chunks=['"Keyset ', "pagination ", 'explained."'], usage=(30, 5)
    )
    answer = await api.post("/api/chat", json={"message": QUESTION})
    assert answer.status_code == 200
    assert answer.json()["aiMessage"]["content"] == "Hello, world!"
    conversation_id = answer.json()["conversationId"]
    row = await _until_title_settles(connection, conversation_id)
    assert (row.title, row.titleSource) == ("Keyset pagination explained", "model")

    [asked] = _title_requests(groq_fake)
    assert asked["messages"] == [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": QUESTION},
    ]
    assert asked["max_completion_tokens"] == 48
    usage = (await api.get("/api/users/me/usage")).json()
    by_model = {m["model"]: m for m in usage["models"]}
    assert by_model[f"groq/{TITLE_MODEL}"] == {
        "model": f"groq/{TITLE_MODEL}", "messages": 0, "tokens": 35,
    }  # fmt: skip
    assert usage["tokens"]["used"] == 35 + 18 and usage["messages"]["used"] == 1
    listed = (await api.get("/api/conversations")).json()["conversations"]
    assert listed[0]["title"] == "Keyset pagination explained"

    # Only the first answer makes a title.
    await api.post("/api/chat", json={"conversationId": conversation_id, "message": "More?"})
    assert len(_title_requests(groq_fake)) == 1


async def test_a_title_ready_before_the_answer_ends_is_a_title_event(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    groq_fake.by_model[TITLE_MODEL] = Scenario(chunks=["Keyset pagination"])
    groq_fake.next(Scenario(chunks=[f"w{i} " for i in range(30)], gap=0.05))
    response = await api.post("/api/chat", json={"message": QUESTION, "stream": True})
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[-1] == "done"
    assert ("title", {"title": "Keyset pagination"}) in events
    assert names.index("title") < names.index("done")


async def test_the_ai_sdk_stream_carries_the_title_as_a_data_chat_title_part(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    groq_fake.by_model[TITLE_MODEL] = Scenario(chunks=["Keyset pagination"])
    groq_fake.next(Scenario(chunks=[f"w{i} " for i in range(30)], gap=0.05))
    async with api.stream("POST", "/api/chat", json=ui_body("titledChat01", QUESTION)) as response:
        chunks = await read_ui_stream(response)
    titled = [c for c in chunks if c["type"] == "data-chat-title"]
    assert titled == [{"type": "data-chat-title", "data": "Keyset pagination", "transient": True}]
    types = [c["type"] for c in chunks]
    assert types.index("data-chat-title") < types.index("finish")


async def test_a_title_the_user_set_is_never_replaced(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    created = (await api.post("/api/conversations", json={"title": "My own"})).json()
    await api.post("/api/chat", json={"conversationId": created["id"], "message": QUESTION})
    assert _title_requests(groq_fake) == []  # not even asked
    assert tuple(await _title_row(connection, created["id"])) == ("My own", "user")

    # Renamed while the title model is still thinking: the user's title stays.
    groq_fake.by_model[TITLE_MODEL] = Scenario(chunks=["Model title"], first_byte_delay=0.5)
    answer = (await api.post("/api/chat", json={"message": QUESTION})).json()
    conversation_id = answer["conversationId"]
    renamed = await api.patch(f"/api/conversations/{conversation_id}", json={"title": "Mine"})
    assert renamed.json()["titleSource"] == "user"
    row = await _until_title_settles(connection, conversation_id)
    assert (row.title, row.titleSource) == ("Mine", "user")


async def test_a_failing_title_model_keeps_the_first_words_and_is_counted_in_metrics(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    labels = {"model": f"groq/{TITLE_MODEL}", "outcome": "failed"}
    before = sample((await api.get("/metrics")).text, TITLES, **labels)
    groq_fake.by_model[TITLE_MODEL] = Scenario(status=500)
    answer = await api.post("/api/chat", json={"message": QUESTION})
    assert answer.json()["aiMessage"]["status"] == "complete"
    conversation_id = answer.json()["conversationId"]
    row = await _until_title_settles(connection, conversation_id)
    assert (row.title, row.titleSource) == (FIRST_WORDS, None)
    failed = (
        await connection.execute(
            text('SELECT status, "errorCode" FROM title_usages WHERE "conversationId" = :i'),
            {"i": conversation_id},
        )
    ).one()
    assert tuple(failed) == ("error", "unavailable")
    after = sample((await api.get("/metrics")).text, TITLES, **labels)
    assert after == before + 1


async def test_a_title_can_be_made_again_on_request_even_over_the_users(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    created = (await api.post("/api/conversations", json={"title": "Mine"})).json()
    await api.post("/api/chat", json={"conversationId": created["id"], "message": QUESTION})
    groq_fake.by_model[TITLE_MODEL] = Scenario(chunks=["Title: Keyset paging"])
    made = await api.post(f"/api/conversations/{created['id']}/title")
    assert made.status_code == 200, made.text
    assert made.json() == {
        "id": created["id"], "title": "Keyset paging", "titleSource": "model",
        "model": f"groq/{TITLE_MODEL}",
    }  # fmt: skip
    assert tuple(await _title_row(connection, created["id"])) == ("Keyset paging", "model")

    groq_fake.by_model[TITLE_MODEL] = Scenario(status=503)
    failed = await api.post(f"/api/conversations/{created['id']}/title")
    assert failed.status_code == 502
    assert "vendor" not in failed.text
    assert tuple(await _title_row(connection, created["id"])) == ("Keyset paging", "model")


async def test_making_a_title_again_needs_a_question_and_your_own_conversation(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    empty = (await api.post("/api/conversations", json={})).json()
    assert (await api.post(f"/api/conversations/{empty['id']}/title")).status_code == 400
    assert (await api.post("/api/conversations/nobodys/title")).status_code == 404


async def test_dev_echo_makes_a_title_from_the_question(
    settings: Settings, connection: AsyncConnection
) -> None:
    async with _signed_in(connection, settings.model_copy(update={"title_model": None})) as c:
        answer = (await c.post("/api/chat", json={"message": "how do tides work?"})).json()
        row = await _until_title_settles(connection, answer["conversationId"])
    assert (row.title, row.titleSource) == ("How do tides work", "model")


def test_the_default_title_model_is_the_cheapest_available_and_an_unknown_one_is_refused(
    settings: Settings, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    both = chat_settings(settings, groq_fake, gemini_fake, title_model=None)
    flow = create_app(both).state.answers  # the app builds its flow with its router
    assert flow.router.catalogue.cheapest().id == f"groq/{TITLE_MODEL}"
    gemini_only = both.model_copy(update={"groq_api_key": None})
    assert (
        create_app(gemini_only).state.answers.router.catalogue.cheapest().id
        == "gemini/gemini-2.5-flash-lite"
    )
    with pytest.raises(ConfigurationError):
        create_app(both.model_copy(update={"title_model": "nope/none-such"}))


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ('"Keyset pagination explained."', "Keyset pagination explained"),
        ("Title: **Tides**\nsecond line", "Tides"),
        ("  «Les marées»  ", "Les marées"),
        ("word " * 30, "word word word word word word word word word word word word"),
        ("   \n  ", ""),
    ],
)
def test_a_models_answer_becomes_a_clean_title_of_at_most_60_characters(
    raw: str, title: str
) -> None:
    assert clean_title(raw) == title
    assert len(clean_title(raw)) <= 60
    assert echo_title("  what's the time?  ") == "What's the time"


async def test_only_the_first_question_is_titled_even_without_a_history_window(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    app_settings = chat_settings(settings, groq_fake, title_model=None, chat_history_messages=0)
    groq_fake.by_model[TITLE_MODEL] = Scenario(chunks=["Keyset pagination"])
    async with _signed_in(connection, app_settings) as c:
        first = (await c.post("/api/chat", json={"message": QUESTION})).json()
        conversation_id = first["conversationId"]
        await _until_title_settles(connection, conversation_id)
        await c.post("/api/chat", json={"conversationId": conversation_id, "message": "More"})
    assert len(_title_requests(groq_fake)) == 1


async def test_asking_for_titles_is_rate_limited_and_held_to_the_daily_quota(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    limited = chat_settings(settings, groq_fake, title_model=None, chat_rate_limit=2)
    async with _signed_in(connection, limited) as c:
        created = (await c.post("/api/conversations", json={"title": "Mine"})).json()
        await c.post("/api/chat", json={"conversationId": created["id"], "message": QUESTION})
        codes = [(await c.post(f"/api/conversations/{created['id']}/title")).status_code]
        codes.append((await c.post(f"/api/conversations/{created['id']}/title")).status_code)
        limited_token = c.headers["authorization"].removeprefix("Bearer ")
    assert codes == [200, 429]
    budget = chat_settings(settings, groq_fake, title_model=None, quota_daily_tokens=10)
    async with _signed_in(connection, budget, limited_token) as c:
        over = await c.post(f"/api/conversations/{created['id']}/title")
    assert over.status_code == 429 and over.json()["budget"] == "tokens"
