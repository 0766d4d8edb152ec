"""Conversations and messages: plain data access, every query scoped by the caller's userId."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from asyncpg import Record
from sqlalchemy import (
    Text,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.chat import schemas
from app.chat.branches import BranchService, Siblings
from app.db.compiled import CompiledQuery, aware_utc
from app.db.models import (
    Conversation,
    ConversationTag,
    Message,
    MessageReaction,
    Timestamp,
)
from app.files.schemas import file_info
from app.files.services import carried_by, delete_left_over, files_of
from app.lib.cursors import Keyset, Listed, encode_keyset, encode_listed
from app.lib.errors import Conflict, InvalidInput, NotFound
from app.lib.pagination import clamp
from app.lib.time import as_utc, to_naive_utc, utc_now
from app.llm.catalogue import ModelCatalogue, UnknownModel
from app.llm.types import ModelInfo, Sampling
from app.organize.services import TagService, decode_tags, tags_json
from prisma_compat import cuid

PREVIEW_CHARS = 200
MAX_CONVERSATIONS_PAGE = 100
MAX_MESSAGES_PAGE = 200
TITLE_CHARS = 60
MAX_SYSTEM_PROMPT_CHARS = 8000
MAX_TEMPERATURE = 2.0  # Groq, OpenAI and Gemini all take 0 to 2


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    """A conversation's own settings (None: not set), read when an answer begins."""

    system_prompt: str | None
    model: str | None
    temperature: float | None
    max_output_tokens: int | None
    title_source: str | None
    title: str | None
    # Not a setting: the branch an answer continues (None: linear order, see branches.py).
    current_leaf_id: str | None = None


def checked_system_prompt(value: str | None) -> str | None:
    """A system prompt as given (None: the default; "": none at all), or InvalidInput."""
    if value is not None and len(value) > MAX_SYSTEM_PROMPT_CHARS:
        raise InvalidInput(f"systemPrompt: longer than {MAX_SYSTEM_PROMPT_CHARS} characters")
    return value


def available_model(catalogue: ModelCatalogue, requested: str, field: str = "model") -> ModelInfo:
    """The model for an id or alias, or a 400 that lists the available ones."""
    try:
        return catalogue.resolve(requested)
    except UnknownModel as exc:
        raise InvalidInput(
            f"{field}: {exc.requested!r} is not available; available: {', '.join(exc.available)}"
        ) from None


def check_output_limit(model: ModelInfo, max_output_tokens: int | None) -> None:
    """A model's limit on its output, as a clear 400."""
    if max_output_tokens is not None and max_output_tokens > model.max_output_tokens:
        raise InvalidInput(
            f"maxOutputTokens: {max_output_tokens} is more than {model.id} can give "
            f"({model.max_output_tokens})"
        )


def sampling_for(settings: ConversationSettings, model: ModelInfo) -> Sampling:
    check_output_limit(model, settings.max_output_tokens)
    return Sampling(max_tokens=settings.max_output_tokens, temperature=settings.temperature)


def apply_settings(
    row: Conversation, data: schemas.ConversationSettings, catalogue: ModelCatalogue
) -> None:
    """Set what `data` gives (null: back to the default), checked against the models."""
    if data.system_prompt is not msgspec.UNSET:
        row.system_prompt = checked_system_prompt(data.system_prompt)
    if data.model is not msgspec.UNSET:
        row.model = None if data.model is None else available_model(catalogue, data.model).id
    if data.temperature is not msgspec.UNSET:
        if data.temperature is not None and not 0 <= data.temperature <= MAX_TEMPERATURE:
            raise InvalidInput(f"temperature: must be from 0 to {MAX_TEMPERATURE:g}")
        row.temperature = data.temperature
    if data.max_output_tokens is not msgspec.UNSET:
        largest = max(m.max_output_tokens for m in catalogue.models.values())
        if data.max_output_tokens is not None and not 1 <= data.max_output_tokens <= largest:
            raise InvalidInput(f"maxOutputTokens: must be from 1 to {largest}")
        row.max_output_tokens = data.max_output_tokens
    if row.model is not None and row.model in catalogue.models:
        check_output_limit(catalogue.models[row.model], row.max_output_tokens)


def title_from(message: str) -> str:
    """The first line, at most 60 characters, cut at a word boundary."""
    line = next((part.strip() for part in message.strip().splitlines() if part.strip()), "")
    if len(line) <= TITLE_CHARS:
        return line or "New conversation"
    cut = line[: TITLE_CHARS + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else line[:TITLE_CHARS]).rstrip()


