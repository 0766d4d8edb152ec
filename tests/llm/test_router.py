"""Router failure handling: classification, fallback only before the first delta, deadlines,
cancellation, and provider health. Groq is asked first; Gemini is its fallback."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.llm.router import ModelRouter
from app.llm.types import ChatMessage, ProviderFailure
from app.settings import Settings
from tests.fakes.llm import FakeLLM, Scenario, closed_port
from tests.llm.conftest import FAST_DEADLINES

PROMPT = [ChatMessage("user", "Tell me something.")]
DEADLINE_MARGIN = 1.0  # seconds of scheduling slack on a busy two-core machine


async def _run(router: ModelRouter, model: str = "groq") -> tuple[list[str], object, float]:
    """(deltas received, result or the failure, seconds taken)."""
    generation = router.stream(router.resolve(model), PROMPT)
    deltas: list[str] = []
    started = time.monotonic()
    try:
        async for delta in generation:
            deltas.append(delta)
    except ProviderFailure as failure:
        return deltas, failure, time.monotonic() - started
    return deltas, generation.result, time.monotonic() - started


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, "rate_limited"), (500, "unavailable"), (503, "unavailable")],
)
async def test_retryable_failures_before_the_first_token_fall_back(
    router: ModelRouter, groq_fake: FakeLLM, gemini_fake: FakeLLM, status: int, kind: str
) -> None:
    groq_fake.next(Scenario(status=status, retry_after="7"))
    gemini_fake.next(Scenario(chunks=["From ", "Gemini"]))
    deltas, result, _ = await _run(router)
    assert "".join(deltas) == "From Gemini"
    assert result.provider == "gemini"  # type: ignore[attr-defined]
    [attempt] = result.attempts  # type: ignore[attr-defined]
    assert (attempt.provider, attempt.kind) == ("groq", kind)
    assert "secret" not in attempt.message  # no vendor body
    assert len(groq_fake.received) == 1  # the SDK's own retries are off


@pytest.mark.parametrize(("status", "kind"), [(401, "auth"), (403, "auth"), (400, "bad_request")])
async def test_auth_and_bad_request_failures_never_fall_back(
    router: ModelRouter, groq_fake: FakeLLM, gemini_fake: FakeLLM, status: int, kind: str
) -> None:
    groq_fake.next(Scenario(status=status))
    deltas, failure, _ = await _run(router)
    assert deltas == []
    assert isinstance(failure, ProviderFailure)
    assert failure.kind == kind
    assert "secret" not in failure.message and "gsk_" not in failure.message
    assert gemini_fake.received == []


async def test_rate_limit_carries_retry_after_when_nothing_is_left_to_try(
    both_settings: Settings, groq_fake: FakeLLM
) -> None:
    router = ModelRouter.from_settings(both_settings.model_copy(update={"llm_fallback": "none"}))
    groq_fake.next(Scenario(status=429, retry_after="7"))
    _, failure, _ = await _run(router)
    await router.aclose()
    assert isinstance(failure, ProviderFailure)
    assert (failure.kind, failure.retry_after) == ("rate_limited", 7.0)


async def test_connection_refused_falls_back(both_settings: Settings, gemini_fake: FakeLLM) -> None:
    refused = both_settings.model_copy(
        update={"groq_base_url": f"http://127.0.0.1:{closed_port()}"}
    )
    router = ModelRouter.from_settings(refused)
    deltas, result, _ = await _run(router)
    await router.aclose()
    assert "".join(deltas) == "Hello, world!"
    assert result.attempts[0].kind == "unavailable"  # type: ignore[attr-defined]


async def test_a_stall_before_the_first_byte_times_out_then_falls_back(
    router: ModelRouter, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(first_byte_delay=5))
    deltas, result, elapsed = await _run(router)
    assert "".join(deltas) == "Hello, world!"
    assert result.attempts[0].kind == "timeout"  # type: ignore[attr-defined]
    assert elapsed < FAST_DEADLINES["llm_first_token_timeout"] + DEADLINE_MARGIN


async def test_a_stall_mid_stream_keeps_the_partial_answer_and_does_not_fall_back(
    router: ModelRouter, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(stall_after=2, stall_seconds=5))
    deltas, failure, elapsed = await _run(router)
    assert deltas == ["Hello", ", "]
    assert isinstance(failure, ProviderFailure) and failure.kind == "timeout"
    assert gemini_fake.received == []
    assert elapsed < FAST_DEADLINES["llm_token_gap_timeout"] + DEADLINE_MARGIN


async def test_a_malformed_chunk_mid_stream_ends_the_answer(
    router: ModelRouter, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(malformed_after=1))
    deltas, failure, _ = await _run(router)
    assert deltas == ["Hello"]
    assert isinstance(failure, ProviderFailure) and failure.kind == "unavailable"
    assert gemini_fake.received == []


async def test_a_malformed_first_chunk_falls_back(
    router: ModelRouter, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(malformed_after=0))
    deltas, result, _ = await _run(router)
    assert "".join(deltas) == "Hello, world!"
    assert result.provider == "gemini"  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", ["groq", "gemini"])
async def test_a_disconnect_mid_stream_keeps_the_partial_answer(
    router: ModelRouter, groq_fake: FakeLLM, gemini_fake: FakeLLM, model: str
) -> None:
    fake = groq_fake if model == "groq" else gemini_fake
    fake.next(Scenario(disconnect_after=3))
    deltas, failure, _ = await _run(router, model)
    assert deltas == ["Hello", ", ", "world"]
    assert isinstance(failure, ProviderFailure) and failure.kind == "unavailable"


async def test_when_every_provider_fails_the_last_failure_is_raised(
    router: ModelRouter, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(status=503))
    gemini_fake.next(Scenario(status=500))
    deltas, failure, _ = await _run(router)
    assert deltas == []
    assert isinstance(failure, ProviderFailure) and failure.kind == "unavailable"
    assert router.all_failing
    assert router.health["groq"].consecutive_failures == 1
    assert router.health["gemini"].last_error == "unavailable"

    await _run(router)  # both answer again
    assert not router.all_failing
    assert router.health["groq"].consecutive_failures == 0


async def test_a_steady_stream_longer_than_the_token_gap_is_not_cut(
    router: ModelRouter, groq_fake: FakeLLM
) -> None:
    """Each gap is under the 0.6 s token-gap deadline and the whole stream is four times as
    long: the deadline moves on with every delta."""
    groq_fake.next(Scenario(chunks=["tick "] * 8, gap=0.4))
    deltas, result, elapsed = await _run(router)
    assert "".join(deltas) == "tick " * 8
    assert result.provider == "groq"  # type: ignore[attr-defined]
    assert elapsed > 4 * FAST_DEADLINES["llm_token_gap_timeout"]


async def test_the_whole_answer_has_a_deadline(both_settings: Settings, groq_fake: FakeLLM) -> None:
    # 2 s in all: under a loaded CI machine the first token alone once took over 1 s.
    slow = both_settings.model_copy(update={"llm_total_timeout": 2.0, "llm_fallback": "none"})
    router = ModelRouter.from_settings(slow)
    groq_fake.next(Scenario(chunks=["tick "] * 50, gap=0.1))  # 5 s of answer
    deltas, failure, elapsed = await _run(router)
    await router.aclose()
    assert isinstance(failure, ProviderFailure) and failure.kind == "timeout"
    assert 0 < len(deltas) < 50
    assert elapsed < 2.0 + DEADLINE_MARGIN


async def test_closing_the_stream_early_cancels_the_upstream_request(
    router: ModelRouter, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(chunks=["word "] * 40, gap=0.05))
    generation = router.stream(router.resolve("groq"), PROMPT)
    async for _ in generation:
        break
    await generation.aclose()
    for _ in range(40):  # the fake notices when it next writes
        if groq_fake.disconnects:
            break
        await asyncio.sleep(0.05)
    assert groq_fake.disconnects == 1
    assert groq_fake.completed == 0
    assert generation.result is None
