"""Bodies of the share-link API: the owner's view of a share, and what a link shows."""

from __future__ import annotations

from datetime import datetime

from app.lib.schema import CamelStruct


class Share(CamelStruct):
    """One of your share links. The link itself is only in the answer that made it: the
    server keeps a hash of its token, never the token."""

    id: str
    conversation_id: str
    title: str | None
    message_count: int
    created_at: datetime
    # False while the conversation is in the trash: the link answers 404 until it is restored.
    active: bool


class ShareCreated(Share):
    """A new share, with its link (shown this once)."""

    token: str
    url: str


class SharePage(CamelStruct):
    shares: list[Share]
    next_cursor: str | None


class SharedMessage(CamelStruct):
    role: str
    content: str
    model: str | None
    created_at: datetime
    status: str


class SharedConversation(CamelStruct):
    """What a share link shows: no ids, emails or anything of the owner's but this snapshot."""

    title: str | None
    shared_at: datetime
    messages: list[SharedMessage]
