"""`dev-echo`: a built-in stand-in so a fresh `chatwithme serve` can chat without any key.

Deterministic: it answers by quoting the last user message back, word by word, with a fixed
delay between words. It is not a language model and says so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from app.llm.providers.base import StreamEvent
from app.llm.types import (
    ChatMessage,
    ModelInfo,
    Sampling,
    StreamEnd,
    Usage,
    estimate_message_tokens,
)

PREAMBLE = "This is dev-echo, the development model (configure a provider for real answers). "


class DevEchoProvider:
    name = "dev"

    def __init__(self, delay_seconds: float) -> None:
        self.delay = delay_seconds

    @staticmethod
    def answer_for(messages: list[ChatMessage]) -> str:
        last = next((m for m in reversed(messages) if m.role == "user"), None)
        turns = sum(1 for m in messages if m.role == "user")
        text = last.content.strip() if last else ""
        files = ""
        if last is not None and last.attachments:
            names = ", ".join(f"{a.name} ({a.media_type})" for a in last.attachments)
            files = f" with {len(last.attachments)} file(s): {names}"
        return f'{PREAMBLE}You said: "{text}"{files} (message {turns} of this conversation).'

    async def stream(
        self, model: ModelInfo, messages: list[ChatMessage], sampling: Sampling
    ) -> AsyncIterator[StreamEvent]:
        answer = self.answer_for(messages)
        words = re.findall(r"\S+\s*", answer)
        if sampling.max_tokens is not None:
            words = words[: sampling.max_tokens]
        for word in words:
            if self.delay:
                await asyncio.sleep(self.delay)
            yield word
        prompt = sum(estimate_message_tokens(m.content) for m in messages)
        yield StreamEnd(Usage(prompt, len(words), estimated=True), "stop")

    async def aclose(self) -> None:
        return None