def message_schema(row: Message, reactions: Sequence[str] = ()) -> schemas.Message:
    answered = row.role == "assistant"
    return schemas.Message(
        id=row.id,
        conversation_id=row.conversation_id,
        role=row.role,
        content=row.content,
        model=row.model,
        created_at=as_utc(row.created_at),
        status=row.status,
        provider=row.provider,
        usage=schemas.Usage(row.prompt_tokens, row.completion_tokens, row.tokens_estimated)
        if answered
        else None,
        time_to_first_token_ms=row.time_to_first_token_ms,
        total_time_ms=row.total_time_ms,
        finish_reason=row.finish_reason,
        error_code=row.error_code,
        reply_to_id=row.reply_to_id,
        prompt_message_ids=row.prompt_message_ids if answered else None,
        attempts=row.attempts,
        superseded_at=as_utc(row.superseded_at) if row.superseded_at else None,
        reactions=list(reactions),
        reasoning=row.reasoning,
        system_prompt=row.system_prompt,
        temperature=row.temperature,
        max_output_tokens=row.max_output_tokens,
        parent_id=row.parent_id,
    )


def with_siblings(message: schemas.Message, found: Siblings | None) -> schemas.Message:
    """The message with its place among its siblings (alone when `found` is None)."""
    ids = found.ids if found is not None else [message.id]
    return msgspec.structs.replace(
        message, sibling_ids=ids, sibling_index=ids.index(message.id), sibling_count=len(ids)
    )


def _list_part(pinned: bool, archived: bool, tagged: Any, after: bool) -> Any:
    """The ids of one part of the list (pinned or not), newest activity first, at most `size`:
    each part reads its own index (the pinned ones a partial index of only them), or, with a
    tag, the tag's conversations (`tagged`, a CTE)."""
    query: Any = (
        select(
            Conversation.id.label("id"),
            Conversation.updated_at.label("updatedAt"),
            literal_column("true" if pinned else "false").label("pinned"),
        )
        .where(
            # With a tag, the owner comes from the tag's links (see `_conversation_list`).
            Conversation.user_id == bindparam("user_id") if tagged is None else true(),
            Conversation.deleted_at.is_(None),
            Conversation.pinned_at.is_not(None) if pinned else Conversation.pinned_at.is_(None),
            Conversation.archived_at.is_not(None)
            if archived
            else Conversation.archived_at.is_(None),
        )
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        .limit(bindparam("size"))
    )
    if tagged is not None:
        query = query.select_from(tagged).join(
            Conversation,
            and_(Conversation.id == tagged.c.id, Conversation.user_id == tagged.c.owner),
        )
    if after:
        at, row_id = bindparam("at", type_=Timestamp), bindparam("row_id", type_=Text)
        query = query.where(
            or_(
                Conversation.updated_at < at,
                and_(Conversation.updated_at == at, Conversation.id < row_id),
            )
        )
    return query


