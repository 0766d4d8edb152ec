"""Tags, pins and the archive: plain data access, every statement scoped by the caller's userId.

Pinning, archiving and tagging are no activity: a conversation's `updatedAt` (its place in the
list) stays as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Conversation, ConversationTag, Tag
from app.lib.errors import Conflict, InvalidInput, NotFound
from app.lib.time import as_utc, utc_now
from app.organize import schemas

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def tag_name(raw: str, field: str = "name") -> str:
    """A tag's name as stored: stripped, 1 to 40 characters, no control characters and no
    `"` (search's `tag:"two words"` quotes names)."""
    name = raw.strip()
    if not name or len(name) > schemas.MAX_TAG_NAME:
        raise InvalidInput(f"{field}: a tag name is 1 to {schemas.MAX_TAG_NAME} characters")
    if _CONTROL.search(name) or '"' in name:
        raise InvalidInput(f'{field}: no control characters or `"` in a tag name')
    return name


def _tag_schema(tag: Tag, count: int) -> schemas.Tag:
    return schemas.Tag(
        id=tag.id,
        name=tag.name,
        color=tag.color,
        created_at=as_utc(tag.created_at),
        updated_at=as_utc(tag.updated_at),
        conversation_count=count,
    )


def tags_json(conversation_id: Any) -> Any:
    """A scalar subquery: the conversation's tags as a JSON array of `{id, name, color}`, by
    name (for lists read as records; `decode_tags` reads it). The conversation is the
    caller's: its links are found by the primary key, not the user's index of all links."""
    return (
        select(
            func.coalesce(
                func.json_agg(
                    aggregate_order_by(
                        func.json_build_object("id", Tag.id, "name", Tag.name, "color", Tag.color),
                        func.lower(Tag.name),
                        Tag.id,
                    )
                ),
                text("'[]'::json"),
            )
        )
        .select_from(ConversationTag)
        .join(Tag, Tag.id == ConversationTag.tag_id)
        .where(ConversationTag.conversation_id == conversation_id)
        .scalar_subquery()
    )


_decode_tags = msgspec.json.Decoder(list[schemas.TagRef]).decode


def decode_tags(raw: str | list[Any] | None) -> list[schemas.TagRef]:
    """`tags_json`'s value: JSON text, or already decoded where the connection has a JSON
    codec (the read pool)."""
    if not raw:
        return []
    if isinstance(raw, str):
        return _decode_tags(raw)
    return msgspec.convert(raw, list[schemas.TagRef])


async def tags_of(
    db: AsyncSession, user_id: str, conversation_ids: Sequence[str]
) -> dict[str, list[schemas.TagRef]]:
    """The tags of each of these conversations (the caller's), by name."""
    if not conversation_ids:
        return {}
    rows = await db.execute(
        select(ConversationTag.conversation_id, Tag.id, Tag.name, Tag.color)
        .join(Tag, Tag.id == ConversationTag.tag_id)
        .where(
            ConversationTag.user_id == user_id,
            ConversationTag.conversation_id.in_(conversation_ids),
        )
        .order_by(func.lower(Tag.name), Tag.id)
    )
    found: dict[str, list[schemas.TagRef]] = {}
    for conversation_id, tag_id, name, color in rows:
        found.setdefault(conversation_id, []).append(
            schemas.TagRef(id=tag_id, name=name, color=color)
        )
    return found


class TagService:
    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self.db = db
        self.user_id = user_id

    async def get_owned(self, tag_id: str) -> Tag:
        found = await self.db.scalar(
            select(Tag).where(Tag.id == tag_id, Tag.user_id == self.user_id)
        )
        if found is None:
            raise NotFound("No such tag.")
        return found

    async def list_for_user(self) -> schemas.TagList:
        counted = (
            select(func.count())
            .select_from(ConversationTag)
            .join(Conversation, Conversation.id == ConversationTag.conversation_id)
            .where(ConversationTag.tag_id == Tag.id, Conversation.deleted_at.is_(None))
            .scalar_subquery()
        )
        rows = await self.db.execute(
            select(Tag, counted)
            .where(Tag.user_id == self.user_id)
            .order_by(func.lower(Tag.name), Tag.id)
        )
        return schemas.TagList(tags=[_tag_schema(tag, count) for tag, count in rows])

    async def _lock(self) -> None:
        """One tag write of this user at a time (the 100-tag limit holds under races)."""
        await self.db.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended('tags:' || :uid, 0))"),
            {"uid": self.user_id},
        )

    async def _refuse_duplicate(self, name: str, other_than: str | None = None) -> None:
        query = select(Tag.name).where(
            Tag.user_id == self.user_id, func.lower(Tag.name) == func.lower(name)
        )
        if other_than is not None:
            query = query.where(Tag.id != other_than)
        existing = await self.db.scalar(query)
        if existing is not None:
            raise Conflict(f"name: you already have the tag “{existing}”")

    async def _flush(self, name: str) -> None:
        """Flush, turning the unique index's refusal (a writer outside this app) into 409."""
        try:
            async with self.db.begin_nested():
                await self.db.flush()
        except IntegrityError:
            raise Conflict(f"name: you already have a tag named “{name}”") from None

    async def create(self, data: schemas.TagCreate) -> schemas.Tag:
        name = tag_name(data.name)
        await self._lock()
        count = await self.db.scalar(
            select(func.count()).select_from(Tag).where(Tag.user_id == self.user_id)
        )
        if (count or 0) >= schemas.MAX_TAGS_PER_USER:
            raise Conflict(
                f"You have {schemas.MAX_TAGS_PER_USER} tags, the most there can be; "
                "delete one first."
            )
        await self._refuse_duplicate(name)
        tag = Tag(user_id=self.user_id, name=name, color=data.color.lower())
        self.db.add(tag)
        await self._flush(name)
        return _tag_schema(tag, 0)

    async def update(self, tag_id: str, data: schemas.TagUpdate) -> schemas.Tag:
        await self._lock()
        tag = await self.get_owned(tag_id)
        if not isinstance(data.name, msgspec.UnsetType):
            name = tag_name(data.name)
            await self._refuse_duplicate(name, other_than=tag.id)
            tag.name = name
        if not isinstance(data.color, msgspec.UnsetType):
            tag.color = data.color.lower()
        tag.updated_at = utc_now()
        await self._flush(tag.name)
        listed = await self.list_for_user()
        return next(t for t in listed.tags if t.id == tag.id)

    async def delete(self, tag_id: str) -> None:
        """The tag and its place on every conversation."""
        gone = await self.db.scalar(
            delete(Tag).where(Tag.id == tag_id, Tag.user_id == self.user_id).returning(Tag.id)
        )
        if gone is None:
            raise NotFound("No such tag.")


