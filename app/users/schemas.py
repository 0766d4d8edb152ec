"""Bodies of `/api/users/me`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from app.lib.schema import CamelStruct
from app.shares.schemas import Share


class UserProfile(CamelStruct):
    id: str
    name: str | None
    email: str
    email_verified: datetime | None
    image: str | None
    created_at: datetime
    updated_at: datetime


class UserUpdate(CamelStruct, forbid_unknown_fields=False):
    """Only `name` and `image` can change; `email`, `id` and the like are ignored."""

    name: str | msgspec.UnsetType | None = msgspec.UNSET
    image: str | msgspec.UnsetType | None = msgspec.UNSET


class Preferences(CamelStruct):
    default_model: str
    theme: str
    language: str
    time_zone: str | None  # IANA name; the day of daily quotas (None: UTC)
    updated_at: datetime
    # The system prompt of conversations that set none (None: the server's SYSTEM_PROMPT).
    system_prompt: str | None = None


class PreferencesUpdate(CamelStruct, forbid_unknown_fields=False):
    default_model: str | msgspec.UnsetType = msgspec.UNSET
    theme: str | msgspec.UnsetType = msgspec.UNSET
    language: str | msgspec.UnsetType = msgspec.UNSET
    time_zone: str | msgspec.UnsetType | None = msgspec.UNSET
    system_prompt: str | msgspec.UnsetType | None = msgspec.UNSET


class UserExport(CamelStruct):
    user: UserProfile
    preferences: Preferences | None
    accounts: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    tags: list[dict[str, Any]]  # each conversation names its tags by id
    # Your share links: which conversation, when, how many messages (never their tokens).
    shares: list[Share]
    conversations: list[dict[str, Any]]
