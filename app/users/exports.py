"""`GET /api/users/me/export` as a stream (issue 20, item 11).

Built whole, one export of a 91 MB account took the process from 118 to 307 MB, and four at
once to 808 MB. Here the JSON is written as it is read: the account's head (profile,
preferences, accounts, sessions, share links), then its conversations in keyset pages and each one's
messages in keyset pages, about CHUNK_BYTES at a time. Each chunk is read in a short session
of its own, so no connection is held while a slow client downloads it. The bytes are the same
as the whole `UserExport` encoded at once.

Each user may have EXPORT_CONCURRENCY exports running at once in this process (429 past it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.chat.services import message_schema
from app.db.models import (
    Account,
    Conversation,
    ConversationTag,
    Message,
    Session,
    Tag,
    UserPreferences,
)
from app.files.schemas import file_info
from app.files.services import files_of
from app.lib.errors import RateLimited
from app.lib.time import as_utc
from app.shares.services import ShareService
from app.users import schemas
from app.users.services import UserService, preferences_schema, profile

CHUNK_BYTES = 256 * 1024
CONVERSATION_PAGE = 100
MESSAGE_PAGE = 500
RETRY_SECONDS = 5
_encode = msgspec.json.Encoder().encode


@dataclass
class ExportSlots:
    """How many exports each user has running in this process."""

    per_user: int
    _running: dict[str, int] = field(default_factory=dict)

    def claim(self, user_id: str) -> Callable[[], None]:
        """A slot for one export, or RateLimited; call what it returns when the export ends."""
        running = self._running.get(user_id, 0)
        if running >= self.per_user:
            raise RateLimited(
                "Another export of yours is still running; try again when it has finished.",
                RETRY_SECONDS,
            )
        self._running[user_id] = running + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._running.get(user_id, 1) - 1
            if left > 0:
                self._running[user_id] = left
            else:
                self._running.pop(user_id, None)

        return release


async def _head(db: AsyncSession, user_id: str) -> bytes:
    """The export up to its conversations' opening bracket."""
    user = await UserService(db, user_id).get()
    prefs = await db.scalar(select(UserPreferences).where(UserPreferences.user_id == user_id))
    accounts = await db.scalars(select(Account).where(Account.user_id == user_id))
    sessions = await db.scalars(select(Session).where(Session.user_id == user_id))
    tags = await db.scalars(select(Tag).where(Tag.user_id == user_id).order_by(Tag.id))
    shares = await ShareService(db, user_id).all_for_user()
    head = schemas.UserExport(
        user=profile(user),
        preferences=preferences_schema(prefs) if prefs else None,
        accounts=[
            {"provider": a.provider, "type": a.type, "providerAccountId": a.provider_account_id}
            for a in accounts
        ],
        sessions=[
            {
                "id": s.id,
                "expires": as_utc(s.expires),
                "createdAt": as_utc(s.created_at) if s.created_at else None,
            }
            for s in sessions
        ],
        tags=[
            {"id": t.id, "name": t.name, "color": t.color, "createdAt": as_utc(t.created_at)}
            for t in tags
        ],
        shares=shares,
        conversations=[],
    )
    encoded = _encode(head)
    assert encoded.endswith(b"[]}")  # conversations come last
    return encoded[:-2]


def _conversation_head(conversation: Conversation, tag_ids: list[str]) -> bytes:
    """`{"id":...,"updatedAt":...,"tags":[...],"messages":[`"""
    encoded = _encode(
        {
            "id": conversation.id,
            "title": conversation.title,
            "createdAt": as_utc(conversation.created_at),
            "updatedAt": as_utc(conversation.updated_at),
            # Revision 0012: its settings and where its title came from.
            "titleSource": conversation.title_source,
            "systemPrompt": conversation.system_prompt,
            "model": conversation.model,
            "temperature": conversation.temperature,
            "maxOutputTokens": conversation.max_output_tokens,
            "pinnedAt": as_utc(conversation.pinned_at) if conversation.pinned_at else None,
            "archivedAt": as_utc(conversation.archived_at) if conversation.archived_at else None,
            "tags": tag_ids,
            # Revision 0018: the branch shown; each message carries its `parentId`.
            "currentLeafId": conversation.current_leaf_id,
        }
    )
    return encoded[:-1] + b',"messages":['


