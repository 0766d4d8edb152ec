"""Bodies of `GET /api/conversations/search`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from app.lib.schema import CamelStruct


class FoundConversation(CamelStruct):
    id: str
    title: str | None
    updated_at: datetime


class Match(CamelStruct):
    message_id: str
    role: str
    created_at: datetime
    snippet: str  # HTML-escaped text, matched terms in <mark>...</mark>


class SearchResult(CamelStruct):
    conversation: FoundConversation
    score: float
    matches: list[Match]


class SearchPage(CamelStruct):
    results: list[SearchResult]
    next_cursor: str | None
    mode: Literal["fulltext", "fuzzy"]