class LabelService:
    """A conversation's pin, archive and tags."""

    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self.db = db
        self.user_id = user_id

    async def labels(self, conversation_id: str) -> schemas.Labels:
        row = (
            await self.db.execute(
                select(Conversation.id, Conversation.pinned_at, Conversation.archived_at).where(
                    Conversation.id == conversation_id,
                    Conversation.user_id == self.user_id,
                    Conversation.deleted_at.is_(None),
                )
            )
        ).first()
        if row is None:
            raise NotFound("No such conversation.")
        tags = await tags_of(self.db, self.user_id, [row.id])
        return schemas.Labels(
            id=row.id,
            pinned_at=as_utc(row.pinned_at) if row.pinned_at else None,
            archived_at=as_utc(row.archived_at) if row.archived_at else None,
            tags=tags.get(row.id, []),
        )

    async def _set(self, conversation_id: str, column: str, on: bool) -> schemas.Labels:
        """Set `pinnedAt`/`archivedAt` (kept when already set) or clear it; no activity."""
        field = getattr(Conversation, column)
        value: datetime | None = func.coalesce(field, utc_now()) if on else None  # type: ignore[assignment]
        done = await self.db.scalar(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.user_id == self.user_id,
                Conversation.deleted_at.is_(None),
            )
            .values({column: value, "updated_at": Conversation.updated_at})
            .returning(Conversation.id)
        )
        if done is None:
            raise NotFound("No such conversation.")
        return await self.labels(conversation_id)

    async def pin(self, conversation_id: str, on: bool) -> schemas.Labels:
        return await self._set(conversation_id, "pinned_at", on)

    async def archive(self, conversation_id: str, on: bool) -> schemas.Labels:
        return await self._set(conversation_id, "archived_at", on)

    async def tag(self, conversation_id: str, tag_id: str, on: bool) -> schemas.Labels:
        """Put the tag on the conversation (again: no change) or take it off; both must be
        the caller's, else NotFound and nothing changes."""
        await self.labels(conversation_id)  # NotFound unless theirs and not in the trash
        await TagService(self.db, self.user_id).get_owned(tag_id)
        if on:
            try:
                async with self.db.begin_nested():
                    await self.db.execute(
                        insert(ConversationTag)
                        .values(
                            conversation_id=conversation_id, tag_id=tag_id, user_id=self.user_id
                        )
                        .on_conflict_do_nothing(index_elements=["conversationId", "tagId"])
                    )
            except IntegrityError:  # the tag or conversation was deleted meanwhile
                raise NotFound("No such tag.") from None
        else:
            await self.db.execute(
                delete(ConversationTag).where(
                    ConversationTag.conversation_id == conversation_id,
                    ConversationTag.tag_id == tag_id,
                    ConversationTag.user_id == self.user_id,
                )
            )
        return await self.labels(conversation_id)
