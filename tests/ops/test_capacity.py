"""Issue 22 through real HTTP (uvicorn on loopback): a full process says so early with 503 and
`Retry-After`, before storing anything; starts wait in a bounded queue; waits for a provider
connection and for a turn to start show in /metrics."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from app.asgi import create_app
from app.db.url import to_libpq
from app.settings import Settings
from tests.chat.conftest import chat_settings, sse_events
from tests.fakes.llm import FakeLLM, Scenario
from tests.ops.conftest import sample, served, sign_in
from tests.ops.test_metrics import scrape

SLOW = Scenario(chunks=["one ", "two ", "three ", "four ", "five"], gap=0.25)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _stream_to_end(client: httpx.AsyncClient, token: str, message: str) -> list[str]:
    async with client.stream(
        "POST", "/api/chat", json={"message": message, "stream": True}, headers=_bearer(token)
    ) as response:
        assert response.status_code == 200
        body = "".join([part async for part in response.aiter_text()])
    return [name for name, _ in sse_events(body)]


async def test_a_full_process_answers_503_with_retry_after_before_storing_anything(
    live_settings: Settings, groq_fake: FakeLLM
) -> None:
    groq_fake.default = SLOW
    settings = chat_settings(live_settings, groq_fake, chat_max_answers=1)
    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        ada = await sign_in(client, "capacity-full-ada@example.com")
        bob = await sign_in(client, "capacity-full-bob@example.com")
        refused_before = sample(await scrape(client), "chatwithme_gate_refused_total",
                                gate="chat_answers")  # fmt: skip
        async with client.stream(
            "POST", "/api/chat", json={"message": "first", "stream": True}, headers=_bearer(ada)
        ) as running:
            assert running.status_code == 200
            lines = running.aiter_lines()
            assert await anext(lines) == "event: start"  # the answer is running now

            full = await client.post(
                "/api/chat", json={"message": "second", "stream": True}, headers=_bearer(bob)
            )
            assert full.status_code == 503
            assert int(full.headers["retry-after"]) >= 1
            assert full.headers["content-type"].startswith("application/problem+json")
            assert "as many chats as it can" in full.json()["detail"]
            listed = await client.get("/api/conversations", headers=_bearer(bob))
            assert listed.json()["conversations"] == []  # nothing was stored for the refused one

            rest = [line async for line in lines]
        assert "event: done" in rest
        after = await scrape(client)
        assert sample(after, "chatwithme_gate_refused_total", gate="chat_answers") == (
            refused_before + 1
        )
        # The answer ended: the process takes new ones again.
        assert (await _stream_to_end(client, bob, "third"))[-1] == "done"


async def test_starts_wait_in_a_bounded_queue_and_are_refused_when_it_is_full(
    live_settings: Settings, groq_fake: FakeLLM
) -> None:
    settings = chat_settings(live_settings, groq_fake, chat_start_concurrency=1, chat_start_queue=0)
    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        ada = await sign_in(client, "capacity-queue-ada@example.com")
        bob = await sign_in(client, "capacity-queue-bob@example.com")
        created = await client.post("/api/conversations", json={}, headers=_bearer(ada))
        conversation_id = created.json()["id"]
        # Another transaction holds the conversation's row: Ada's start blocks in its turn.
        blocker = await asyncpg.connect(to_libpq(live_settings.database_url or ""))
        try:
            locked = blocker.transaction()
            await locked.start()
            await blocker.execute(
                "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conversation_id
            )
            first = asyncio.create_task(
                client.post(
                    "/api/chat",
                    json={"message": "blocked", "conversationId": conversation_id},
                    headers=_bearer(ada),
                )
            )
            for _ in range(500):
                if sample(await scrape(client), "chatwithme_gate_in_use", gate="chat_start"):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the first start never took its turn")

            refused = await client.post(
                "/api/chat", json={"message": "no room"}, headers=_bearer(bob)
            )
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert (await client.get("/api/conversations", headers=_bearer(bob))).json()[
                "conversations"
            ] == []
            await locked.rollback()
        finally:
            await blocker.close()
        answered = await first
        assert answered.status_code == 200, answered.text
        assert answered.json()["aiMessage"]["status"] == "complete"
        metrics = await scrape(client)
        assert sample(metrics, "chatwithme_gate_refused_total", gate="chat_start") >= 1
        assert sample(metrics, "chatwithme_gate_in_use", gate="chat_start") == 0


async def test_a_wait_for_a_provider_connection_shows_in_metrics(
    live_settings: Settings, groq_fake: FakeLLM
) -> None:
    groq_fake.default = SLOW
    settings = chat_settings(
        live_settings, groq_fake, llm_max_connections=1, llm_first_token_timeout=20
    )
    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        ada = await sign_in(client, "capacity-provider-ada@example.com")
        bob = await sign_in(client, "capacity-provider-bob@example.com")
        before = await scrape(client)
        waits = "chatwithme_gate_wait_seconds_count"
        assert sample(before, "chatwithme_gate_limit", gate="provider:groq") >= 1
        chats = [
            asyncio.create_task(_stream_to_end(client, token, f"hello {n}"))
            for n, token in enumerate((ada, bob))
        ]
        for _ in range(500):
            if sample(await scrape(client), "chatwithme_gate_waiting", gate="provider:groq"):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("no stream was seen waiting for a provider connection")
        for events in await asyncio.gather(*chats):
            assert events[-1] == "done"  # the one that waited was answered too
        after = await scrape(client)
    assert (
        sample(after, waits, gate="provider:groq")
        == sample(before, waits, gate="provider:groq") + 1
    )
    assert sample(after, "chatwithme_gate_waiting", gate="provider:groq") == 0
    assert len(groq_fake.received) == 2


async def test_a_chat_refused_after_taking_its_turn_gives_the_turn_back(
    live_settings: Settings, groq_fake: FakeLLM
) -> None:
    settings = chat_settings(live_settings, groq_fake, chat_start_concurrency=1, chat_start_queue=0)
    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        ada = await sign_in(client, "capacity-turns-ada@example.com")
        bad_body = await client.post("/api/chat", json={"message": 7}, headers=_bearer(ada))
        assert bad_body.status_code == 400
        no_session = await client.post(
            "/api/chat", json={"message": "hi"}, headers=_bearer("not-a-session")
        )
        assert no_session.status_code == 401
        empty = await client.post("/api/chat", json={"message": "  "}, headers=_bearer(ada))
        assert empty.status_code == 400
        # The one turn is free again: a chat is answered, not refused.
        answered = await client.post("/api/chat", json={"message": "hi"}, headers=_bearer(ada))
        assert answered.status_code == 200, answered.text
        assert sample(await scrape(client), "chatwithme_gate_in_use", gate="chat_start") == 0
