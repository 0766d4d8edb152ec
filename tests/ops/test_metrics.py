"""`GET /metrics`: Prometheus text, scraped over real HTTP from the app served by uvicorn."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from app.asgi import create_app
from app.db.engine import Database
from app.lib.metrics import record_generation
from app.settings import Settings
from tests.chat.conftest import chat_settings
from tests.fakes.llm import FakeLLM, Scenario
from tests.ops.conftest import sample, served, sign_in

REQUESTS = "chatwithme_http_requests_total"


async def scrape(client: httpx.AsyncClient, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["content-type"].count("charset") == 1
    return response.text


async def test_requests_are_counted_by_route_template_and_status(live_settings: Settings) -> None:
    async with (
        served(create_app(live_settings)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        token = await sign_in(client, "metrics-routes@example.com")
        labels = {"path": "/api/conversations/{conversation_id}", "status_code": "404"}
        before = sample(await scrape(client), REQUESTS, method="GET", **labels)
        for raw_id in ("c-one-id", "c-another-id"):
            missing = await client.get(
                f"/api/conversations/{raw_id}", headers={"authorization": f"Bearer {token}"}
            )
            assert missing.status_code == 404
        await client.get("/api/health")
        after = await scrape(client)

    assert sample(after, REQUESTS, method="GET", **labels) == before + 2
    assert "c-one-id" not in after  # the raw path never becomes a label
    assert sample(after, REQUESTS, method="GET", path="/api/health", status_code="200") >= 1
    latency = "chatwithme_http_request_duration_seconds_bucket"
    assert sample(after, latency, path="/api/health", le="+Inf") >= 1


async def test_a_chat_answer_is_counted_with_its_time_to_first_token(
    live_settings: Settings, groq_fake: FakeLLM
) -> None:
    settings = chat_settings(live_settings, groq_fake)
    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        token = await sign_in(client, "metrics-chat@example.com")
        before = await scrape(client)
        answer = await client.post(
            "/api/chat",
            json={"message": "Hi", "stream": False},
            headers={"authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        model = answer.json()["aiMessage"]["model"]
        after = await scrape(client)

    generations = "chatwithme_chat_generations_total"
    labels = {"model": model, "provider": "groq", "status": "complete"}
    assert sample(after, generations, **labels) == sample(before, generations, **labels) + 1
    ttft = "chatwithme_chat_time_to_first_token_seconds_count"
    assert sample(after, ttft, model=model) == sample(before, ttft, model=model) + 1


async def test_provider_failures_are_counted_by_provider_and_kind(
    live_settings: Settings, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(status=429, retry_after="7"))
    settings = chat_settings(live_settings, groq_fake, llm_fallback="none")
    failures = "chatwithme_provider_failures_total"
    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        token = await sign_in(client, "metrics-failure@example.com")
        before = sample(await scrape(client), failures, provider="groq", kind="rate_limited")
        await client.post(
            "/api/chat",
            json={"message": "Hi", "stream": False},
            headers={"authorization": f"Bearer {token}"},
        )
        after = sample(await scrape(client), failures, provider="groq", kind="rate_limited")
    assert after == before + 1


async def test_recorded_generations_are_exposed_by_model_provider_and_status(
    live_settings: Settings,
) -> None:
    record_generation(model="test/model-x", provider=None, status="cancelled", ttft_ms=None)
    record_generation(model="test/model-x", provider="local", status="incomplete", ttft_ms=250)
    async with (
        served(create_app(live_settings)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        text = await scrape(client)
    generations = "chatwithme_chat_generations_total"
    assert sample(text, generations, model="test/model-x", provider="none", status="cancelled")
    assert sample(text, generations, model="test/model-x", status="incomplete") >= 1
    ttft = "chatwithme_chat_time_to_first_token_seconds_bucket"
    assert sample(text, ttft, model="test/model-x", provider="local", le="0.25") >= 1


async def test_pool_gauges_show_connections_in_use_and_requests_waiting(
    live_settings: Settings, own_database_url: str
) -> None:
    settings = live_settings.model_copy(update={"db_pool_size": 1, "db_pool_timeout": 30})
    database = Database.from_url(own_database_url, settings)
    async with (
        served(create_app(settings, database=database)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        token = await sign_in(client, "metrics-pool@example.com")
        async with database.engine.connect():  # the pool's only connection, held here
            held = await scrape(client)
            assert sample(held, "chatwithme_db_pool_in_use") >= 1
            waiting = asyncio.create_task(
                client.get("/api/users/me", headers={"authorization": f"Bearer {token}"})
            )
            for _ in range(500):  # until the request queues for the connection
                if sample(await scrape(client), "chatwithme_db_pool_waiting") >= 1:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("no request was seen waiting for a connection")
        assert (await waiting).status_code == 200  # served once the connection came back
        assert sample(await scrape(client), "chatwithme_db_pool_waiting") == 0
    await database.engine.dispose()


async def test_a_metrics_token_is_required_when_set(live_settings: Settings) -> None:
    settings = live_settings.model_copy(update={"metrics_token": "scrape-secret-123"})
    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"authorization": "Bearer nope"})
        right = await client.get("/metrics", headers={"authorization": "Bearer scrape-secret-123"})
    for refused in (anonymous, wrong):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert right.status_code == 200
    assert "chatwithme_db_pool_in_use" in right.text


async def test_metrics_are_off_in_production_unless_enabled(live_settings: Settings) -> None:
    production = live_settings.model_copy(update={"app_env": "production", "metrics_enabled": None})
    enabled = production.model_copy(update={"metrics_enabled": True})
    async with (
        served(create_app(production)) as off_url,
        served(create_app(enabled)) as on_url,
        httpx.AsyncClient() as client,
    ):
        assert (await client.get(f"{off_url}/metrics")).status_code == 404
        assert (await client.get(f"{on_url}/metrics")).status_code == 200


async def test_metrics_answer_while_the_database_is_unreachable(live_settings: Settings) -> None:
    # Nothing listens on port 1: every query fails to connect, as during an outage.
    down = live_settings.model_copy(
        update={
            "database_url": "postgresql://postgres@127.0.0.1:1/gone",
            "metrics_token": "scrape-secret-123",
            "db_connect_timeout": 2,
        }
    )
    async with (
        served(create_app(down)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        metrics = await client.get(
            "/metrics", headers={"authorization": "Bearer scrape-secret-123"}
        )
        signed_in = await client.get("/api/users/me", headers={"authorization": "Bearer x"})
    assert metrics.status_code == 200  # the scrape never looks a session up
    assert signed_in.status_code == 503


async def test_read_pool_gauges_show_its_size_and_connections_in_use(
    live_settings: Settings, own_database_url: str
) -> None:
    """The conversation list reads on the read pool: its connection shows as in use while a
    lock keeps the list waiting, and as free again once the list is answered."""
    settings = live_settings.model_copy(update={"db_read_pool_size": 3})
    database = Database.from_url(own_database_url, settings)
    async with (
        served(create_app(settings, database=database)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        token = await sign_in(client, "metrics-reads@example.com")
        bearer = {"authorization": f"Bearer {token}"}
        assert (await client.get("/api/conversations", headers=bearer)).status_code == 200
        assert sample(await scrape(client), "chatwithme_db_read_pool_size") >= 3
        async with database.engine.connect() as locker, locker.begin():
            await locker.execute(text("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE"))
            listing = asyncio.create_task(client.get("/api/conversations", headers=bearer))
            for _ in range(500):  # until the list holds a read connection, waiting on the lock
                if sample(await scrape(client), "chatwithme_db_read_pool_in_use") >= 1:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the list was never seen on the read pool")
        assert (await listing).status_code == 200
        assert sample(await scrape(client), "chatwithme_db_read_pool_in_use") == 0
    await database.engine.dispose()
