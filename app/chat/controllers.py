"""`/api/chat`, `/api/conversations`, `/api/messages`: thin handlers over the chat services."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.guard import CurrentIdentity
from app.chat import schemas
from app.chat.admission import Admission
from app.chat.attachments import file_refs
from app.chat.branches import BranchService
from app.chat.flow import ChatFlow, Exchange
from app.chat.services import ConversationService, MessageService, message_schema
from app.chat.streams import event_stream, ui_message_stream, ui_question
from app.db.models import Conversation
from app.db.routing import Reads
from app.lib.cursors import decode_keyset, decode_listed
from app.lib.deps import AppSettings, DbSession
from app.lib.errors import InvalidInput
from app.lib.openapi import also_as, problems, success
from app.lib.rate_limit import RateLimiter
from app.lib.time import as_utc
from app.llm.router import ModelRouter
from app.organize.schemas import TagRef
from app.organize.services import tags_of

CHAT_MAX_BODY_BYTES = 16 * 1024 * 1024
FlowDep = NamedDependency[ChatFlow]
RouterDep = NamedDependency[ModelRouter]
Format = Annotated[str, QueryParameter(name="format", pattern="^(json|markdown)$")]


def _wants_stream(request: Request[Any, Any, Any], asked: bool | None) -> bool:
    if asked is not None:
        return asked
    return "text/event-stream" in request.headers.get("accept", "")


async def _answer(exchange: Exchange, stream: bool) -> Response[Any] | Stream:
    """JSON once the answer has ended, or this API's events as it is generated."""
    if stream:
        return event_stream(exchange)
    ended = await exchange.ended_and_stored()
    assert exchange.user_message is not None
    return Response(
        schemas.ChatResult(
            conversation_id=exchange.conversation_id,
            user_message=exchange.user_message,
            ai_message=ended.message,
        )
    )


@post(
    "/api/chat",
    tags=["chat"],
    status_code=200,
    responses={
        **success(
            schemas.ChatResult,
            "The stored exchange (JSON, once the answer has ended); with `stream` or "
            "`Accept: text/event-stream` this API's events; with the AI SDK's body the AI "
            "SDK's UI message stream (v1)",
        ),
        **problems(
            400,
            404,
            409,
            413,
            429,
            503,
            s400="Bad input, also more than FILES_PER_MESSAGE files, or a file the model "
            "cannot take (the detail names the models that can)",
            s404="No such conversation or file (or not yours)",
            s503="The server is answering as many chats as it can, or the database is "
            "unavailable: retry after `Retry-After` seconds (nothing was stored)",
        ),
    },
    opt={**also_as("text/event-stream"), "admission": True},
    # Room for one file of FILE_MAX_BYTES' default as an AI SDK `data:` URL (base64: 4/3 of
    # it), as the `ai` client sends files; larger or more go through POST /api/files first.
    request_max_body_size=CHAT_MAX_BODY_BYTES,
)
async def chat(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    identity: CurrentIdentity,
    flow: FlowDep,
    data: JSONBody[schemas.ChatRequest],
) -> Response[Any] | Stream:
    """Store the message, start the answer, and answer with JSON or a stream.

    This API's body (`message` text) gives JSON or server-sent events; the AI SDK's body
    (`id` and UIMessages) gives the AI SDK's UI message stream. The answer is generated to its
    end even if the client goes away."""
    limiter: RateLimiter = request.app.state.chat_limiter
    await limiter.hit(identity.user_id, "chat messages")
    admission: Admission = request.app.state.chat_admission
    if data.speaks_ai_sdk:
        if data.id is None:
            raise InvalidInput("id: required (the chat id)")
        if data.trigger == "regenerate-message":
            async with admission.turn(request.scope, db_session):
                exchange = await flow.regenerate(db_session, identity.user_id, data.id, data.model)
        elif data.message_id is not None:
            # `sendMessage({text, messageId})`: the edit of an earlier question.
            text, _, _ = ui_question(data)
            async with admission.turn(request.scope, db_session):
                exchange = await flow.edit(
                    db_session, identity.user_id, data.id, data.message_id, text, data.model
                )
        else:
            text, client_id, parts = ui_question(data)
            files = file_refs(data.files, parts, flow.settings)
            async with admission.turn(request.scope, db_session):
                exchange = await flow.ask(
                    db_session, identity.user_id, text, data.id, data.model,
                    client_message_id=client_id, create_conversation=True, files=files,
                )  # fmt: skip
        return ui_message_stream(exchange)
    if not isinstance(data.message, str):
        raise InvalidInput("message: required")
    async with admission.turn(request.scope, db_session):
        exchange = await flow.ask(
            db_session,
            identity.user_id,
            data.message,
            data.conversation_id,
            data.model,
            client_message_id=data.client_message_id,
            files=file_refs(data.files, (), flow.settings),
        )
    return await _answer(exchange, _wants_stream(request, data.stream))


