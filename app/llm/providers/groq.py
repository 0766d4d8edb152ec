"""Groq, through its own SDK (`AsyncGroq`). The only module that imports `groq`.

The answer's stream is read through the SDK's raw-response interface
(`chat.completions.with_streaming_response`): the SDK still builds the request, sends it with
its headers, and turns an error status into its exceptions, but the chunks are decoded here,
as the few fields used, with msgspec. The SDK's own stream built a pydantic model of every
chunk: 35% of the app's CPU at 200 streams (issue 22).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import groq
import httpx
import msgspec
from groq.types.chat import ChatCompletionMessageParam

from app.llm.providers.base import (
    StreamEvent,
    ended_early,
    failure_for_status,
    malformed,
    openai_content,
)
from app.llm.transport import transport_for
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


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _XGroq(msgspec.Struct):
    usage: _Usage | None = None


class _Chunk(msgspec.Struct):
    """The fields of a `chat.completion.chunk` this app reads; the others are skipped."""

    choices: list[_Choice] = []
    usage: _Usage | None = None
    x_groq: _XGroq | None = None
    error: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class GroqProvider:
    name = "groq"

    def __init__(
        self,
        api_key: str,
        base_url: str | None,
        timeout: httpx.Timeout,
        limits: httpx.Limits | None = None,
    ) -> None:
        # Retries off: the router decides about retrying and falling back, within deadlines.
        # The connection limits are the SDK's own (100) unless given (LLM_MAX_CONNECTIONS).
        self.client = groq.AsyncGroq(
            api_key=api_key,
            base_url=base_url or DEFAULT_BASE_URL,
            max_retries=0,
            timeout=timeout,
            http_client=groq.DefaultAsyncHttpxClient(
                timeout=timeout, limits=limits, transport=transport_for(limits)
            )
            if limits
            else None,
        )

    async def stream(
        self, model: ModelInfo, messages: list[ChatMessage], sampling: Sampling
    ) -> AsyncIterator[StreamEvent]:
        max_tokens, temperature = sampling.max_tokens, sampling.temperature
        usage: Usage | None = None
        finish_reason: str | None = None
        try:
            async with self.client.chat.completions.with_streaming_response.create(
                model=model.model,
                messages=cast(
                    "list[ChatCompletionMessageParam]",
                    [{"role": m.role, "content": openai_content(m)} for m in messages],
                ),
                stream=True,
                # `max_completion_tokens`: Groq's name; its `max_tokens` is deprecated.
                max_completion_tokens=groq.omit if max_tokens is None else max_tokens,
                temperature=groq.omit if temperature is None else temperature,
                # gpt-oss sends its reasoning as `delta.reasoning` (`reasoning_format` is
                # refused for these models).
                include_reasoning=True if model.reasoning else groq.omit,
            ) as response:
                done = False
                async for event, data in _events(response.http_response):
                    if done or data == b"[DONE]":
                        done = True  # read to its end, so that the connection is kept
                        continue
                    chunk = _decode_chunk(data)
                    if chunk.error is not None or event == b"error":
                        raise malformed(self.name)  # an error told mid-stream
                    found = chunk.x_groq.usage if chunk.x_groq else None
                    if (found := found or chunk.usage) is not None:
                        usage = Usage(found.prompt_tokens, found.completion_tokens)
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta is not None and delta.reasoning:
                            yield Reasoning(delta.reasoning)
                        if delta is not None and delta.content:
                            yield delta.content
                        if choice.finish_reason:
                            finish_reason = choice.finish_reason
        except groq.APIError as exc:
            raise _failure(exc) from None
        except httpx.TimeoutException:
            raise ProviderFailure("timeout", "groq did not answer in time") from None
        except (httpx.HTTPError, ValueError):
            raise malformed(self.name) from None
        if finish_reason is None:
            raise ended_early(self.name)
        if finish_reason == "content_filter":
            raise ProviderFailure("content_filtered", "the answer was withheld by a content filter")
        yield StreamEnd(usage, finish_reason)

    async def aclose(self) -> None:
        await self.client.close()


async def _events(response: httpx.Response) -> AsyncIterator[tuple[bytes | None, bytes]]:
    """Server-sent events as (event name, data), from the response's bytes: a chunk of the
    stream is usually one whole event, so this is a split or two per token."""
    buffer = b""
    event: bytes | None = None
    data: list[bytes] = []
    async for piece in response.aiter_bytes():
        buffer += piece
        if b"\n" not in piece:
            continue
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    yield event, b"\n".join(data)
                event, data = None, []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif line.startswith(b"event:"):
                event = line[6:].strip()
    if data:
        yield event, b"\n".join(data)


def _failure(exc: groq.APIError) -> ProviderFailure:
    if isinstance(exc, groq.APITimeoutError):
        return ProviderFailure("timeout", "groq did not answer in time")
    if isinstance(exc, groq.APIStatusError):
        return failure_for_status(exc.status_code, "groq", exc.response.headers)
    if isinstance(exc, groq.APIConnectionError):
        return ProviderFailure("unavailable", "groq could not be reached")
    return malformed("groq")