def _conversation_list(archived: bool, tagged: bool, cursor: str | None) -> CompiledQuery:
    """The list of `list_for_user`: id, title, createdAt, updatedAt, count, preview, role, at,
    pinned, pinnedAt, archivedAt, tags. Pinned conversations first, then the others, each part
    by newest activity; `cursor` is None (first page), "pinned" (the page ended among the
    pinned ones) or "unpinned" (it ended after them: the pinned part is not read)."""
    # A tag's conversations first (materialized: the cost follows the tag's size), joined by
    # primary key and owner. The prepared statement's generic plan, which takes every user for
    # one of 27 conversations, otherwise read all the user's conversations and kept the tagged
    # ones: 10 to 40 ms for a tag on 5 of the heavy user's 5,000, instead of 0.3.
    tag_ids = (
        select(ConversationTag.conversation_id.label("id"), ConversationTag.user_id.label("owner"))
        .where(
            ConversationTag.tag_id == bindparam("tag_id"),
            ConversationTag.user_id == bindparam("user_id"),
        )
        .cte("tagged")
        .prefix_with("MATERIALIZED")
        if tagged
        else None
    )
    parts: list[Any] = []
    if cursor in (None, "pinned"):
        parts.append(_list_part(True, archived, tag_ids, after=cursor == "pinned"))
    parts.append(_list_part(False, archived, tag_ids, after=cursor == "unpinned"))
    both: Any = union_all(*parts) if len(parts) > 1 else parts[0]
    keys = (
        both.order_by(text('pinned DESC, "updatedAt" DESC, id DESC'))
        .limit(bindparam("size"))
        .subquery("keys")
    )
    # The last message of the branch shown: the leaf, by primary key; in a conversation read in
    # linear order (no leaf: written by Prisma), its newest message that is not a replaced
    # version. The second is gated on the leaf being NULL (a one-time filter in the plan), so
    # a conversation with a leaf reads one row.
    leaf = (
        select(
            Message.content.label("content"),
            Message.role.label("role"),
            Message.created_at.label("at"),
        )
        .where(Message.id == Conversation.current_leaf_id, Message.deleted_at.is_(None))
        .lateral("leaf")
    )
    newest = (
        select(
            Message.content.label("content"),
            Message.role.label("role"),
            Message.created_at.label("at"),
        )
        .where(
            Conversation.current_leaf_id.is_(None),
            Message.conversation_id == keys.c.id,
            Message.superseded_at.is_(None),
            Message.deleted_at.is_(None),
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
        .lateral("newest")
    )
    counted = (
        select(func.count())
        .where(Message.conversation_id == keys.c.id, Message.deleted_at.is_(None))
        .scalar_subquery()
    )
    query: Any = (
        select(
            Conversation.id,
            Conversation.title,
            aware_utc(Conversation.created_at),
            aware_utc(Conversation.updated_at),
            counted.label("message_count"),
            func.left(func.coalesce(leaf.c.content, newest.c.content), PREVIEW_CHARS).label(
                "preview"
            ),
            func.coalesce(leaf.c.role, newest.c.role).label("role"),
            aware_utc(func.coalesce(leaf.c.at, newest.c.at)).label("last_at"),
            keys.c.pinned,
            aware_utc(Conversation.pinned_at).label("pinned_at"),
            aware_utc(Conversation.archived_at).label("archived_at"),
            tags_json(Conversation.id).label("tags"),
        )
        .select_from(keys)
        .join(Conversation, Conversation.id == keys.c.id)
        .outerjoin(leaf, literal_column("true"))
        .outerjoin(newest, literal_column("true"))
        .order_by(keys.c.pinned.desc(), keys.c["updatedAt"].desc(), keys.c.id.desc())
    )
    return CompiledQuery(query)


_CONVERSATION_LISTS = {
    (archived, tagged, cursor): _conversation_list(archived, tagged, cursor)
    for archived in (False, True)
    for tagged in (False, True)
    for cursor in (None, "pinned", "unpinned")
}

# The columns of `schemas.Message`, by the names `_message_from_record` reads.
_MESSAGE_COLUMNS = (
    Message.id, Message.conversation_id, Message.role, Message.content, Message.model,
    Message.created_at, Message.status, Message.provider, Message.prompt_tokens,
    Message.completion_tokens, Message.tokens_estimated, Message.time_to_first_token_ms,
    Message.total_time_ms, Message.finish_reason, Message.error_code, Message.reply_to_id,
    Message.prompt_message_ids, Message.attempts, Message.superseded_at, Message.reasoning,
    Message.system_prompt, Message.temperature, Message.max_output_tokens, Message.parent_id,
)  # fmt: skip


_AWARE = {"created_at", "superseded_at"}  # timestamps the page gives as aware ones


def _message_page(after_cursor: bool, include_versions: bool) -> CompiledQuery:
    """A page of `MessageService.page`, newest first, each message with the caller's reactions,
    joined to the caller's conversation: no row at all when it is not theirs (or in the trash),
    one row of NULLs when it has no messages. One statement instead of three (ownership, page,
    reactions).

    The page is the conversation's messages; the conversation is the caller's (`userId` is
    bound on it). A `messages."userId"` condition as well made the prepared statement's generic
    plan combine the conversation's index with all of the user's messages and sort them whole:
    5 ms instead of 0.13 for a 2,500-message conversation. Reactions are looked up for the page
    only, after its LIMIT."""
    messages = (
        select(*(c.label(c.key) for c in _MESSAGE_COLUMNS))
        .where(Message.conversation_id == Conversation.id, Message.deleted_at.is_(None))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(bindparam("size"))
    )
    if not include_versions:
        messages = messages.where(Message.superseded_at.is_(None))
    if after_cursor:
        at, row_id = bindparam("at", type_=Timestamp), bindparam("row_id", type_=Text)
        messages = messages.where(
            or_(Message.created_at < at, and_(Message.created_at == at, Message.id < row_id))
        )
    page = messages.lateral("page")
    reactions = (
        select(MessageReaction.type)
        .where(
            MessageReaction.message_id == page.c.id,
            MessageReaction.user_id == bindparam("user_id"),
        )
        .order_by(MessageReaction.type)
        .scalar_subquery()
    )
    query = (
        select(
            *(
                aware_utc(column).label(column.key) if column.key in _AWARE else column
                for column in page.c
            ),
            func.array(reactions).label("reactions"),
        )
        .select_from(Conversation)
        .outerjoin(page, literal_column("true"))
        .where(
            Conversation.id == bindparam("conversation_id"),
            Conversation.user_id == bindparam("user_id"),
            Conversation.deleted_at.is_(None),
        )
        .order_by(page.c.created_at.desc(), page.c.id.desc())
    )
    return CompiledQuery(query)


def _branch_rows() -> CompiledQuery:
    """The messages of a branch's page by their ids (from the walk), oldest first, each with
    the caller's reactions and the ids of its siblings (the children of its parent by the
    `parentId` index; the conversation's first messages for one with no parent), scoped by
    the conversation's owner as `_message_page` is. One statement instead of four, without
    loading ORM objects: the ORM's page of a branch was a third of the app's CPU in T9."""
    sibling = aliased(Message, name="sibling")

    def siblings(same_parent: Any) -> Any:
        ids = (
            select(sibling.id)
            .where(
                sibling.conversation_id == Message.conversation_id,
                same_parent,
                sibling.deleted_at.is_(None),
            )
            .order_by(sibling.created_at, sibling.id)
            .scalar_subquery()
        )
        return func.array(ids)

    reactions = (
        select(MessageReaction.type)
        .where(
            MessageReaction.message_id == Message.id,
            MessageReaction.user_id == bindparam("user_id"),
        )
        .order_by(MessageReaction.type)
        .scalar_subquery()
    )
    query = (
        select(
            *(
                aware_utc(column).label(column.key)
                if column.key in _AWARE
                else column.label(column.key)
                for column in _MESSAGE_COLUMNS
            ),
            func.array(reactions).label("reactions"),
            case(
                (Message.parent_id.is_(None), siblings(sibling.parent_id.is_(None))),
                else_=siblings(sibling.parent_id == Message.parent_id),
            ).label("sibling_ids"),
        )
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.id == any_(bindparam("ids", type_=ARRAY(Text))),
            Message.conversation_id == bindparam("conversation_id"),
            Conversation.user_id == bindparam("user_id"),
            Conversation.deleted_at.is_(None),
        )
        .order_by(Message.created_at, Message.id)
    )
    return CompiledQuery(query)


