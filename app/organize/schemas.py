"""Bodies of `/api/tags` and of a conversation's pin, archive and tags."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from app.lib.schema import CamelStruct

MAX_TAG_NAME = 40
MAX_TAGS_PER_USER = 100
DEFAULT_COLOR = "#6b7280"

TagName = Annotated[
    str, msgspec.Meta(description='1 to 40 characters (spaces at the ends are dropped), no `"`')
]
Color = Annotated[
    str,
    msgspec.Meta(pattern=r"^#[0-9A-Fa-f]{6}$", description="`#rrggbb`", examples=["#2563eb"]),
]


class TagRef(CamelStruct):
    """A tag as conversations carry it."""

    id: str
    name: str
    color: str


class Tag(CamelStruct):
    id: str
    name: str
    color: str
    created_at: datetime
    updated_at: datetime
    conversation_count: int  # not counting those in the trash


class TagList(CamelStruct):
    tags: list[Tag]  # by name, whatever its case


class TagCreate(CamelStruct, forbid_unknown_fields=False):
    name: TagName
    color: Color = DEFAULT_COLOR


class TagUpdate(CamelStruct, forbid_unknown_fields=False):
    name: TagName | msgspec.UnsetType = msgspec.UNSET
    color: Color | msgspec.UnsetType = msgspec.UNSET


class Labels(CamelStruct):
    """How a conversation is organised: pinned (first in the list), archived (out of it), its
    tags."""

    id: str
    pinned_at: datetime | None
    archived_at: datetime | None
    tags: list[TagRef]
