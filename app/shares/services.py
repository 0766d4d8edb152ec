"""Share links: snapshots of a conversation, read by whoever holds the link.

A link is `/s/{token}`: 32 random bytes (256 bits) from the CSPRNG, base64url. Only the
token's SHA-256 is stored, so the rows open nothing. A token of any other shape is no link at
all (404 without a query). The snapshot is taken when the share is made: the current version
of each message, not in the trash and not still being written; later messages, edits and
regenerations do not reach it. A trashed conversation's links answer nothing until it is
restored; a deleted one's rows are gone with it (ON DELETE CASCADE).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

import msgspec
from sqlalchemy import Text, and_, delete, func, insert, literal, literal_column, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from app.chat.branches import MAX_DEPTH, BranchService
from app.db.models import Conversation, ConversationShare, Message, Timestamp
from app.lib.cursors import Keyset, encode_keyset
from app.lib.errors import InvalidInput, NotFound
from app.lib.pagination import clamp
from app.lib.time import as_utc, to_naive_utc, utc_now
from app.shares import schemas
from prisma_compat import cuid

TOKEN_BYTES = 32
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}\Z")  # base64url of 32 bytes, unpadded
MAX_SHARES_PAGE = 100
TIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    return _TOKEN.match(token) is not None


def share_schema(row: ConversationShare, active: bool) -> schemas.Share:
    return schemas.Share(
        id=row.id,
        conversation_id=row.conversation_id,
        title=row.title,
        message_count=row.message_count,
        created_at=as_utc(row.created_at),
        active=active,
    )


def shared_messages(row: ConversationShare) -> list[schemas.SharedMessage]:
    """The snapshot's messages, checked against their schema (the JSONB is ours, but a
    Prisma-side writer could have put anything there)."""
    return msgspec.convert(row.messages, list[schemas.SharedMessage])


def _visible() -> Any:
    """What a snapshot takes (of the branch shown): messages not in the trash, not still
    being written, not an error with no text."""
    return and_(
        Message.deleted_at.is_(None),
        Message.status != "streaming",
        Message.content != "",
    )


class ShareService:
    """The caller's shares: make, list, revoke."""

    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self.db = db
        self.user_id = user_id

    async def create(self, conversation_id: str, max_bytes: int) -> tuple[schemas.Share, str]:
        """A snapshot of the caller's conversation as it is now, and the link's token."""
        conversation = await self.db.scalar(
            select(Conversation).where(
                Conversation.id == conversation_id,
                Conversation.user_id == self.user_id,
                Conversation.deleted_at.is_(None),
            )
        )
        if conversation is None:
            raise NotFound("No such conversation.")
        where = and_(
            Message.conversation_id == conversation.id,
            Message.user_id == self.user_id,
            _visible(),
        )
        if conversation.current_leaf_id is not None:
            # The branch shown, not the others (issue 23 item 2): its ids from the tree's walk,
            # which also says which version of an answer is shown (the one switched to, even
            # if a later regeneration marked it superseded).
            branches = BranchService(self.db, self.user_id)
            leaf = await branches.live_leaf(conversation.id, conversation.current_leaf_id)
            shown = await branches.branch_ids(conversation.id, leaf, MAX_DEPTH) if leaf else []
            where = and_(where, Message.id.in_(shown))
        else:  # read in linear order: each answer's current version
            where = and_(where, Message.superseded_at.is_(None))
        count, size = (
            await self.db.execute(
                select(
                    func.count(), func.coalesce(func.sum(func.octet_length(Message.content)), 0)
                ).where(where)
            )
        ).one()
        if count == 0:
            raise InvalidInput("conversation_id: the conversation has no messages to share")
        if size > max_bytes:
            raise InvalidInput(
                f"conversation_id: too long to share ({size} bytes of text; at most {max_bytes})"
            )
        # Built and stored by PostgreSQL in one statement: the text does not come through
        # this process (a 2,500-message snapshot took 99 ms through Python, 1 MB each way).
        snapshot = (
            select(
                func.coalesce(
                    func.jsonb_agg(
                        aggregate_order_by(
                            func.jsonb_build_object(
                                "role", Message.role,
                                "content", Message.content,
                                "model", Message.model,
                                "createdAt", func.to_char(Message.created_at, TIME_FORMAT),
                                "status", Message.status,
                            ),
                            Message.created_at,
                            Message.id,
                        )
                    ),
                    literal_column("'[]'::jsonb"),
                ).label("messages"),
                func.count().label("message_count"),
            )
            .where(where)
            .subquery("snapshot")
        )  # fmt: skip
        token = new_token()
        share = schemas.Share(
            id=cuid(),
            conversation_id=conversation.id,
            title=conversation.title,
            message_count=0,
            created_at=as_utc(utc_now()),
            active=True,
        )
        table = ConversationShare.__table__.c
        share.message_count = await self.db.scalar(
            insert(ConversationShare)
            .from_select(
                [table.id, table.userId, table.conversationId, table.tokenHash, table.title,
                 table.messages, table.messageCount, table.createdAt],
                select(
                    literal(share.id, Text),
                    literal(self.user_id, Text),
                    literal(conversation.id, Text),
                    literal(token_hash(token), Text),
                    literal(share.title, Text),
                    snapshot.c.messages,
                    snapshot.c.message_count,
                    literal(to_naive_utc(share.created_at), Timestamp),
                ),
            )
            .returning(table.messageCount)
        )  # fmt: skip
        return share, token

    async def list_for_user(self, limit: int | None, after: Keyset | None) -> schemas.SharePage:
        """Newest first, each saying whether its link works (its conversation not trashed)."""
        size = clamp(limit, 20, MAX_SHARES_PAGE)
        query = (
            select(ConversationShare, Conversation.deleted_at.is_(None).label("active"))
            .join(Conversation, Conversation.id == ConversationShare.conversation_id)
            .where(ConversationShare.user_id == self.user_id)
            .order_by(ConversationShare.created_at.desc(), ConversationShare.id.desc())
            .limit(size + 1)
        )
        if after is not None:
            query = query.where(
                or_(
                    ConversationShare.created_at < after.at,
                    and_(
                        ConversationShare.created_at == after.at,
                        ConversationShare.id < after.row_id,
                    ),
                )
            )
        # The snapshot is not needed for the list: leave the JSONB column unread.
        query = query.options(defer(ConversationShare.messages))
        rows = (await self.db.execute(query)).all()
        page = rows[:size]
        return schemas.SharePage(
            shares=[share_schema(row, active) for row, active in page],
            next_cursor=encode_keyset(page[-1][0].created_at, page[-1][0].id)
            if len(rows) > size
            else None,
        )

    async def all_for_user(self) -> list[schemas.Share]:
        """Every share of the caller's, oldest first, for the account export."""
        rows = await self.db.execute(
            select(ConversationShare, Conversation.deleted_at.is_(None))
            .join(Conversation, Conversation.id == ConversationShare.conversation_id)
            .where(ConversationShare.user_id == self.user_id)
            .order_by(ConversationShare.created_at, ConversationShare.id)
            .options(defer(ConversationShare.messages))
        )
        return [share_schema(row, active) for row, active in rows.all()]

    async def delete(self, share_id: str) -> None:
        """Revoke: the row goes, so the link answers 404 from now on."""
        gone = await self.db.scalar(
            delete(ConversationShare)
            .where(ConversationShare.id == share_id, ConversationShare.user_id == self.user_id)
            .returning(ConversationShare.id)
        )
        if gone is None:
            raise NotFound("No such share.")