@get(
    "/api/chat/{conversation_id:str}/stream",
    tags=["chat"],
    responses={
        200: ResponseSpec(
            str,
            description="The answer so far, then live to its end: the AI SDK's UI message "
            "stream (`format=ui`) or this API's events (`format=events`)",
            media_type="text/event-stream",
            generate_examples=False,
        ),
        204: ResponseSpec(None, description="Nothing is being generated"),
    },
)
async def resume_chat(
    db_session: DbSession,
    identity: CurrentIdentity,
    flow: FlowDep,
    conversation_id: FromPath[str],
    format: Annotated[str, QueryParameter(pattern="^(ui|events)$")] = "ui",
) -> Response[Any] | Stream:
    """Re-attach to the answer being generated (by any app process): everything so far, then
    live to the end. `204` when nothing is being generated, for any id (another user's too).
    The AI SDK's resume request."""
    exchange = await flow.resumable(db_session, identity.user_id, conversation_id)
    if exchange is None:
        return Response(None, status_code=204)
    await db_session.commit()  # hold no transaction while following
    return ui_message_stream(exchange) if format == "ui" else event_stream(exchange)


@post(
    "/api/chat/{conversation_id:str}/stop",
    tags=["chat"],
    status_code=200,
    responses=problems(404),
)
async def stop_chat(
    db_session: DbSession, identity: CurrentIdentity, flow: FlowDep, conversation_id: FromPath[str]
) -> schemas.StopResult:
    """Stop the answer being generated (by any app process); its text so far is kept with
    status `cancelled`."""
    stopped = await flow.stop(db_session, identity.user_id, conversation_id)
    return schemas.StopResult(
        stopped=stopped is not None, message=message_schema(stopped) if stopped else None
    )


