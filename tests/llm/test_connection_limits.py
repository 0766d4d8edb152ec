"""Provider connections come from LLM_MAX_CONNECTIONS (issue 22): more streams than the groq
SDK's own limit of 100 reach the vendor at once, and past the setting they wait in the gate."""

from __future__ import annotations

import asyncio

from app.llm.router import ModelRouter
from app.llm.types import ChatMessage
from app.settings import Settings
from tests.fakes.llm import FakeLLM, Scenario
from tests.llm.conftest import provider_settings

PROMPT = [ChatMessage("user", "Hold on.")]


async def _open_streams(settings: Settings, groq_fake: FakeLLM, streams: int) -> int:
    """How many of `streams` concurrent answers the fake vendor holds at once while each
    stalls before its first byte."""
    groq_fake.default = Scenario(first_byte_delay=15, chunks=["late"])
    router = ModelRouter.from_settings(settings)
    model = router.resolve("groq")
    generations = [router.stream(model, PROMPT) for _ in range(streams)]
    tasks = [asyncio.create_task(anext(aiter(g))) for g in generations]
    try:
        for _ in range(400):  # until every stream has arrived, or it is clear they will not
            if len(groq_fake.received) >= streams:
                break
            await asyncio.sleep(0.025)
        await asyncio.sleep(0.3)  # none beyond the limit arrives late
        return len(groq_fake.received)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for generation in generations:
            await generation.aclose()
        await router.aclose()


async def test_more_streams_than_the_sdk_default_reach_the_vendor_at_once(
    settings: Settings, groq_fake: FakeLLM
) -> None:
    configured = provider_settings(
        settings,
        groq_api_key="gsk_test_key",
        groq_base_url=groq_fake.url,
        llm_fallback="none",
        llm_first_token_timeout=30,
        llm_total_timeout=60,
        llm_max_connections=150,
    )
    assert await _open_streams(configured, groq_fake, 120) == 120


async def test_streams_past_the_limit_wait_for_a_connection(
    settings: Settings, groq_fake: FakeLLM
) -> None:
    configured = provider_settings(
        settings,
        groq_api_key="gsk_test_key",
        groq_base_url=groq_fake.url,
        llm_fallback="none",
        llm_first_token_timeout=30,
        llm_total_timeout=60,
        llm_max_connections=3,
    )
    assert await _open_streams(configured, groq_fake, 5) == 3
