"""Routers wired to the fake vendors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.llm.router import ModelRouter
from app.settings import Settings
from tests.fakes.llm import FakeLLM

FAST_DEADLINES = {
    "llm_connect_timeout": 1.0,
    "llm_first_token_timeout": 0.6,
    "llm_token_gap_timeout": 0.6,
    "llm_total_timeout": 5.0,
}


def provider_settings(base: Settings, **changes: Any) -> Settings:
    """Settings with no provider configured unless `changes` configures one."""
    cleared = {
        "groq_api_key": None,
        "gemini_api_key": None,
        "openai_compat_base_url": None,
        "dev_echo_delay_ms": 0,
        **FAST_DEADLINES,
    }
    return base.model_copy(update={**cleared, **changes})


@pytest.fixture
def both_settings(settings: Settings, groq_fake: FakeLLM, gemini_fake: FakeLLM) -> Settings:
    return provider_settings(
        settings,
        groq_api_key="gsk_test_key",
        groq_base_url=groq_fake.url,
        gemini_api_key="gemini-test-key",
        gemini_base_url=gemini_fake.url,
    )


@pytest.fixture
async def router(both_settings: Settings) -> AsyncIterator[ModelRouter]:
    """Groq first, Gemini as its fallback."""
    built = ModelRouter.from_settings(both_settings)
    yield built
    await built.aclose()
