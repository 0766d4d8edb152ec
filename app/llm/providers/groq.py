"""Groq, through its own SDK (`AsyncGroq`). The only module that imports `groq`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import groq
import httpx
from groq.types.chat import ChatCompletionMessageParam

from app.llm.providers.base import StreamEvent, ended_early, failure_for_status, malformed
from app.llm.types import (
    ChatMessage,
    ModelInfo,
    ProviderFailure,
    Reasoning,
    Sampling,
    StreamEnd,
    Usage,
)

DEFAULT_BASE_URL = "https://api.groq.com"


class GroqProvider:
    name = "groq"

    def __init__(self, api_key: str, base_url: str | None, timeout: httpx.Timeout) -> None:
        # Retries off: the router decides about retrying and falling back, within deadlines.
        self.client = groq.AsyncGroq(
            api_key=api_key, base_url=base_url or DEFAULT_BASE_URL, max_retries=0, timeout=timeout
        )

    async def stream(
        self, model: ModelInfo, messages: list[ChatMessage], sampling: Sampling
    ) -> AsyncIterator[StreamEvent]:
        max_tokens, temperature = sampling.max_tokens, sampling.temperature
        try:
            response = await self.client.chat.completions.create(
                model=model.model,
                messages=cast(
                    "list[ChatCompletionMessageParam]",
                    [{"role": m.role, "content": m.content} for m in messages],
                ),
                stream=True,
                # `max_completion_tokens`: Groq's name; its `max_tokens` is deprecated.
                max_completion_tokens=groq.omit if max_tokens is None else max_tokens,
                temperature=groq.omit if temperature is None else temperature,
                # gpt-oss sends its reasoning as `delta.reasoning` (`reasoning_format` is
                # refused for these models).
                include_reasoning=True if model.reasoning else groq.omit,
            )
        except groq.APIError as exc:
            raise _failure(exc) from None
        usage: Usage | None = None
        finish_reason: str | None = None
        try:
            async for chunk in response:
                groq_usage = chunk.x_groq.usage if chunk.x_groq else None
                if (found := groq_usage or chunk.usage) is not None:
                    usage = Usage(found.prompt_tokens, found.completion_tokens)
                for choice in chunk.choices:
                    if choice.delta.reasoning:
                        yield Reasoning(choice.delta.reasoning)
                    if choice.delta.content:
                        yield choice.delta.content
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
        except groq.APIError as exc:
            raise _failure(exc) from None
        except (httpx.HTTPError, ValueError):
            raise malformed(self.name) from None
        finally:
            await response.close()
        if finish_reason is None:
            raise ended_early(self.name)
        if finish_reason == "content_filter":
            raise ProviderFailure("content_filtered", "the answer was withheld by a content filter")
        yield StreamEnd(usage, finish_reason)

    async def aclose(self) -> None:
        await self.client.close()


def _failure(exc: groq.APIError) -> ProviderFailure:
    if isinstance(exc, groq.APITimeoutError):
        return ProviderFailure("timeout", "groq did not answer in time")
    if isinstance(exc, groq.APIStatusError):
        return failure_for_status(exc.status_code, "groq", exc.response.headers)
    if isinstance(exc, groq.APIConnectionError):
        return ProviderFailure("unavailable", "groq could not be reached")
    return malformed("groq")
