"""ORM models of the Prisma schema's tables, with Prisma's table and column names.

`updatedAt` is set by the app (`onupdate`), since Prisma's `@updatedAt` has no database default.

Python attributes are snake_case; the columns keep Prisma's camelCase names (`@@map` table
names, camelCase fields), so a Prisma/NextAuth app can share the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.lib.time import utc_now
from prisma_compat import cuid

Timestamp = TIMESTAMP(precision=3)
SEARCH_CONFIG = "chatwithme_search"  # made by revision 0004: english stemming, no accents


def _search_vector(source: str) -> Mapped[Any]:
    """A stored generated tsvector (revision 0004); deferred: only search reads it."""
    return mapped_column(
        "searchVector",
        TSVECTOR,
        Computed(f"to_tsvector('{SEARCH_CONFIG}'::regconfig, {source})", persisted=True),
        deferred=True,
    )


NOW = text("CURRENT_TIMESTAMP")


class Base(DeclarativeBase):
    metadata = MetaData()


def _user_fk(table: str) -> ForeignKey:
    return ForeignKey(
        "users.id", name=f"{table}_userId_fkey", ondelete="CASCADE", onupdate="CASCADE"
    )


def _id_column() -> Mapped[str]:
    return mapped_column("id", Text, primary_key=True, default=cuid)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index("users_email_key", "email", unique=True),)

    id: Mapped[str] = _id_column()
    name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    email_verified: Mapped[datetime | None] = mapped_column("emailVerified", Timestamp)
    image: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", Timestamp, default=utc_now, onupdate=utc_now
    )

    accounts: Mapped[list[Account]] = relationship(
        back_populates="user", passive_deletes=True, cascade="all, delete-orphan"
    )
    sessions: Mapped[list[Session]] = relationship(
        back_populates="user", passive_deletes=True, cascade="all, delete-orphan"
    )


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        Index(
            "accounts_provider_providerAccountId_key", "provider", "providerAccountId", unique=True
        ),
    )

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("accounts"))
    type: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(Text)
    provider_account_id: Mapped[str] = mapped_column("providerAccountId", Text)
    # NextAuth's adapter keeps the OAuth token fields in snake_case.
    refresh_token: Mapped[str | None] = mapped_column(Text)
    access_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[int | None] = mapped_column(Integer)
    token_type: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str | None] = mapped_column(Text)
    id_token: Mapped[str | None] = mapped_column(Text)
    session_state: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User] = relationship(back_populates="accounts")


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("sessions_sessionToken_key", "sessionToken", unique=True),)

    id: Mapped[str] = _id_column()
    session_token: Mapped[str] = mapped_column("sessionToken", Text)
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("sessions"))
    expires: Mapped[datetime] = mapped_column(Timestamp)
    # Revision 0002: nullable and defaulted, so rows Prisma writes without it get a value.
    created_at: Mapped[datetime | None] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )

    user: Mapped[User] = relationship(back_populates="sessions")


class VerificationToken(Base):
    __tablename__ = "verificationtokens"
    __table_args__ = (
        Index("verificationtokens_token_key", "token", unique=True),
        Index("verificationtokens_identifier_token_key", "identifier", "token", unique=True),
    )

    # Prisma declares no primary key here; the ORM needs one, and `token` is unique.
    identifier: Mapped[str] = mapped_column(Text)
    token: Mapped[str] = mapped_column(Text, primary_key=True)
    expires: Mapped[datetime] = mapped_column(Timestamp)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("conversations_userId_updatedAt_idx", "userId", "updatedAt"),
        Index(
            "conversations_userId_searchVector_idx",
            "userId",
            "searchVector",
            postgresql_using="gin",
        ),
        # Revision 0009: the trash, newest deletion first, and the purge's scan of it.
        Index("conversations_userId_deletedAt_idx", "userId", "deletedAt"),
        Index(
            "conversations_deletedAt_idx",
            "deletedAt",
            postgresql_where=text('"deletedAt" IS NOT NULL'),
        ),
        # Revision 0011: the sweep of answers whose process died starts from expired leases.
        Index(
            "conversations_generatingUntil_idx",
            "generatingUntil",
            postgresql_where=text('"generatingUntil" IS NOT NULL'),
        ),
        # Revision 0013: the few pinned rows first in the list, and the archived view.
        Index(
            "conversations_userId_updatedAt_pinned_idx",
            "userId",
            "updatedAt",
            postgresql_where=text('"pinnedAt" IS NOT NULL'),
        ),
        Index(
            "conversations_userId_updatedAt_archived_idx",
            "userId",
            "updatedAt",
            postgresql_where=text('"archivedAt" IS NOT NULL'),
        ),
    )

    id: Mapped[str] = _id_column()
    title: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("conversations"))
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", Timestamp, default=utc_now, onupdate=utc_now
    )
    # A lease: while in the future, an answer is being generated (one at a time).
    generating_until: Mapped[datetime | None] = mapped_column("generatingUntil", Timestamp)
    search_vector: Mapped[Any] = _search_vector("COALESCE(title, ''::text)")
    # Revision 0009: set while in the trash (until restored or purged).
    deleted_at: Mapped[datetime | None] = mapped_column("deletedAt", Timestamp)
    # Revision 0012: settings of this conversation (NULL: the user's or the server's default)
    # and where its title came from (`user`, `model`; NULL: the question's first words).
    system_prompt: Mapped[str | None] = mapped_column("systemPrompt", Text)
    model: Mapped[str | None] = mapped_column(Text)
    temperature: Mapped[float | None] = mapped_column(Double)
    max_output_tokens: Mapped[int | None] = mapped_column("maxOutputTokens", Integer)
    title_source: Mapped[str | None] = mapped_column("titleSource", Text)
    # Revision 0013: set while pinned (first in the list) or archived (out of the list).
    pinned_at: Mapped[datetime | None] = mapped_column("pinnedAt", Timestamp)
    archived_at: Mapped[datetime | None] = mapped_column("archivedAt", Timestamp)
    # Revision 0018: the last message of the branch shown and continued (NULL: linear order,
    # a conversation the app has not written to since Prisma did). See app/chat/branches.py.
    # No foreign key: a second relation between the two models would make Prisma demand names
    # for both, the seed's too; a leaf that is gone reads as NULL.
    current_leaf_id: Mapped[str | None] = mapped_column("currentLeafId", Text)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("messages_conversationId_createdAt_idx", "conversationId", "createdAt"),
        Index("messages_userId_createdAt_idx", "userId", "createdAt"),
        Index("messages_replyToId_idx", "replyToId"),
        Index("messages_userId_clientMessageId_key", "userId", "clientMessageId", unique=True),
        Index("messages_userId_searchVector_idx", "userId", "searchVector", postgresql_using="gin"),
        Index(
            "messages_userId_content_trgm_idx",
            "userId",
            "content",
            postgresql_using="gin",
            postgresql_ops={"content": "gin_trgm_ops"},
        ),
        Index(
            "messages_deletedAt_idx", "deletedAt", postgresql_where=text('"deletedAt" IS NOT NULL')
        ),
        Index("messages_parentId_idx", "parentId"),
    )

    id: Mapped[str] = _id_column()
    content: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    conversation_id: Mapped[str] = mapped_column(
        "conversationId",
        Text,
        ForeignKey(
            "conversations.id",
            name="messages_conversationId_fkey",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
    )
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("messages"))
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )
    # Revision 0003: how an answer came about. Prisma-written rows get the defaults.
    status: Mapped[str] = mapped_column(Text, server_default=text("'complete'"), default="complete")
    provider: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column("promptTokens", Integer)
    completion_tokens: Mapped[int | None] = mapped_column("completionTokens", Integer)
    tokens_estimated: Mapped[bool | None] = mapped_column("tokensEstimated", Boolean)
    time_to_first_token_ms: Mapped[int | None] = mapped_column("timeToFirstTokenMs", Integer)
    total_time_ms: Mapped[int | None] = mapped_column("totalTimeMs", Integer)
    finish_reason: Mapped[str | None] = mapped_column("finishReason", Text)
    error_code: Mapped[str | None] = mapped_column("errorCode", Text)
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    prompt_message_ids: Mapped[list[str] | None] = mapped_column(
        "promptMessageIds", ARRAY(Text), server_default=text("ARRAY[]::TEXT[]"), default=list
    )
    reply_to_id: Mapped[str | None] = mapped_column(
        "replyToId",
        Text,
        ForeignKey(
            "messages.id", name="messages_replyToId_fkey", ondelete="SET NULL", onupdate="CASCADE"
        ),
    )
    superseded_at: Mapped[datetime | None] = mapped_column("supersededAt", Timestamp)
    # Revision 0006: the id the client gave the question, so that a retry is not stored twice.
    client_message_id: Mapped[str | None] = mapped_column("clientMessageId", Text)
    search_vector: Mapped[Any] = _search_vector("content")
    # Revision 0009: set while in the trash; a conversation's trashing sets the same instant
    # on its messages, so its restore brings back exactly those.
    deleted_at: Mapped[datetime | None] = mapped_column("deletedAt", Timestamp)
    # Revision 0012: what an answer was made with, and the model's reasoning (never sent back
    # to a model: the history window reads `content` only).
    reasoning: Mapped[str | None] = mapped_column(Text)
    system_prompt: Mapped[str | None] = mapped_column("systemPrompt", Text)
    temperature: Mapped[float | None] = mapped_column(Double)
    max_output_tokens: Mapped[int | None] = mapped_column("maxOutputTokens", Integer)
    # Revision 0018: the message this one follows (NULL: a first message, or a row written by
    # Prisma, read in linear order). Edits and regenerations are siblings under one parent.
    parent_id: Mapped[str | None] = mapped_column(
        "parentId",
        Text,
        ForeignKey(
            "messages.id", name="messages_parentId_fkey", ondelete="SET NULL", onupdate="CASCADE"
        ),
    )


class MessageReaction(Base):
    __tablename__ = "message_reactions"
    __table_args__ = (
        Index(
            "message_reactions_messageId_userId_type_key",
            "messageId",
            "userId",
            "type",
            unique=True,
        ),
    )

    id: Mapped[str] = _id_column()
    message_id: Mapped[str] = mapped_column(
        "messageId",
        Text,
        ForeignKey(
            "messages.id",
            name="message_reactions_messageId_fkey",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
    )
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("message_reactions"))
    type: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )


class ConversationShare(Base):
    """A read-only snapshot of a conversation at a share link (revision 0014_shares). The
    link's token is not kept, only its SHA-256 (`tokenHash`)."""

    __tablename__ = "conversation_shares"
    __table_args__ = (
        Index("conversation_shares_tokenHash_key", "tokenHash", unique=True),
        Index("conversation_shares_userId_createdAt_idx", "userId", "createdAt"),
        Index("conversation_shares_conversationId_idx", "conversationId"),
    )

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("conversation_shares"))
    conversation_id: Mapped[str] = mapped_column(
        "conversationId",
        Text,
        ForeignKey(
            "conversations.id",
            name="conversation_shares_conversationId_fkey",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
    )
    token_hash: Mapped[str] = mapped_column("tokenHash", Text)
    title: Mapped[str | None] = mapped_column(Text)
    # [{role, content, model, createdAt, status}], the current version of each message.
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    message_count: Mapped[int] = mapped_column("messageCount", Integer)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )


