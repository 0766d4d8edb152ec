"""Daily budgets per user (QUOTA_DAILY_MESSAGES, QUOTA_DAILY_TOKENS), counted from the stored
messages, and `GET /api/users/me/usage`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.chat.quotas import current_day
from app.db.engine import Database
from app.settings import Settings
from tests.auth.conftest import make_session, make_user
from tests.chat.conftest import chat_settings
from tests.conftest import http_client
from tests.fakes.llm import FakeLLM


async def test_a_user_over_the_message_budget_gets_429_on_every_process_and_others_do_not(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    """Two app instances (no memory shared but the database), as two processes would be."""
    configured = chat_settings(settings, groq_fake, quota_daily_messages=2)
    ada = await make_session(connection, await make_user(connection, "ada@example.com"))
    bob = await make_session(connection, await make_user(connection, "bob@example.com"))
    first = create_app(configured, database=Database.bound_to(connection))
    second = create_app(configured, database=Database.bound_to(connection))
    async with http_client(first) as one, http_client(second) as two:
        as_ada = {"authorization": f"Bearer {ada}"}
        as_bob = {"authorization": f"Bearer {bob}"}
        assert (await one.post("/api/chat", json={"message": "1"}, headers=as_ada)).is_success
        assert (await two.post("/api/chat", json={"message": "2"}, headers=as_ada)).is_success
        refused = await one.post("/api/chat", json={"message": "3"}, headers=as_ada)
        also = await two.post("/api/chat", json={"message": "3"}, headers=as_ada)
        bobs = await two.post("/api/chat", json={"message": "hi"}, headers=as_bob)
    assert refused.status_code == also.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert (body["title"], body["budget"], body["limit"], body["used"]) == (
        "Quota Exceeded", "messages", 2, 2
    )  # fmt: skip
    resets = datetime.fromisoformat(body["resetsAt"].replace("Z", "+00:00"))
    assert resets == datetime.combine(
        datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC
    )
    assert 0 < int(refused.headers["retry-after"]) <= 86_400
    assert bobs.status_code == 200
    assert len(groq_fake.received) == 3  # the refused ones never reached the model


async def test_the_token_budget_counts_prompt_and_completion_tokens(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    configured = chat_settings(settings, groq_fake, quota_daily_tokens=30)  # 18 an answer
    token = await make_session(connection, await make_user(connection, "t@example.com"))
    app = create_app(configured, database=Database.bound_to(connection))
    async with http_client(app) as client:
        client.headers["authorization"] = f"Bearer {token}"
        assert (await client.post("/api/chat", json={"message": "a"})).status_code == 200
        assert (await client.post("/api/chat", json={"message": "b"})).status_code == 200
        over = await client.post("/api/chat", json={"message": "c"})
        conversation_id = (await client.get("/api/conversations")).json()["conversations"][0]["id"]
        regenerate = await client.post(f"/api/conversations/{conversation_id}/regenerate")
        usage = (await client.get("/api/users/me/usage")).json()
    assert over.status_code == regenerate.status_code == 429
    assert over.json()["budget"] == "tokens" and over.json()["used"] == 36
    assert usage["tokens"] == {"used": 36, "limit": 30, "remaining": 0}
    assert usage["messages"] == {"used": 2, "limit": None, "remaining": None}


async def test_usage_counts_today_per_model_in_the_users_time_zone(
    api: httpx.AsyncClient,
) -> None:
    empty = (await api.get("/api/users/me/usage")).json()
    assert empty["messages"] == {"used": 0, "limit": None, "remaining": None}
    assert empty["models"] == [] and empty["timeZone"] == "UTC"
    await api.post("/api/chat", json={"message": "one"})
    await api.post("/api/chat", json={"message": "two"})
    bad = await api.patch("/api/users/me/preferences", json={"timeZone": "Mars/Olympus"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "timeZone"
    changed = await api.patch("/api/users/me/preferences", json={"timeZone": "Pacific/Kiritimati"})
    assert changed.json()["timeZone"] == "Pacific/Kiritimati"
    usage = (await api.get("/api/users/me/usage")).json()
    assert usage["timeZone"] == "Pacific/Kiritimati"
    assert usage["models"] == [
        {"model": "groq/llama-3.3-70b-versatile", "messages": 2, "tokens": 36}
    ]
    local_today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    assert usage["day"] == local_today.isoformat()
    resets = datetime.fromisoformat(usage["resetsAt"].replace("Z", "+00:00"))
    assert resets == datetime.combine(
        local_today + timedelta(days=1), datetime.min.time(), ZoneInfo("Pacific/Kiritimati")
    )


def test_the_users_day_follows_daylight_saving_time() -> None:
    # 2026-03-29 in Berlin has 23 hours: it starts at 23:00 UTC and ends at 22:00 UTC.
    day = current_day("Europe/Berlin", datetime(2026, 3, 29, 12, 0, tzinfo=UTC))
    assert (day.start, day.end) == (datetime(2026, 3, 28, 23, 0), datetime(2026, 3, 29, 22, 0))
    assert current_day("Not/AZone", datetime(2026, 3, 29, 12, 0, tzinfo=UTC)).zone == "UTC"
