"""Google Gemini through `google-genai` (not the end-of-life `google-generativeai`).

The only module that imports it. API version v1beta; the system prompt goes in
`systemInstruction`; `assistant` turns are sent with the role `model`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from google import genai
from google.genai import errors, types

from app.llm.providers.base import StreamEvent, ended_early, failure_for_status, malformed
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

BLOCKED = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION"}


def _parts(message: ChatMessage) -> list[types.Part]:
    """The text, then each file as inline data (`inlineData: {mimeType, data}` on the wire,
    base64): images and PDF alike."""
    parts = [types.Part(text=message.content)] if message.content else []
    parts += [
        types.Part.from_bytes(data=a.data, mime_type=a.media_type) for a in message.attachments
    ]
    return parts or [types.Part(text="")]


class GeminiProvider:
    name = "gemini"

    def __init__(
        self,
        api_key: str,
        base_url: str | None,
        timeout: httpx.Timeout,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits()
        self._http = httpx.AsyncClient(
            timeout=timeout, limits=limits, transport=transport_for(limits)
        )
        self.client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url,
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),  # the router retries
                httpx_async_client=self._http,
            ),
        )

    async def stream(
        self, model: ModelInfo, messages: list[ChatMessage], sampling: Sampling
    ) -> AsyncIterator[StreamEvent]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        contents = [
            types.Content(role="model" if m.role == "assistant" else "user", parts=_parts(m))
            for m in messages
            if m.role != "system"
        ]
        # `generationConfig` (temperature, maxOutputTokens, thinkingConfig) and
        # `systemInstruction` on the wire. Gemini 2.5 sends thought summaries only when asked.
        config = types.GenerateContentConfig(
            system_instruction=system or None,
            max_output_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            thinking_config=types.ThinkingConfig(include_thoughts=True)
            if model.reasoning
            else None,
        )
        usage: Usage | None = None
        finish_reason: str | None = None
        try:
            response = await self.client.aio.models.generate_content_stream(
                model=model.model, contents=contents, config=config
            )
            async for chunk in response:
                if chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
                    raise ProviderFailure("content_filtered", "the prompt was blocked by a filter")
                if (meta := chunk.usage_metadata) and meta.prompt_token_count is not None:
                    usage = Usage(meta.prompt_token_count, meta.candidates_token_count or 0)
                for candidate in chunk.candidates or []:
                    for part in (candidate.content.parts if candidate.content else None) or []:
                        if part.text:
                            yield Reasoning(part.text) if part.thought else part.text
                    if candidate.finish_reason:
                        finish_reason = str(candidate.finish_reason.value)
        except errors.APIError as exc:
            headers = exc.response.headers if isinstance(exc.response, httpx.Response) else None
            raise failure_for_status(exc.code or 500, self.name, headers) from None
        except httpx.TimeoutException:
            raise ProviderFailure("timeout", "gemini did not answer in time") from None
        except httpx.TransportError:
            raise ProviderFailure("unavailable", "gemini could not be reached") from None
        except (ValueError, KeyError, TypeError):
            raise malformed(self.name) from None
        if finish_reason is None:
            raise ended_early(self.name)
        if finish_reason in BLOCKED:
            raise ProviderFailure("content_filtered", "the answer was withheld by a content filter")
        yield StreamEnd(usage, finish_reason.lower())

    async def aclose(self) -> None:
        await self._http.aclose()