async def export_chunks(
    session_maker: async_sessionmaker[AsyncSession], user_id: str, release: Callable[[], None]
) -> AsyncIterator[bytes]:
    """The user's export (no tokens, nothing in the trash) in chunks; `release` is called
    when it ends, is abandoned, or fails."""
    try:
        async with session_maker() as db:
            yield await _head(db, user_id)
        pending: deque[Conversation] = deque()
        tagged: dict[str, list[str]] = {}
        after_conversation: tuple[datetime, str] | None = None
        current: Conversation | None = None  # its messages are being written
        after_message: tuple[datetime, str] | None = None
        written_conversations = 0
        done = False
        while not done:
            parts: list[bytes] = []
            size = 0
            async with session_maker() as db:
                while size < CHUNK_BYTES:
                    if current is None:
                        if not pending:
                            page = await _conversations(db, user_id, after_conversation)
                            if not page:
                                done = True
                                break
                            pending.extend(page)
                            tagged = await _tag_ids(db, user_id, [c.id for c in page])
                            last = page[-1]
                            after_conversation = (last.created_at, last.id)
                        current, after_message = pending.popleft(), None
                        head = _conversation_head(current, tagged.get(current.id, []))
                        parts.append(b"," + head if written_conversations else head)
                        written_conversations += 1
                        size += len(head)
                    messages = await _messages(db, user_id, current.id, after_message)
                    carried = await files_of(db, user_id, [m.id for m in messages])
                    for index, message in enumerate(messages):
                        schema = message_schema(message)
                        # The files' metadata and URL; their bytes are read at the URL.
                        schema.files = [file_info(f) for f in carried.get(message.id, [])]
                        encoded = _encode(schema)
                        first = after_message is None and index == 0
                        parts.append(encoded if first else b"," + encoded)
                        size += len(encoded) + 1
                    if len(messages) < MESSAGE_PAGE:
                        parts.append(b"]}")
                        current = None
                    else:
                        after_message = (messages[-1].created_at, messages[-1].id)
            if done:
                parts.append(b"]}")
            if parts:
                yield b"".join(parts)
    finally:
        release()


async def _conversations(
    db: AsyncSession, user_id: str, after: tuple[datetime, str] | None
) -> list[Conversation]:
    statement = (
        select(Conversation)
        .where(Conversation.user_id == user_id, Conversation.deleted_at.is_(None))
        .order_by(Conversation.created_at, Conversation.id)
        .limit(CONVERSATION_PAGE)
    )
    if after is not None:
        statement = statement.where(tuple_(Conversation.created_at, Conversation.id) > after)
    return list(await db.scalars(statement))


async def _tag_ids(
    db: AsyncSession, user_id: str, conversation_ids: list[str]
) -> dict[str, list[str]]:
    rows = await db.execute(
        select(ConversationTag.conversation_id, ConversationTag.tag_id)
        .where(
            ConversationTag.user_id == user_id,
            ConversationTag.conversation_id.in_(conversation_ids),
        )
        .order_by(ConversationTag.conversation_id, ConversationTag.tag_id)
    )
    found: dict[str, list[str]] = {}
    for conversation_id, tag_id in rows:
        found.setdefault(conversation_id, []).append(tag_id)
    return found


async def _messages(
    db: AsyncSession, user_id: str, conversation_id: str, after: tuple[datetime, str] | None
) -> list[Message]:
    statement = (
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.user_id == user_id,
            Message.deleted_at.is_(None),
        )
        .order_by(Message.created_at, Message.id)
        .limit(MESSAGE_PAGE)
    )
    if after is not None:
        statement = statement.where(tuple_(Message.created_at, Message.id) > after)
    return list(await db.scalars(statement))
