"""Bodies of `GET /api/conversations/search`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from app.lib.schema import CamelStruct


class FoundConversation(CamelStruct):
    id: str
    title: str | None
    updated_at: datetime
    pinned_at: datetime | None = None
    archived_at: datetime | None = None


class Match(CamelStruct):
    """Where the query was found: the conversation's title, or one of its messages."""

    source: Literal["title", "message"]
    message_id: str | None  # the message's fields are null for the title
    role: str | None
    created_at: datetime | None
    snippet: str  # HTML-escaped text, matched terms in <mark>...</mark>


class SearchResult(CamelStruct):
    conversation: FoundConversation
    score: float
    matches: list[Match]


class SearchPage(CamelStruct):
    results: list[SearchResult]
    next_cursor: str | None
    # `filters`: no words, only filters; newest activity first, every score 0.
    mode: Literal["fulltext", "fuzzy", "filters"]