class SharedLinks:
    """What a link opens, for anyone who holds it."""

    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def _live(self, token: str) -> Any:
        """The share behind a token, unless revoked or its conversation is in the trash."""
        return and_(
            ConversationShare.token_hash == token_hash(token),
            Conversation.id == ConversationShare.conversation_id,
            Conversation.deleted_at.is_(None),
        )

    async def find(self, token: str) -> ConversationShare | None:
        if not well_formed(token):
            return None
        return await self.db.scalar(select(ConversationShare).where(self._live(token)))

    async def exists(self, token: str) -> bool:
        """Whether the link opens anything (without reading its snapshot)."""
        if not well_formed(token):
            return False
        found = await self.db.scalar(select(ConversationShare.id).where(self._live(token)))
        return found is not None

    async def get(self, token: str) -> tuple[ConversationShare, list[schemas.SharedMessage]]:
        share = await self.find(token)
        if share is None:
            raise NotFound("No such shared conversation (or the link was revoked).")
        return share, shared_messages(share)

    async def copy(self, token: str, user_id: str) -> Conversation:
        """A new conversation of `user_id`'s with the snapshot's messages (their times,
        roles, models and statuses; each answer a reply to the question before it), to go on
        with as their own. No tokens, provider or usage come with it: those were the owner's."""
        share, messages = await self.get(token)
        conversation = Conversation(id=cuid(), user_id=user_id, title=share.title)
        self.db.add(conversation)
        await self.db.flush()
        question: str | None = None
        rows = []
        for m in messages:
            row_id = cuid()
            rows.append(
                Message(
                    id=row_id,
                    conversation_id=conversation.id,
                    user_id=user_id,
                    role=m.role,
                    content=m.content,
                    model=m.model,
                    status=m.status,
                    created_at=to_naive_utc(m.created_at),
                    reply_to_id=question if m.role == "assistant" else None,
                    prompt_message_ids=[],
                )
            )
            if m.role == "user":
                question = row_id
        self.db.add_all(rows)
        await self.db.flush()
        return conversation
