"""Each provider through its real SDK against a fake vendor: what is sent, what comes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.llm.catalogue import UnknownModel
from app.llm.router import ModelRouter
from app.llm.types import ChatMessage, Reasoning, Sampling
from app.settings import Settings
from tests.fakes.llm import FakeLLM, Scenario
from tests.llm.conftest import provider_settings

CONVERSATION = [
    ChatMessage("system", "You are terse."),
    ChatMessage("user", "Hi"),
    ChatMessage("assistant", "Hello."),
    ChatMessage("user", "What is 2+2?"),
]


async def _collect(
    router: ModelRouter, model: str, max_tokens: int | None = 64
) -> tuple[str, object]:
    generation = router.stream(router.resolve(model), CONVERSATION, Sampling(max_tokens))
    text = "".join([delta async for delta in generation if isinstance(delta, str)])
    return text, generation.result


async def test_groq_streams_through_the_sdk_with_usage_from_x_groq(
    router: ModelRouter, groq_fake: FakeLLM
) -> None:
    text, result = await _collect(router, "groq")
    assert text == "Hello, world!"
    [sent] = groq_fake.received
    assert sent.path == "/openai/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer gsk_test_key"
    assert sent.body["model"] == "llama-3.3-70b-versatile"
    assert sent.body["stream"] is True
    assert sent.body["max_completion_tokens"] == 64
    assert sent.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert result is not None
    assert (result.model, result.provider) == ("groq/llama-3.3-70b-versatile", "groq")  # type: ignore[attr-defined]
    usage = result.usage  # type: ignore[attr-defined]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (11, 7, False)
    assert result.finish_reason == "stop"  # type: ignore[attr-defined]
    assert result.time_to_first_token_ms is not None  # type: ignore[attr-defined]
    assert result.total_time_ms >= result.time_to_first_token_ms  # type: ignore[attr-defined]
    assert result.attempts == []  # type: ignore[attr-defined]


async def test_gemini_gets_system_instruction_and_model_roles(
    router: ModelRouter, gemini_fake: FakeLLM
) -> None:
    text, result = await _collect(router, "gemini")
    assert text == "Hello, world!"
    [sent] = gemini_fake.received
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == "gemini-test-key"
    assert sent.body["systemInstruction"]["parts"] == [{"text": "You are terse."}]
    assert [(c["role"], c["parts"][0]["text"]) for c in sent.body["contents"]] == [
        ("user", "Hi"),
        ("model", "Hello."),
        ("user", "What is 2+2?"),
    ]
    assert sent.body["generationConfig"]["maxOutputTokens"] == 64
    usage = result.usage  # type: ignore[attr-defined]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (11, 7, False)
    assert result.finish_reason == "stop"  # type: ignore[attr-defined]


async def test_an_openai_compatible_server_can_serve_a_local_model(
    settings: Settings, local_fake: FakeLLM
) -> None:
    configured = provider_settings(
        settings,
        openai_compat_base_url=f"{local_fake.url}/v1",
        openai_compat_models="llama3.2, qwen2.5:7b",
    )
    router = ModelRouter.from_settings(configured)
    assert [m.id for m in router.catalogue.available()] == ["local/llama3.2", "local/qwen2.5:7b"]
    text, result = await _collect(router, "local/qwen2.5:7b")
    await router.aclose()
    assert text == "Hello, world!"
    [sent] = local_fake.received
    assert sent.path == "/v1/chat/completions"
    assert "authorization" not in sent.headers  # no key configured
    assert sent.body["model"] == "qwen2.5:7b"
    assert sent.body["stream_options"] == {"include_usage": True}
    assert result.usage.prompt_tokens == 11  # type: ignore[attr-defined]


async def test_an_openai_compatible_server_gets_sampling_and_its_reasoning_content_is_read(
    settings: Settings, local_fake: FakeLLM
) -> None:
    configured = provider_settings(
        settings, openai_compat_base_url=f"{local_fake.url}/v1", openai_compat_models="qwen3"
    )
    router = ModelRouter.from_settings(configured)
    local_fake.next(Scenario(reasoning=["Hmm, ", "four."], chunks=["4"]))
    generation = router.stream(
        router.resolve("local/qwen3"), CONVERSATION, Sampling(max_tokens=99, temperature=0.25)
    )
    deltas = [delta async for delta in generation]
    await router.aclose()
    assert deltas == [Reasoning("Hmm, "), Reasoning("four."), "4"]
    assert generation.reasoning == "Hmm, four." and generation.partial == "4"
    [sent] = local_fake.received
    assert (sent.body["max_tokens"], sent.body["temperature"]) == (99, 0.25)


async def test_missing_usage_is_estimated_and_marked(
    router: ModelRouter, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(usage=None))
    _, result = await _collect(router, "groq")
    usage = result.usage  # type: ignore[attr-defined]
    assert usage.estimated is True
    assert usage.completion_tokens == 4  # "Hello, world!" is 13 characters: ceil(13 / 4)
    assert usage.prompt_tokens > 0


async def test_dev_echo_is_offered_only_without_a_real_provider(settings: Settings) -> None:
    router = ModelRouter.from_settings(provider_settings(settings))
    assert [m.id for m in router.catalogue.available()] == ["dev-echo"]
    assert router.catalogue.server_default == "dev-echo"
    first, _ = await _collect(router, "dev-echo")
    second, result = await _collect(router, "dev-echo")
    assert first == second  # deterministic
    assert 'You said: "What is 2+2?"' in first
    assert result.usage.estimated is True  # type: ignore[attr-defined]
    with pytest.raises(UnknownModel):
        router.resolve("groq")


def test_with_only_a_groq_key_only_groq_models_are_available(settings: Settings) -> None:
    router = ModelRouter.from_settings(provider_settings(settings, groq_api_key="k"))
    ids = [m.id for m in router.catalogue.available()]
    assert ids and all(i.startswith("groq/") for i in ids)
    assert router.resolve("groq").id == "groq/llama-3.3-70b-versatile"
    with pytest.raises(UnknownModel) as refused:
        router.resolve("gemini")
    assert refused.value.available == ids
    with pytest.raises(UnknownModel):
        router.resolve("dev-echo")


def test_aliases_resolve_to_each_providers_default(router: ModelRouter) -> None:
    assert router.resolve("groq").id == "groq/llama-3.3-70b-versatile"
    assert router.resolve("gemini").id == "gemini/gemini-2.5-flash"
    assert (
        router.resolve(None).id == router.catalogue.server_default == "groq/llama-3.3-70b-versatile"
    )
    with pytest.raises(UnknownModel):
        router.resolve("gpt-17")


def test_the_catalogue_can_be_extended_from_a_toml_file(settings: Settings, tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[[models]]\nid = "groq/qwen-qwq-32b"\nprovider = "groq"\nmodel = "qwen-qwq-32b"\n'
        'name = "Qwen QwQ 32B"\ncontext_window = 131072\nmax_output_tokens = 16384\n'
        '[aliases]\nthinker = "groq/qwen-qwq-32b"\n'
    )
    router = ModelRouter.from_settings(
        provider_settings(settings, groq_api_key="k", models_file=models, default_model="thinker")
    )
    model = router.resolve("thinker")
    assert (model.model, model.context_window, model.max_output_tokens) == (
        "qwen-qwq-32b",
        131072,
        16384,
    )
    assert router.catalogue.server_default == "groq/qwen-qwq-32b"