_BRANCH_ROWS = _branch_rows()

_MESSAGE_PAGES = {
    (after, versions): _message_page(after, versions)
    for after in (False, True)
    for versions in (False, True)
}


def _with(ids: list[str], message_id: str) -> list[str]:
    return ids if message_id in ids else [*ids, message_id]


def _message_from_record(r: Record) -> schemas.Message:
    """`message_schema` for a row of `_message_page`."""
    answered = r["role"] == "assistant"
    return schemas.Message(
        id=r["id"],
        conversation_id=r["conversation_id"],
        role=r["role"],
        content=r["content"],
        model=r["model"],
        created_at=r["created_at"],
        status=r["status"],
        provider=r["provider"],
        usage=schemas.Usage(r["prompt_tokens"], r["completion_tokens"], r["tokens_estimated"])
        if answered
        else None,
        time_to_first_token_ms=r["time_to_first_token_ms"],
        total_time_ms=r["total_time_ms"],
        finish_reason=r["finish_reason"],
        error_code=r["error_code"],
        reply_to_id=r["reply_to_id"],
        prompt_message_ids=r["prompt_message_ids"] if answered else None,
        attempts=r["attempts"],
        superseded_at=r["superseded_at"],
        reactions=r["reactions"],
        reasoning=r["reasoning"],
        system_prompt=r["system_prompt"],
        temperature=r["temperature"],
        max_output_tokens=r["max_output_tokens"],
        parent_id=r["parent_id"],
    )


