"""Any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio) at a base URL.

Plain httpx and server-sent events: `POST {base}/chat/completions` with `stream: true`.
The base URL is the one such servers document, usually ending in `/v1`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

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


class OpenAICompatProvider:
    name = "local"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: httpx.Timeout,
        limits: httpx.Limits | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        limits = limits or httpx.Limits()
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=timeout,
            limits=limits,
            transport=transport_for(limits),
        )

    async def stream(
        self, model: ModelInfo, messages: list[ChatMessage], sampling: Sampling
    ) -> AsyncIterator[StreamEvent]:
        body: dict[str, Any] = {
            "model": model.model,
            "messages": [{"role": m.role, "content": openai_content(m)} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if sampling.max_tokens is not None:
            body["max_tokens"] = sampling.max_tokens
        if sampling.temperature is not None:
            body["temperature"] = sampling.temperature
        usage: Usage | None = None
        finish_reason: str | None = None
        done = False
        try:
            async with self.client.stream("POST", "chat/completions", json=body) as response:
                if response.status_code >= 400:
                    raise failure_for_status(response.status_code, self.name, response.headers)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = json.loads(data)
                    if chunk.get("usage"):
                        u = chunk["usage"]
                        usage = Usage(int(u["prompt_tokens"]), int(u["completion_tokens"]))
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        # vLLM and llama.cpp name it `reasoning_content`, Ollama `reasoning`.
                        if thought := delta.get("reasoning_content") or delta.get("reasoning"):
                            yield Reasoning(str(thought))
                        if text := delta.get("content"):
                            yield str(text)
                        finish_reason = choice.get("finish_reason") or finish_reason
        except httpx.TimeoutException:
            raise ProviderFailure(
                "timeout", "the local model server did not answer in time"
            ) from None
        except httpx.TransportError:
            raise ProviderFailure(
                "unavailable", "the local model server could not be reached"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise malformed(self.name) from None
        if finish_reason is None and not done:
            raise ended_early(self.name)
        if finish_reason == "content_filter":
            raise ProviderFailure("content_filtered", "the answer was withheld by a content filter")
        yield StreamEnd(usage, finish_reason or "stop")

    async def aclose(self) -> None:
        await self.client.aclose()