class ConversationController(Controller):
    path = "/api/conversations"
    tags = ["conversations"]

    @get("/", responses=problems(404, s404="No such tag (or not yours)"))
    async def list_conversations(
        self,
        reads: Reads,
        identity: CurrentIdentity,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
        archived: FromQuery[bool] = False,
        tag: Annotated[str | None, QueryParameter(min_length=1, max_length=255)] = None,
    ) -> schemas.ConversationPage:
        """Pinned first, then newest activity first; pass `nextCursor` back as `cursor` for
        the next page. `archived=true`: the archived ones (only them); `tag`: only those
        with that tag (a tag id: another user's is a 404)."""
        after = decode_listed(cursor)
        return await reads.run(
            lambda db: ConversationService(db, identity.user_id).list_for_user(
                limit, after, archived, tag
            )
        )

    @post("/", status_code=201)
    async def create_conversation(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        settings: AppSettings,
        router: RouterDep,
        data: JSONBody[schemas.ConversationCreate | None] = None,
    ) -> schemas.ConversationDetail:
        """A new, empty conversation; the body (its `title` and settings: `systemPrompt`,
        `model`, `temperature`, `maxOutputTokens`) may be left out."""
        data = data or schemas.ConversationCreate()
        title = _title(data.title, settings)
        row = await ConversationService(db_session, identity.user_id).create(
            title, title_source="user" if title else None, settings=data,
            catalogue=router.catalogue,
        )  # fmt: skip
        return _detail(row)

    @get("/{conversation_id:str}")
    async def get_conversation(
        self,
        reads: Reads,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        limit: FromQuery[int | None] = None,
    ) -> schemas.ConversationDetail:
        """The conversation with its latest page of messages."""

        async def read(db: AsyncSession) -> schemas.ConversationDetail:
            row = await ConversationService(db, identity.user_id).get_owned(conversation_id)
            page = await MessageService(db, identity.user_id).page(row.id, None, limit)
            return _detail(row, page, await tags_of(db, identity.user_id, [row.id]))

        return await reads.run(read)

    @patch("/{conversation_id:str}")
    async def rename_conversation(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        settings: AppSettings,
        router: RouterDep,
        conversation_id: FromPath[str],
        data: JSONBody[schemas.ConversationUpdate],
    ) -> schemas.ConversationDetail:
        """Rename it (`title`: null or blank clears the title; a title you set is never
        replaced by a model's) and change its settings (left out: unchanged; null: back to
        the default)."""
        if all(getattr(data, f) is msgspec.UNSET for f in data.__struct_fields__):
            raise InvalidInput(
                "title, systemPrompt, model, temperature or maxOutputTokens: required"
            )
        service = ConversationService(db_session, identity.user_id)
        title = data.title if data.title is msgspec.UNSET else _title(data.title, settings)
        row = await service.update(conversation_id, data, router.catalogue, title)
        return _detail(row, tags=await tags_of(db_session, identity.user_id, [row.id]))

    @post(
        "/{conversation_id:str}/title",
        status_code=200,
        responses=problems(
            400, 404, 429, 502, s502="The title model failed; the title is unchanged"
        ),
    )
    async def make_title(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        identity: CurrentIdentity,
        flow: FlowDep,
        conversation_id: FromPath[str],
    ) -> schemas.TitleResult:
        """Have the title model (`TITLE_MODEL`) title the conversation again, from its first
        question; it replaces the title, yours too. A model call: rate-limited and counted
        against the daily quota as chat messages are."""
        limiter: RateLimiter = request.app.state.chat_limiter
        await limiter.hit(identity.user_id, "chat messages")
        return await flow.retitle(db_session, identity.user_id, conversation_id)

    @get("/trash")
    async def list_trash(
        self,
        reads: Reads,
        identity: CurrentIdentity,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> schemas.TrashPage:
        """Deleted conversations, newest deletion first, until restored or purged (after
        `TRASH_RETENTION_DAYS`); pass `nextCursor` back as `cursor` for the next page."""
        after = decode_keyset(cursor)
        return await reads.run(
            lambda db: ConversationService(db, identity.user_id).trash(limit, after)
        )

    @delete("/{conversation_id:str}", status_code=204)
    async def delete_conversation(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        permanent: FromQuery[bool] = False,
    ) -> None:
        """Move it with its messages to the trash; `permanent=true` deletes it for good at
        once (also one already in the trash)."""
        await ConversationService(db_session, identity.user_id).delete(conversation_id, permanent)

    @post("/{conversation_id:str}/restore", status_code=200)
    async def restore_conversation(
        self, db_session: DbSession, identity: CurrentIdentity, conversation_id: FromPath[str]
    ) -> schemas.ConversationDetail:
        """Bring it back from the trash with the messages deleted with it."""
        row = await ConversationService(db_session, identity.user_id).restore(conversation_id)
        page = await MessageService(db_session, identity.user_id).page(row.id, None, None)
        return _detail(row, page, await tags_of(db_session, identity.user_id, [row.id]))

    @get("/{conversation_id:str}/messages")
    async def list_messages(
        self,
        reads: Reads,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        before: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
        include_versions: Annotated[bool, QueryParameter(name="includeVersions")] = False,
    ) -> schemas.MessagePage:
        """A page of messages in chronological order; `before` = `nextCursor` for older ones."""
        after = decode_keyset(before, "before")
        return await reads.run(
            lambda db: MessageService(db, identity.user_id).page(
                conversation_id, after, limit, include_versions
            )
        )

    @post(
        "/{conversation_id:str}/regenerate",
        status_code=200,
        responses={
            **success(schemas.ChatResult, "The new answer (JSON), or its events as they come"),
            **problems(409, 429, 503),
        },
        opt={**also_as("text/event-stream"), "admission": True},
    )
    async def regenerate(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        identity: CurrentIdentity,
        flow: FlowDep,
        conversation_id: FromPath[str],
        data: JSONBody[schemas.RegenerateRequest | None] = None,
    ) -> Response[Any] | Stream:
        """Answer the last user message again; the earlier answer is kept as a version."""
        limiter: RateLimiter = request.app.state.chat_limiter
        await limiter.hit(identity.user_id, "chat messages")
        admission: Admission = request.app.state.chat_admission
        async with admission.turn(request.scope, db_session):
            exchange = await flow.regenerate(
                db_session, identity.user_id, conversation_id, data.model if data else None
            )
        return await _answer(exchange, _wants_stream(request, data.stream if data else None))

    @post(
        "/{conversation_id:str}/messages/{message_id:str}/edit",
        status_code=200,
        responses={
            **success(
                schemas.ChatResult,
                "The edited question (a new sibling of the old one) and its answer (JSON); "
                "this API's events with `stream` or `Accept: text/event-stream`; the AI "
                "SDK's UI message stream with `format=ui`",
            ),
            **problems(
                400, 404, 409, 429, 503,
                s400="Empty or too long, or the message is an answer",
                s404="No such conversation or message (or not yours, or in the trash)",
            ),
        },
        opt={**also_as("text/event-stream"), "admission": True},
    )  # fmt: skip
    async def edit_message(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        identity: CurrentIdentity,
        flow: FlowDep,
        conversation_id: FromPath[str],
        message_id: FromPath[str],
        data: JSONBody[schemas.EditRequest],
        stream_format: Annotated[
            str | None, QueryParameter(name="format", pattern="^(ui|events)$")
        ] = None,
    ) -> Response[Any] | Stream:
        """Edit an earlier question of yours: a new branch from that point, answered as chat
        does; the old branch stays whole (switch back with `POST .../branch`)."""
        limiter: RateLimiter = request.app.state.chat_limiter
        await limiter.hit(identity.user_id, "chat messages")
        admission: Admission = request.app.state.chat_admission
        async with admission.turn(request.scope, db_session):
            exchange = await flow.edit(
                db_session, identity.user_id, conversation_id, message_id, data.message,
                data.model,
            )  # fmt: skip
        if stream_format == "ui":
            return ui_message_stream(exchange)
        wants = True if stream_format == "events" else _wants_stream(request, data.stream)
        return await _answer(exchange, wants)

    @get(
        "/{conversation_id:str}/messages/{message_id:str}/branches",
        responses=problems(404, s404="No such message in this conversation (or not yours)"),
    )
    async def message_branches(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        message_id: FromPath[str],
    ) -> schemas.Branches:
        """The message among its siblings (the edits of a question, the versions of an
        answer), oldest first: `index` of `count`."""
        branches = BranchService(db_session, identity.user_id)
        await branches.leaf_of(conversation_id)  # NotFound unless the conversation is yours
        found = await branches.siblings_of(conversation_id, message_id)
        return schemas.Branches(
            message_id=found.message_id, parent_id=found.parent_id, siblings=found.ids,
            index=found.index, count=len(found.ids),
        )  # fmt: skip

    @post(
        "/{conversation_id:str}/branch",
        status_code=200,
        responses=problems(404, s404="No such message in this conversation (or not yours)"),
    )
    async def select_branch(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        data: JSONBody[schemas.BranchSelect],
        limit: FromQuery[int | None] = None,
    ) -> schemas.ConversationDetail:
        """Show the branch through `messageId`, down to its newest leaf; the next message
        continues it. Answers the conversation with that branch's latest page."""
        await BranchService(db_session, identity.user_id).select(conversation_id, data.message_id)
        row = await ConversationService(db_session, identity.user_id).get_owned(conversation_id)
        page = await MessageService(db_session, identity.user_id).page(row.id, None, limit)
        return _detail(row, page, await tags_of(db_session, identity.user_id, [row.id]))

    @get(
        "/{conversation_id:str}/export",
        responses=success(schemas.ConversationExport, "A download: JSON, or Markdown"),
        opt=also_as("text/markdown"),
    )
    async def export_conversation(
        self,
        reads: Reads,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        format: Format = "json",
    ) -> Response[Any]:
        """The whole conversation: as JSON every message, every branch (each with `parentId`,
        and the conversation's `currentLeafId`); as Markdown the branch shown."""

        async def read(
            db: AsyncSession,
        ) -> tuple[Conversation, list[schemas.Message], dict[str, list[TagRef]], set[str] | None]:
            row = await ConversationService(db, identity.user_id).get_owned(conversation_id)
            service = MessageService(db, identity.user_id)
            messages = [message_schema(m) for m in await service.all_in(row.id)]
            await service.add_files(messages)
            shown = await BranchService(db, identity.user_id).shown_ids(row.id)
            return row, messages, await tags_of(db, identity.user_id, [row.id]), shown

        row, messages, tags, shown = await reads.run(read)
        filename = f"conversation-{row.id}"
        if format == "markdown":
            lines = [f"# {row.title or 'Conversation'}", ""]
            for m in messages:
                if m.id not in shown if shown is not None else m.superseded_at is not None:
                    continue
                who = "You" if m.role == "user" else f"Assistant ({m.model or 'unknown model'})"
                lines += [f"## {who} - {m.created_at:%Y-%m-%d %H:%M} UTC", "", m.content, ""]
                lines += [f"- Attached: [{f.name}]({f.url}) ({f.media_type})" for f in m.files]
                lines += [""] if m.files else []
            return Response(
                "\n".join(lines),
                media_type="text/markdown",  # Litestar adds `; charset=utf-8` to text types
                headers={"Content-Disposition": f'attachment; filename="{filename}.md"'},
            )
        body = schemas.ConversationExport(
            id=row.id,
            title=row.title,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            messages=messages,
            current_leaf_id=row.current_leaf_id,
            **_labels(row, tags),
        )
        return Response(
            body, headers={"Content-Disposition": f'attachment; filename="{filename}.json"'}
        )


class MessageController(Controller):
    path = "/api/messages"
    tags = ["messages"]

    @delete("/{message_id:str}", status_code=204)
    async def delete_message(
        self, db_session: DbSession, identity: CurrentIdentity, message_id: FromPath[str]
    ) -> None:
        """Move one of your messages to the trash (purged after `TRASH_RETENTION_DAYS`)."""
        await MessageService(db_session, identity.user_id).delete_owned(message_id)

    @put("/{message_id:str}/reactions/{reaction:str}", status_code=204)
    async def add_reaction(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        message_id: FromPath[str],
        reaction: FromPath[str],
    ) -> None:
        """One of each type per user and message: adding it twice changes nothing."""
        await MessageService(db_session, identity.user_id).react(message_id, _reaction(reaction))

    @delete("/{message_id:str}/reactions/{reaction:str}", status_code=204)
    async def remove_reaction(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        message_id: FromPath[str],
        reaction: FromPath[str],
    ) -> None:
        """Take your reaction back (nothing happens when there was none)."""
        await MessageService(db_session, identity.user_id).unreact(message_id, _reaction(reaction))


def _detail(
    row: Conversation,
    page: schemas.MessagePage | None = None,
    tags: dict[str, list[TagRef]] | None = None,
) -> schemas.ConversationDetail:
    return schemas.ConversationDetail(
        id=row.id,
        title=row.title,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        messages=page.messages if page else [],
        next_cursor=page.next_cursor if page else None,
        title_source=row.title_source,
        system_prompt=row.system_prompt,
        model=row.model,
        temperature=row.temperature,
        max_output_tokens=row.max_output_tokens,
        current_leaf_id=row.current_leaf_id,
        **_labels(row, tags),
    )


def _labels(row: Conversation, tags: dict[str, list[TagRef]] | None) -> dict[str, Any]:
    """Pinned, archived, tags (issue 23 item 4), as the conversation's JSON carries them."""
    return {
        "pinned_at": as_utc(row.pinned_at) if row.pinned_at else None,
        "archived_at": as_utc(row.archived_at) if row.archived_at else None,
        "tags": (tags or {}).get(row.id, []),
    }


def _reaction(raw: str) -> str:
    if raw not in schemas.REACTION_TYPES:
        raise InvalidInput(f"reaction: must be one of {', '.join(schemas.REACTION_TYPES)}")
    return raw


def _title(raw: str | None, settings: AppSettings) -> str | None:
    if raw is None:
        return None
    title = raw.strip()
    if len(title) > settings.chat_max_title_chars:
        raise InvalidInput(f"title: longer than {settings.chat_max_title_chars} characters")
    return title or None
