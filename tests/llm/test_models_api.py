"""GET /api/models and the providers in /api/health, through HTTP."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.llm.router import ModelRouter
from app.llm.types import ChatMessage, ProviderFailure
from app.settings import Settings
from tests.conftest import http_client
from tests.fakes.llm import FakeLLM, Scenario
from tests.llm.conftest import provider_settings


async def test_without_any_key_only_dev_echo_is_listed(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/models")).json()
    assert [m["id"] for m in body["models"]] == ["dev-echo"]
    assert body["models"][0]["development"] is True
    assert body["default"] == "dev-echo"
    health = (await client.get("/api/health")).json()
    assert health["checks"]["providers"]["dev"]["development"] is True


async def test_with_only_a_groq_key_groq_models_are_listed(
    settings: Settings, connection: AsyncConnection
) -> None:
    configured = provider_settings(settings, groq_api_key="gsk_x")
    app = create_app(configured, database=Database.bound_to(connection))
    async with http_client(app) as client:
        body = (await client.get("/api/models")).json()
    ids = [m["id"] for m in body["models"]]
    assert "groq/llama-3.3-70b-versatile" in ids
    assert "dev-echo" not in ids
    assert all(i.startswith("groq/") for i in ids)
    assert body["default"] == "groq/llama-3.3-70b-versatile"
    assert body["aliases"]["groq"] == "groq/llama-3.3-70b-versatile"
    assert "gemini" not in body["aliases"]
    llama = next(m for m in body["models"] if m["id"] == "groq/llama-3.3-70b-versatile")
    assert llama["contextWindow"] == 131072
    assert llama["reasoning"] is False
    gpt_oss = next(m for m in body["models"] if m["id"] == "groq/openai/gpt-oss-120b")
    assert gpt_oss["reasoning"] is True


async def test_health_is_degraded_when_every_provider_fails(
    settings: Settings, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    configured = provider_settings(
        settings, groq_api_key="gsk_x", groq_base_url=groq_fake.url, llm_fallback="none"
    )
    router = ModelRouter.from_settings(configured)
    app = create_app(configured, database=Database.bound_to(connection), model_router=router)
    async with http_client(app) as client:
        assert (await client.get("/api/health")).json()["status"] == "healthy"
        groq_fake.next(Scenario(status=503))
        try:
            async for _ in router.stream(router.resolve("groq"), [ChatMessage("user", "hi")]):
                pass
        except ProviderFailure:
            pass
        response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    groq = body["checks"]["providers"]["groq"]
    assert (groq["ok"], groq["consecutiveFailures"], groq["lastError"]) == (False, 1, "unavailable")
    assert len(groq_fake.received) == 1  # the health checks themselves called nothing