class UserPreferences(Base):
    __tablename__ = "user_preferences"
    __table_args__ = (Index("user_preferences_userId_key", "userId", unique=True),)

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("user_preferences"))
    default_model: Mapped[str] = mapped_column(
        "defaultModel", Text, server_default=text("'groq'"), default="groq"
    )
    theme: Mapped[str] = mapped_column(Text, server_default=text("'dark'"), default="dark")
    language: Mapped[str] = mapped_column(Text, server_default=text("'en'"), default="en")
    # Revision 0008: an IANA zone name; the user's day for daily quotas (NULL: UTC).
    time_zone: Mapped[str | None] = mapped_column("timeZone", Text)
    # Revision 0012: the system prompt of conversations that set none (NULL: SYSTEM_PROMPT).
    system_prompt: Mapped[str | None] = mapped_column("systemPrompt", Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", Timestamp, default=utc_now, onupdate=utc_now
    )


class TitleUsage(Base):
    """A title a model made (or failed to make) for a conversation: its tokens count in the
    user's usage like an answer's (revision 0012)."""

    __tablename__ = "title_usages"
    __table_args__ = (
        Index("title_usages_userId_createdAt_idx", "userId", "createdAt"),
        Index("title_usages_conversationId_idx", "conversationId"),
    )

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("title_usages"))
    conversation_id: Mapped[str] = mapped_column(
        "conversationId",
        Text,
        ForeignKey(
            "conversations.id",
            name="title_usages_conversationId_fkey",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
    )
    model: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column("promptTokens", Integer)
    completion_tokens: Mapped[int | None] = mapped_column("completionTokens", Integer)
    tokens_estimated: Mapped[bool | None] = mapped_column("tokensEstimated", Boolean)
    error_code: Mapped[str | None] = mapped_column("errorCode", Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )


class Tag(Base):
    """A user's tag (revision 0013); names are unique per user whatever their case."""

    __tablename__ = "tags"

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("tags"))
    name: Mapped[str] = mapped_column(Text)
    color: Mapped[str] = mapped_column(Text, server_default=text("'#6b7280'"), default="#6b7280")
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", Timestamp, default=utc_now, onupdate=utc_now
    )