class ConversationService:
    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self.db = db
        self.user_id = user_id

    async def get_owned(self, conversation_id: str) -> Conversation:
        found = await self.db.scalar(
            select(Conversation).where(
                Conversation.id == conversation_id,
                Conversation.user_id == self.user_id,
                Conversation.deleted_at.is_(None),
            )
        )
        if found is None:
            raise NotFound("No such conversation.")
        return found

    async def list_for_user(
        self,
        limit: int | None,
        after: Listed | None,
        archived: bool = False,
        tag_id: str | None = None,
    ) -> schemas.ConversationPage:
        """Pinned first, then newest activity first; archived ones only with `archived`
        (and only them); with `tag_id` (one of the caller's tags, else NotFound) only those
        with that tag. One SQL statement whatever the page size."""
        size = clamp(limit, 20, MAX_CONVERSATIONS_PAGE)
        params: dict[str, Any] = {"user_id": self.user_id, "size": size + 1}
        if tag_id is not None:
            await TagService(self.db, self.user_id).get_owned(tag_id)
            params["tag_id"] = tag_id
        section = None
        if after is not None:
            section = "pinned" if after.pinned else "unpinned"
            params["at"], params["row_id"] = after.at, after.row_id
        query = _CONVERSATION_LISTS[archived, tag_id is not None, section]
        rows = await query.fetch(self.db, **params)
        page = rows[:size]
        return schemas.ConversationPage(
            conversations=[
                schemas.ConversationSummary(
                    id=r[0],
                    title=r[1],
                    created_at=r[2],
                    updated_at=r[3],
                    message_count=r[4],
                    last_message=r[5],
                    last_message_role=r[6],
                    last_message_at=r[7],
                    pinned_at=r[9],
                    archived_at=r[10],
                    tags=decode_tags(r[11]),
                )
                for r in page
            ],
            next_cursor=encode_listed(Listed(to_naive_utc(page[-1][3]), page[-1][0], page[-1][8]))
            if len(rows) > size
            else None,
        )

    async def create(
        self,
        title: str | None,
        *,
        title_source: str | None = None,
        settings: schemas.ConversationSettings | None = None,
        catalogue: ModelCatalogue | None = None,
    ) -> Conversation:
        conversation = Conversation(user_id=self.user_id, title=title, title_source=title_source)
        if settings is not None and catalogue is not None:
            apply_settings(conversation, settings, catalogue)
        self.db.add(conversation)
        await self.db.flush()
        return conversation

    async def ensure(self, conversation_id: str, title: str | None) -> None:
        """Create the conversation with the client's id on first use; someone else's id is
        NotFound, exactly like an unknown one."""
        now = utc_now()
        created = await self.db.scalar(
            insert(Conversation)
            .values(
                id=conversation_id, user_id=self.user_id, title=title, created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(Conversation.id)
        )  # fmt: skip
        if created is None:
            await self.get_owned(conversation_id)

    async def update(
        self,
        conversation_id: str,
        data: schemas.ConversationSettings,
        catalogue: ModelCatalogue,
        title: str | msgspec.UnsetType | None = msgspec.UNSET,
    ) -> Conversation:
        """Rename it (a title you set is never replaced by a model's) and change settings."""
        conversation = await self.get_owned(conversation_id)
        if title is not msgspec.UNSET:
            conversation.title = title
            conversation.title_source = "user" if title else None
        apply_settings(conversation, data, catalogue)
        conversation.updated_at = utc_now()
        await self.db.flush()
        return conversation

    async def set_title(self, conversation_id: str, title: str, source: str | None) -> None:
        """A title that is no activity (the list's order stays)."""
        await self.db.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.user_id == self.user_id)
            .values(title=title, title_source=source, updated_at=Conversation.updated_at)
        )

    async def delete(self, conversation_id: str, permanent: bool = False) -> None:
        """Into the trash with its messages (one instant for all, so that a restore brings
        back exactly those), or, `permanent`, gone at once (also from the trash)."""
        if permanent:
            in_it = select(Message.id).where(
                Message.conversation_id == conversation_id, Message.user_id == self.user_id
            )
            file_ids = list(await self.db.scalars(carried_by(in_it)))
            gone = await self.db.scalar(
                delete(Conversation)
                .where(Conversation.id == conversation_id, Conversation.user_id == self.user_id)
                .returning(Conversation.id)
            )
            if gone is None:
                raise NotFound("No such conversation.")
            await delete_left_over(self.db, file_ids)
            return
        now = utc_now()
        gone = await self.db.scalar(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.user_id == self.user_id,
                Conversation.deleted_at.is_(None),
            )
            # Trashing is no activity: updatedAt stays, and comes back as it was.
            .values(deleted_at=now, updated_at=Conversation.updated_at)
            .returning(Conversation.id)
        )
        if gone is None:
            raise NotFound("No such conversation.")
        await self.db.execute(
            update(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.user_id == self.user_id,
                Message.deleted_at.is_(None),
            )
            .values(deleted_at=now)
        )

    async def trash(self, limit: int | None, after: Keyset | None) -> schemas.TrashPage:
        """The user's trashed conversations, newest deletion first."""
        size = clamp(limit, 20, MAX_CONVERSATIONS_PAGE)
        counted = (
            select(func.count())
            .where(
                Message.conversation_id == Conversation.id,
                Message.deleted_at == Conversation.deleted_at,
            )
            .scalar_subquery()
        )
        query = (
            select(Conversation, counted.label("message_count"))
            .where(Conversation.user_id == self.user_id, Conversation.deleted_at.is_not(None))
            .order_by(Conversation.deleted_at.desc(), Conversation.id.desc())
            .limit(size + 1)
        )
        if after is not None:
            query = query.where(
                or_(
                    Conversation.deleted_at < after.at,
                    and_(Conversation.deleted_at == after.at, Conversation.id < after.row_id),
                )
            )
        rows = (await self.db.execute(query)).all()
        page = rows[:size]
        return schemas.TrashPage(
            conversations=[
                schemas.TrashedConversation(
                    id=row.id,
                    title=row.title,
                    created_at=as_utc(row.created_at),
                    updated_at=as_utc(row.updated_at),
                    deleted_at=as_utc(row.deleted_at),
                    message_count=count,
                )
                for row, count in page
            ],
            next_cursor=encode_keyset(page[-1][0].deleted_at, page[-1][0].id)
            if len(rows) > size
            else None,
        )

    async def restore(self, conversation_id: str) -> Conversation:
        """Out of the trash, with the messages trashed with it (not those deleted before)."""
        before = Conversation.__table__.alias("before")
        trashed_at = await self.db.scalar(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.user_id == self.user_id,
                Conversation.deleted_at.is_not(None),
            )
            .values(deleted_at=None, updated_at=Conversation.updated_at)
            # A subquery in RETURNING reads the row as it was before this statement.
            .returning(
                select(before.c.deletedAt).where(before.c.id == conversation_id).scalar_subquery()
            )
        )
        if trashed_at is None:
            raise NotFound("No such conversation in the trash.")
        await self.db.execute(
            update(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.user_id == self.user_id,
                Message.deleted_at == trashed_at,
            )
            .values(deleted_at=None)
        )
        return await self.get_owned(conversation_id)

    async def start_generation(
        self, conversation_id: str, lease: timedelta
    ) -> ConversationSettings:
        """Take the conversation's generation lease, or refuse: one answer at a time. Taking
        it is activity: the conversation moves to the top of the list. Returns its settings."""
        now = utc_now()
        params = {"cid": conversation_id, "user_id": self.user_id, "now": now}
        taken = (await self.db.execute(_TAKE_LEASE, params | {"until": now + lease})).first()
        if taken is None:
            await self.get_owned(conversation_id)  # NotFound when it is not theirs
            raise Conflict("An answer is already being generated in this conversation.")
        if taken.until is not None:
            # The lease ran out without a release: the answer it covered lost its process.
            await self.db.execute(
                update(Message)
                .where(Message.conversation_id == conversation_id, Message.status == "streaming")
                .values(status="incomplete", error_code="interrupted")
            )
        return ConversationSettings(*taken[1:])


