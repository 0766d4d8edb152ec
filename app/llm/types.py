"""What goes into a model and what comes out; no HTTP framework, no database."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]
FailureKind = Literal[
    "rate_limited", "unavailable", "timeout", "auth", "bad_request", "content_filtered"
]
# Failures that another provider would not cure: never a reason to fall back.
FINAL_KINDS: frozenset[str] = frozenset({"auth", "bad_request", "content_filtered"})

# A cheap token estimate: about four characters a token for English text with the
# tokenizers of Llama and Gemini, plus a few tokens of framing per message. Used for history
# windows and when a provider reports no usage; exact counts come from the providers.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
# A file in the prompt, roughly: Gemini counts 258 tokens an image or a PDF page, Llama 4's
# vision a few hundred to a few thousand an image. An estimate for budgets, never billed.
TOKENS_PER_FILE = 1000


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_message_tokens(content: str) -> int:
    return estimate_tokens(content) + TOKENS_PER_MESSAGE


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a user message: its type (read from its bytes) and the bytes."""

    media_type: str
    data: bytes = field(repr=False)
    name: str = ""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    provider: str
    model: str  # the vendor's own name for it
    name: str
    context_window: int
    max_output_tokens: int
    development: bool = False
    # Thinks out loud when asked (Groq's gpt-oss `reasoning`, Gemini 2.5 thought summaries).
    reasoning: bool = False
    # US dollars per million tokens, in and out: how the cheapest model (titles) is chosen.
    input_price: float = 0.0
    output_price: float = 0.0
    # The media types of the files it takes (images for vision models, PDF for Gemini).
    accepts: frozenset[str] = frozenset()
    # The largest file it takes (None: FILE_MAX_BYTES decides).
    max_file_bytes: int | None = None

    def takes(self, media_type: str, size: int = 0) -> bool:
        fits = self.max_file_bytes is None or size <= self.max_file_bytes
        return media_type in self.accepts and fits


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Sampling:
    """How an answer is to be made; None leaves each to the provider's default."""

    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A delta of the model's reasoning (its thoughts), apart from the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of a provider stream: usage (if the provider sent it) and why it ended."""

    usage: Usage | None
    finish_reason: str | None


class ProviderFailure(Exception):
    """A provider call failed; the message is safe to show (no vendor body, no key)."""

    def __init__(
        self, kind: FailureKind, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after

    @property
    def final(self) -> bool:
        return self.kind in FINAL_KINDS


@dataclass(frozen=True, slots=True)
class Attempt:
    """A provider tried before the one that answered, and why it did not."""

    model: str
    provider: str
    kind: FailureKind
    message: str


@dataclass(slots=True)
class GenerationResult:
    model: str
    provider: str
    usage: Usage
    finish_reason: str | None
    time_to_first_token_ms: float | None
    total_time_ms: float
    attempts: list[Attempt] = field(default_factory=list)