# An expression index, which Prisma cannot declare: `prisma export` lists it in a comment.
Index("tags_userId_name_key", Tag.user_id, func.lower(Tag.name), unique=True)


class ConversationTag(Base):
    """A tag on a conversation (revision 0013); `userId` scopes it like every user row."""

    __tablename__ = "conversation_tags"
    __table_args__ = (
        Index("conversation_tags_tagId_conversationId_idx", "tagId", "conversationId"),
        Index("conversation_tags_userId_idx", "userId"),
    )

    conversation_id: Mapped[str] = mapped_column(
        "conversationId",
        Text,
        ForeignKey(
            "conversations.id",
            name="conversation_tags_conversationId_fkey",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        primary_key=True,
    )
    tag_id: Mapped[str] = mapped_column(
        "tagId",
        Text,
        ForeignKey("tags.id", name="conversation_tags_tagId_fkey", ondelete="CASCADE",
                   onupdate="CASCADE"),
        primary_key=True,
    )  # fmt: skip
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("conversation_tags"))
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )


DERIVED: dict[str, Any] = {"comment": "Derived from messages by triggers; do not write."}


class UserMessageBucket(Base):
    """Messages and tokens per user per quarter hour (UTC), kept exact by triggers on
    messages (revision 0007); stats sum them into days of any time zone. Read-only here."""

    __tablename__ = "user_message_buckets"
    __table_args__ = (
        # Rows a fold left at zero messages, removed by the same fold (revision 0015).
        Index(
            "user_message_buckets_emptied_idx", "userId", postgresql_where=text('"messages" = 0')
        ),
        DERIVED,
    )

    user_id: Mapped[str] = mapped_column("userId", Text, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(BigInteger)


class UserModelUsage(Base):
    """Per user, role and model ('' for none): counts and sums that stats read, kept exact by
    triggers on messages (revision 0007). Read-only here."""

    __tablename__ = "user_model_usages"
    __table_args__ = (
        Index("user_model_usages_emptied_idx", "userId", postgresql_where=text('"messages" = 0')),
        DERIVED,
    )

    user_id: Mapped[str] = mapped_column("userId", Text, primary_key=True)
    role: Mapped[str] = mapped_column(Text, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column("promptTokens", BigInteger)
    completion_tokens: Mapped[int] = mapped_column("completionTokens", BigInteger)
    time_to_first_token_ms_total: Mapped[int] = mapped_column("timeToFirstTokenMsTotal", BigInteger)
    timed_messages: Mapped[int] = mapped_column("timedMessages", Integer)
    failed_messages: Mapped[int] = mapped_column("failedMessages", Integer)


class UserMessageBucketDelta(Base):
    """A signed change to a user_message_buckets row, appended by the triggers on messages
    (revision 0015) and folded into it by fold_stats_deltas(); stats add the unfolded ones."""

    __tablename__ = "user_message_bucket_deltas"
    __table_args__ = (Index("user_message_bucket_deltas_userId_idx", "userId"), DERIVED)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column("userId", Text)
    bucket: Mapped[datetime] = mapped_column(Timestamp)
    messages: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(BigInteger)


class UserModelUsageDelta(Base):
    """A signed change to a user_model_usages row (revision 0015); see UserMessageBucketDelta."""

    __tablename__ = "user_model_usage_deltas"
    __table_args__ = (Index("user_model_usage_deltas_userId_idx", "userId"), DERIVED)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column("userId", Text)
    role: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    messages: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column("promptTokens", BigInteger)
    completion_tokens: Mapped[int] = mapped_column("completionTokens", BigInteger)
    time_to_first_token_ms_total: Mapped[int] = mapped_column("timeToFirstTokenMsTotal", BigInteger)
    timed_messages: Mapped[int] = mapped_column("timedMessages", Integer)
    failed_messages: Mapped[int] = mapped_column("failedMessages", Integer)


class Import(Base):
    """An import of conversations from a file (revision 0016): its progress and outcome."""

    __tablename__ = "imports"
    __table_args__ = (Index("imports_userId_createdAt_idx", "userId", "createdAt"),)

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("imports"))
    source: Mapped[str] = mapped_column(Text)  # chatgpt, chatwithme
    status: Mapped[str] = mapped_column(Text)  # running, done, failed, interrupted
    total: Mapped[int | None] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    duplicates: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    messages: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    skipped: Mapped[dict[str, int]] = mapped_column(
        JSONB, server_default=text("'{}'"), default=dict
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )
    finished_at: Mapped[datetime | None] = mapped_column("finishedAt", Timestamp)
    # Renewed by the process running it (revision 0020); NULL once it has ended.
    lease_until: Mapped[datetime | None] = mapped_column("leaseUntil", Timestamp)


class ImportedConversation(Base):
    """Which conversation of a source (a ChatGPT conversation id, an exported id) became
    which conversation here: an import of the same file again skips it."""

    __tablename__ = "imported_conversations"
    __table_args__ = (Index("imported_conversations_conversationId_idx", "conversationId"),)

    user_id: Mapped[str] = mapped_column(
        "userId", Text, _user_fk("imported_conversations"), primary_key=True
    )
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    external_id: Mapped[str] = mapped_column("externalId", Text, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        "conversationId",
        Text,
        ForeignKey(
            "conversations.id",
            name="imported_conversations_conversationId_fkey",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
    )


class WritePosition(Base):
    """A user's last write position on the primary (revision 0017, UNLOGGED): their reads go
    to a replica only once it has replayed this far (app/db/replicas.py)."""

    __tablename__ = "write_positions"

    user_id: Mapped[str] = mapped_column("userId", Text, primary_key=True)
    # The primary's WAL position after the write's commit, as a byte offset (pg_lsn - '0/0').
    lsn: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", Timestamp, server_default=NOW, default=utc_now
    )


def _cascade_fk(column: str, table: str) -> ForeignKey:
    """A foreign key to `column` ("files.id") that follows deletes, named as Prisma names it."""
    local = {"files.id": "fileId", "messages.id": "messageId"}[column]
    return ForeignKey(column, name=f"{table}_{local}_fkey", ondelete="CASCADE", onupdate="CASCADE")


class File(Base):
    """An uploaded file (revision 0019): one row per content a user holds, so a file sent
    twice by the same user is stored once. `sha256` is NULL only while it is being uploaded."""

    __tablename__ = "files"
    __table_args__ = (Index("files_userId_sha256_key", "userId", "sha256", unique=True),)

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("files"))
    sha256: Mapped[str | None] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column("mediaType", Text)
    size: Mapped[int] = mapped_column(BigInteger, server_default=text("0"), default=0)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, server_default=NOW, default=utc_now
    )


class FileChunk(Base):
    """A file's bytes, in order, at most FILE_CHUNK_BYTES a row (app/files/storage.py)."""

    __tablename__ = "file_chunks"
    __table_args__ = (Index("file_chunks_userId_idx", "userId"),)

    file_id: Mapped[str] = mapped_column(
        "fileId", Text, _cascade_fk("files.id", "file_chunks"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("file_chunks"))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MessageFile(Base):
    """A file carried by a user message, in the order it was attached."""

    __tablename__ = "message_files"
    __table_args__ = (
        Index("message_files_fileId_idx", "fileId"),
        Index("message_files_userId_idx", "userId"),
    )

    message_id: Mapped[str] = mapped_column(
        "messageId", Text, _cascade_fk("messages.id", "message_files"), primary_key=True
    )
    file_id: Mapped[str] = mapped_column(
        "fileId", Text, _cascade_fk("files.id", "message_files"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column("userId", Text, _user_fk("message_files"))
    position: Mapped[int] = mapped_column(Integer)