def _take_lease() -> Any:
    """The conversation's generation lease, taken if free or run out; built once (building
    it per chat was a tenth of the chat's start, issue 22)."""
    earlier = (
        select(Conversation.id, Conversation.generating_until.label("until"))
        .where(
            Conversation.id == bindparam("cid"),
            Conversation.user_id == bindparam("user_id"),
            Conversation.deleted_at.is_(None),
        )
        .with_for_update()
        .cte("earlier")
    )
    return (
        update(Conversation)
        .where(
            Conversation.id == earlier.c.id,
            or_(earlier.c.until.is_(None), earlier.c.until < bindparam("now")),
        )
        # A new message takes the conversation out of the archive, as other apps do.
        .values(generating_until=bindparam("until"), updated_at=bindparam("now"), archived_at=None)
        .returning(
            earlier.c.until,
            Conversation.system_prompt,
            Conversation.model,
            Conversation.temperature,
            Conversation.max_output_tokens,
            Conversation.title_source,
            Conversation.title,
            Conversation.current_leaf_id,
        )
    )


_TAKE_LEASE = _take_lease()


class MessageService:
    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self.db = db
        self.user_id = user_id

    def _owned(self) -> Any:
        return Message.user_id == self.user_id

    def _live(self) -> Any:
        """The caller's messages that are not in the trash."""
        return and_(Message.user_id == self.user_id, Message.deleted_at.is_(None))

    async def page(
        self,
        conversation_id: str,
        before: Keyset | None,
        limit: int | None,
        include_versions: bool = False,
    ) -> schemas.MessagePage:
        """The newest page before the cursor, in chronological order, with your reactions and
        each message's siblings: the branch shown (its leaf and ancestors), or, for a
        conversation read in linear order, its messages that are not replaced versions.
        `include_versions` adds the other versions of each answer. NotFound unless the
        conversation is yours and not in the trash."""
        size = clamp(limit, 50, MAX_MESSAGES_PAGE)
        branches = BranchService(self.db, self.user_id)
        leaf = await branches.leaf_of(conversation_id)
        if leaf is not None:
            start, skip = (before.row_id, True) if before is not None else (leaf, False)
            ids = await branches.branch_ids(conversation_id, start, size + 1, skip_start=skip)
            if ids or before is not None:
                return await self._branch_page(conversation_id, ids, size, include_versions)
            # The leaf is gone (purged): read the conversation in linear order.
        params: dict[str, Any] = {
            "user_id": self.user_id,
            "conversation_id": conversation_id,
            "size": size + 1,
        }
        if before is not None:
            params["at"], params["row_id"] = before
        query = _MESSAGE_PAGES[before is not None, include_versions]
        rows = await query.fetch(self.db, **params)
        if not rows:
            raise NotFound("No such conversation.")
        if rows[0]["id"] is None:
            rows = []  # the conversation is yours, and has no messages (before the cursor)
        page = rows[:size]
        page.reverse()
        messages = [with_siblings(_message_from_record(r), None) for r in page]
        await self.add_files(messages)
        return schemas.MessagePage(
            messages=messages,
            next_cursor=encode_keyset(to_naive_utc(page[0]["created_at"]), page[0]["id"])
            if len(rows) > size
            else None,
        )

    async def add_files(self, messages: Sequence[schemas.Message]) -> None:
        """Fill in the files the user messages among `messages` carry."""
        carried = await files_of(
            self.db, self.user_id, [m.id for m in messages if m.role == "user"]
        )
        for message in messages:
            message.files = [file_info(f) for f in carried.get(message.id, [])]

    async def _branch_page(
        self, conversation_id: str, ids: list[str], size: int, include_versions: bool
    ) -> schemas.MessagePage:
        """The page of a branch from the ids of the walk (newest first, one more than `size`
        when there are older ones)."""
        shown = ids[:size]
        if not include_versions:
            found = await _BRANCH_ROWS.fetch(
                self.db, ids=shown, conversation_id=conversation_id, user_id=self.user_id
            )
            messages = [
                with_siblings(
                    _message_from_record(r),
                    Siblings(r["id"], r["parent_id"], _with(r["sibling_ids"], r["id"])),
                )
                for r in found
            ]
            await self.add_files(messages)
            first = next((r for r in found if r["id"] == shown[-1]), None) if shown else None
            return schemas.MessagePage(
                messages=messages,
                next_cursor=encode_keyset(to_naive_utc(first["created_at"]), first["id"])
                if first is not None and len(ids) > size
                else None,
            )
        rows = list(
            await self.db.scalars(
                select(Message).where(Message.id.in_(shown), Message.user_id == self.user_id)
            )
        )
        siblings = await BranchService(self.db, self.user_id).siblings(conversation_id, rows)
        if include_versions:
            versions = {
                other
                for row in rows
                if row.role == "assistant"
                for other in siblings[row.id].ids
                if other != row.id
            }
            if versions:
                rows += list(
                    await self.db.scalars(
                        select(Message).where(
                            Message.id.in_(versions), Message.user_id == self.user_id
                        )
                    )
                )
                siblings |= await BranchService(self.db, self.user_id).siblings(
                    conversation_id, rows
                )
        rows.sort(key=lambda m: (m.created_at, m.id))
        reactions = await self.reactions_for([m.id for m in rows])
        oldest = next((m for m in rows if m.id == shown[-1]), None) if shown else None
        messages = [
            with_siblings(message_schema(m, reactions.get(m.id, [])), siblings.get(m.id))
            for m in rows
        ]
        await self.add_files(messages)
        return schemas.MessagePage(
            messages=messages,
            next_cursor=encode_keyset(oldest.created_at, oldest.id)
            if oldest is not None and len(ids) > size
            else None,
        )

    async def all_in(self, conversation_id: str) -> list[Message]:
        return list(
            await self.db.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id, self._live())
                .order_by(Message.created_at, Message.id)
            )
        )

    async def add_user_message(
        self,
        conversation_id: str,
        content: str,
        client_message_id: str | None = None,
        parent_id: str | None = None,
    ) -> Message:
        """A question following `parent_id` (the branch's leaf; for an edit, the parent of
        the question edited)."""
        message = Message(
            conversation_id=conversation_id,
            user_id=self.user_id,
            role="user",
            content=content,
            client_message_id=client_message_id,
            parent_id=parent_id,
        )
        self.db.add(message)
        await self.db.flush()
        return message

    async def add_answer(
        self,
        question: Message,
        model: str,
        provider: str,
        prompt_message_ids: list[str],
        sampling: Sampling,
        system_prompt: str | None,
    ) -> Message:
        """The assistant row of an answer about to be generated (status `streaming`)."""
        # Strictly after the question, so that (createdAt, id) orders the two.
        created_at = max(utc_now(), question.created_at + timedelta(milliseconds=1))
        answer = Message(
            conversation_id=question.conversation_id,
            user_id=self.user_id,
            role="assistant",
            content="",
            model=model,
            provider=provider,
            status="streaming",
            prompt_message_ids=prompt_message_ids,
            reply_to_id=question.id,
            parent_id=question.id,
            created_at=created_at,
            system_prompt=system_prompt,
            temperature=sampling.temperature,
            max_output_tokens=sampling.max_tokens,
        )
        self.db.add(answer)
        await self.db.flush()
        return answer

    async def by_client_id(self, client_message_id: str) -> Message | None:
        return await self.db.scalar(
            select(Message).where(self._owned(), Message.client_message_id == client_message_id)
        )

    async def answer_to(self, question_id: str) -> Message | None:
        """The current answer to a question (not a replaced version)."""
        return await self.db.scalar(
            select(Message)
            .where(
                self._owned(), Message.reply_to_id == question_id, Message.superseded_at.is_(None)
            )
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )

    async def wait_until_stored(self, answer_id: str, seconds: float = 5.0) -> Message | None:
        """The answer once its last write is in (or as it stands after `seconds`)."""
        deadline = time.monotonic() + seconds
        while True:
            row = await self.db.scalar(
                select(Message)
                .where(self._owned(), Message.id == answer_id)
                .execution_options(populate_existing=True)
            )
            await self.db.commit()  # a fresh snapshot each time, and no transaction held
            done = row is None or row.total_time_ms is not None
            if done or time.monotonic() > deadline:
                return row
            await asyncio.sleep(0.05)

    async def streaming_answer(self, conversation_id: str) -> Message | None:
        """The answer being generated in the conversation, if its lease still runs."""
        return await self.db.scalar(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                self._owned(),
                Message.conversation_id == conversation_id,
                Message.status == "streaming",
                Conversation.generating_until > utc_now(),
            )
            .order_by(Message.created_at.desc())
            .limit(1)
        )

    async def any_in(self, conversation_id: str) -> bool:
        """Whether the conversation has any message (trashed ones too: it is not new)."""
        found = await self.db.scalar(
            select(Message.id).where(Message.conversation_id == conversation_id).limit(1)
        )
        return found is not None

    async def first_question(self, conversation_id: str) -> str:
        """The text of the conversation's first user message (what a title is made from)."""
        found = await self.db.scalar(
            select(Message.content)
            .where(Message.conversation_id == conversation_id, self._live(), Message.role == "user")
            .order_by(Message.created_at, Message.id)
            .limit(1)
        )
        if found is None:
            raise InvalidInput("This conversation has no message to make a title from.")
        return found

    async def supersede_answers_to(self, message_id: str) -> None:
        await self.db.execute(
            update(Message)
            .where(
                Message.reply_to_id == message_id,
                self._owned(),
                Message.superseded_at.is_(None),
            )
            .values(superseded_at=utc_now())
        )

    async def delete_owned(self, message_id: str) -> None:
        """Into the trash (purged with the rest of it). When it ends the branch shown, the
        branch ends at its parent instead: the list previews, and the next message follows,
        what is still there."""
        gone = (
            await self.db.execute(
                update(Message)
                .where(Message.id == message_id, self._live())
                .values(deleted_at=utc_now())
                .returning(Message.conversation_id, Message.parent_id)
            )
        ).first()
        if gone is None:
            raise NotFound("No such message.")
        # The nearest live ancestor (its parent may be in the trash too), else the newest
        # live message; nothing live left: the leaf stays, and the next question is a root.
        leaf = await BranchService(self.db, self.user_id).live_leaf(
            gone.conversation_id, message_id
        )
        if leaf is not None:
            await self.db.execute(
                update(Conversation)
                .where(
                    Conversation.id == gone.conversation_id,
                    Conversation.user_id == self.user_id,
                    Conversation.current_leaf_id == message_id,
                )
                .values(current_leaf_id=leaf, updated_at=Conversation.updated_at)
            )

    async def _require_owned(self, message_id: str) -> None:
        found = await self.db.scalar(
            select(Message.id).where(Message.id == message_id, self._live())
        )
        if found is None:
            raise NotFound("No such message.")

    async def react(self, message_id: str, kind: str) -> None:
        await self._require_owned(message_id)
        await self.db.execute(
            insert(MessageReaction)
            .values(id=cuid(), message_id=message_id, user_id=self.user_id, type=kind)
            .on_conflict_do_nothing(index_elements=["messageId", "userId", "type"])
        )

    async def unreact(self, message_id: str, kind: str) -> None:
        await self._require_owned(message_id)
        await self.db.execute(
            delete(MessageReaction).where(
                MessageReaction.message_id == message_id,
                MessageReaction.user_id == self.user_id,
                MessageReaction.type == kind,
            )
        )

    async def reactions_for(self, message_ids: list[str]) -> dict[str, list[str]]:
        if not message_ids:
            return {}
        rows = await self.db.execute(
            select(MessageReaction.message_id, MessageReaction.type)
            .where(
                MessageReaction.message_id.in_(message_ids),
                MessageReaction.user_id == self.user_id,
            )
            .order_by(MessageReaction.type)
        )
        found: dict[str, list[str]] = {}
        for message_id, kind in rows:
            found.setdefault(message_id, []).append(kind)
        return found
