"""Bodies of the chat and conversations API (camelCase keys, the Prisma field names)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from app.lib.schema import CamelStruct

ReactionType = Literal["like", "dislike", "helpful"]
REACTION_TYPES: tuple[str, ...] = ("like", "dislike", "helpful")


class ChatRequest(CamelStruct, forbid_unknown_fields=False):
    """`userId`, `role`, `id` and other unknown keys are ignored (no mass assignment)."""

    message: str
    conversation_id: str | None = None
    model: str | None = None
    stream: bool | None = None


class RegenerateRequest(CamelStruct):
    model: str | None = None
    stream: bool | None = None


class Usage(CamelStruct):
    prompt_tokens: int | None
    completion_tokens: int | None
    estimated: bool | None


class Message(CamelStruct):
    id: str
    conversation_id: str
    role: str
    content: str
    model: str | None
    created_at: datetime
    status: str
    provider: str | None = None
    usage: Usage | None = None
    time_to_first_token_ms: int | None = None
    total_time_ms: int | None = None
    finish_reason: str | None = None
    error_code: str | None = None
    reply_to_id: str | None = None
    prompt_message_ids: list[str] | None = None
    attempts: list[dict[str, Any]] | None = None
    superseded_at: datetime | None = None
    reactions: list[str] = msgspec.field(default_factory=list)


class ConversationSummary(CamelStruct):
    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int
    last_message: str | None
    last_message_role: str | None
    last_message_at: datetime | None


class ConversationPage(CamelStruct):
    conversations: list[ConversationSummary]
    next_cursor: str | None


class MessagePage(CamelStruct):
    messages: list[Message]
    next_cursor: str | None  # pass as `before` for older messages


class ConversationDetail(CamelStruct):
    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    messages: list[Message]
    next_cursor: str | None


class ConversationCreate(CamelStruct, forbid_unknown_fields=False):
    title: str | None = None


class ConversationUpdate(CamelStruct, forbid_unknown_fields=False):
    title: str | None


class ChatResult(CamelStruct):
    conversation_id: str
    user_message: Message
    ai_message: Message
