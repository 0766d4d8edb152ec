"""Bodies of the chat and conversations API (camelCase keys, the Prisma field names)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from app.files.schemas import FileInfo
from app.lib.schema import CamelStruct
from app.organize.schemas import TagRef

ReactionType = Literal["like", "dislike", "helpful"]
REACTION_TYPES: tuple[str, ...] = ("like", "dislike", "helpful")


# Ids chosen by clients: the AI SDK's chat and message ids (16 characters by default).
ClientId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="1 to 64 characters: letters, digits, `_` and `-`",
    ),
]


class UIMessagePart(msgspec.Struct, forbid_unknown_fields=False):
    """A part of an AI SDK UIMessage; `text` and `file` parts are read (a file's `url` is
    this API's file URL or a `data:` URL)."""

    type: str
    text: str | None = None
    url: str | None = None
    media_type: str | None = msgspec.field(default=None, name="mediaType")
    filename: str | None = None


class UIMessage(msgspec.Struct, forbid_unknown_fields=False):
    """An AI SDK UIMessage (`{id, role, parts}`)."""

    role: str
    id: ClientId | None = None
    parts: list[UIMessagePart] = msgspec.field(default_factory=list)


class ChatRequest(CamelStruct, forbid_unknown_fields=False):
    """Either this API's own body (`message` text, optional `conversationId`) or the AI SDK's
    (`id` = chat id, and `message` or `messages` as UIMessages). `userId`, `role` and other
    unknown keys are ignored (no mass assignment)."""

    message: str | UIMessage | None = None
    conversation_id: str | None = None
    model: str | None = None
    stream: bool | None = None
    # Send the same id again when retrying: the earlier exchange is answered, not a new one.
    client_message_id: ClientId | None = None
    # Ids of files from POST /api/files, carried by the message.
    files: list[Annotated[str, msgspec.Meta(max_length=64)]] | None = None
    # The AI SDK's fields.
    id: ClientId | None = None
    messages: list[UIMessage] | None = None
    trigger: Literal["submit-message", "regenerate-message"] | None = None
    message_id: str | None = None

    @property
    def speaks_ai_sdk(self) -> bool:
        return self.messages is not None or isinstance(self.message, UIMessage)


class StopResult(CamelStruct):
    stopped: bool  # False: nothing was being generated
    message: Message | None  # the stopped answer, as stored


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
    # The model's reasoning, apart from `content` (never sent back to a model).
    reasoning: str | None = None
    # What the answer was made with (None: the provider's default).
    system_prompt: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    # The files a user message carries (POST /api/files), in order.
    files: list[FileInfo] = msgspec.field(default_factory=list)
    # Issue 23 item 2: the message this one follows, and its siblings (the other edits of a
    # question, the other versions of an answer), oldest first: "< index+1 / count >". In
    # pages and exports; None where not read (the answer of a chat request).
    parent_id: str | None = None
    sibling_ids: list[str] | None = None
    sibling_index: int | None = None
    sibling_count: int | None = None


class Branches(CamelStruct):
    """`GET .../messages/{id}/branches`: the message among its siblings, oldest first."""

    message_id: str
    parent_id: str | None
    siblings: list[str]
    index: int
    count: int


class BranchSelect(CamelStruct):
    """`POST .../branch`: show the branch through this message (down to its newest leaf)."""

    message_id: str


class EditRequest(CamelStruct):
    """`POST .../messages/{id}/edit`: the question's new text; answered as chat does."""

    message: str
    model: str | None = None
    stream: bool | None = None


class ConversationSummary(CamelStruct):
    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int
    last_message: str | None
    last_message_role: str | None
    last_message_at: datetime | None
    # Issue 23 item 4: pinned (first in the list), archived (out of it), tags.
    pinned_at: datetime | None = None
    archived_at: datetime | None = None
    tags: list[TagRef] = msgspec.field(default_factory=list)


class ConversationPage(CamelStruct):
    conversations: list[ConversationSummary]
    next_cursor: str | None


class TrashedConversation(CamelStruct):
    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime
    # The messages its restore brings back.
    message_count: int


class TrashPage(CamelStruct):
    conversations: list[TrashedConversation]
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
    # `user` (set by you), `model` (made by the title model), None (the question's first words).
    title_source: str | None = None
    # The conversation's settings; None: your preference, else the server's default.
    system_prompt: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    # Issue 23 item 4: pinned, archived, tags.
    pinned_at: datetime | None = None
    archived_at: datetime | None = None
    tags: list[TagRef] = msgspec.field(default_factory=list)
    # The last message of the branch shown (None: linear order).
    current_leaf_id: str | None = None


class TitleResult(CamelStruct):
    id: str
    title: str
    title_source: str
    model: str


class ConversationExport(CamelStruct):
    """`GET /api/conversations/{id}/export` as JSON: every message, versions included."""

    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    messages: list[Message]
    pinned_at: datetime | None = None
    archived_at: datetime | None = None
    tags: list[TagRef] = msgspec.field(default_factory=list)
    # The last message of the branch shown (None: linear order); each message has `parentId`.
    current_leaf_id: str | None = None


class ConversationSettings(CamelStruct, forbid_unknown_fields=False):
    """Settings of a conversation. Left out: unchanged; null: back to the default (your
    preference, else the server's). `systemPrompt` "" sends no system prompt at all."""

    system_prompt: str | msgspec.UnsetType | None = msgspec.UNSET
    model: str | msgspec.UnsetType | None = msgspec.UNSET
    temperature: float | msgspec.UnsetType | None = msgspec.UNSET
    max_output_tokens: int | msgspec.UnsetType | None = msgspec.UNSET


class ConversationCreate(ConversationSettings, forbid_unknown_fields=False):
    title: str | None = None


class ConversationUpdate(ConversationSettings, forbid_unknown_fields=False):
    """`title`: null or blank clears it."""

    title: str | msgspec.UnsetType | None = msgspec.UNSET


class ChatResult(CamelStruct):
    conversation_id: str
    user_message: Message
    ai_message: Message


class ModelUsage(CamelStruct):
    model: str | None
    messages: int
    tokens: int


class Budget(CamelStruct):
    used: int
    limit: int | None  # None: unlimited
    remaining: int | None


class UsageReport(CamelStruct):
    """Today's use of the daily budgets, in the user's time zone."""

    day: date
    time_zone: str
    resets_at: datetime
    messages: Budget
    tokens: Budget
    models: list[ModelUsage]
    # Stored files (not daily): bytes against FILE_QUOTA_BYTES, and how many.
    file_bytes: Budget | None = None
    file_count: int = 0
