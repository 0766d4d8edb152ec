"""The provider interface, and how HTTP failures are classified for all of them."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from app.llm.types import (
    ChatMessage,
    FailureKind,
    ModelInfo,
    ProviderFailure,
    Reasoning,
    Sampling,
    StreamEnd,
)

# Text of the answer, the model's reasoning, then exactly one StreamEnd.
StreamEvent = str | Reasoning | StreamEnd


class Provider(Protocol):
    """One vendor. `stream` yields text (and reasoning) deltas, then exactly one StreamEnd;
    `sampling` reaches the vendor in its own terms."""

    name: str

    def stream(
        self, model: ModelInfo, messages: list[ChatMessage], sampling: Sampling
    ) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


def failure_for_status(
    status: int, provider: str, headers: Mapping[str, str] | None = None
) -> ProviderFailure:
    """Map an HTTP status to a failure kind; the message names no vendor detail."""
    kind: FailureKind
    if status == 429:
        kind = "rate_limited"
    elif status in (401, 403):
        kind = "auth"
    elif status in (400, 404, 409, 413, 422):
        kind = "bad_request"
    elif status in (408, 504):
        kind = "timeout"
    else:
        kind = "unavailable"
    retry_after = _retry_after(headers) if kind == "rate_limited" else None
    return ProviderFailure(kind, f"{provider} answered HTTP {status}", retry_after=retry_after)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def ended_early(provider: str) -> ProviderFailure:
    return ProviderFailure("unavailable", f"{provider} ended the answer before it was complete")


def malformed(provider: str) -> ProviderFailure:
    return ProviderFailure("unavailable", f"{provider} sent a malformed response")


def openai_content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """A message's `content` as OpenAI-compatible APIs (Groq, vLLM, Ollama) take it: the text
    alone, or with files, a list of parts where each image is an `image_url` part holding a
    `data:` URL (the server never hands a vendor a URL of its own to fetch)."""
    if not message.attachments:
        return message.content
    parts: list[dict[str, Any]] = (
        [{"type": "text", "text": message.content}] if message.content else []
    )
    for attachment in message.attachments:
        encoded = base64.b64encode(attachment.data).decode("ascii")
        parts.append(
            {
                "type": "image_url",
                "image_url": {"url": f"data:{attachment.media_type};base64,{encoded}"},
            }
        )
    return parts
