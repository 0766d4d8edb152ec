"""`/api/chat`, `/api/conversations`, `/api/messages`: thin handlers over the chat services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.auth.guard import CurrentIdentity
from app.chat import schemas
from app.chat.flow import GENERIC_ERRORS, ChatFlow, Delta, Finished, Prepared, batched
from app.chat.services import ConversationService, MessageService, message_schema
from app.db.models import Conversation
from app.lib.deps import AppSettings, DbSession
from app.lib.errors import InvalidInput
from app.lib.rate_limit import RateLimiter
from app.lib.time import as_utc

FlowDep = NamedDependency[ChatFlow]
Format = Annotated[str, QueryParameter(name="format", pattern="^(json|markdown)$")]


def _sse(event: str, payload: Any) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=event, data=msgspec.json.encode(payload).decode())


def _wants_stream(request: Request[Any, Any, Any], asked: bool | None) -> bool:
    if asked is not None:
        return asked
    return "text/event-stream" in request.headers.get("accept", "")


async def _answer(
    flow: ChatFlow, prepared: Prepared, stream: bool
) -> Response[Any] | ServerSentEvent:
    user_message = message_schema(prepared.user_message)
    if not stream:
        finished: Finished | None = None
        async for event in flow.run(prepared):
            if isinstance(event, Finished):
                finished = event
        assert finished is not None
        return Response(
            schemas.ChatResult(
                conversation_id=prepared.conversation_id,
                user_message=user_message,
                ai_message=finished.message,
            )
        )

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        yield _sse(
            "start", {"conversationId": prepared.conversation_id, "userMessage": user_message}
        )
        async for event in batched(flow.run(prepared)):
            if isinstance(event, Delta):
                yield _sse("delta", {"text": event.text})
            elif event.failure is None:
                yield _sse("done", {"assistantMessage": event.message})
            else:
                yield _sse(
                    "error",
                    {
                        "code": event.failure.kind,
                        "message": GENERIC_ERRORS[event.failure.kind],
                        "assistantMessage": event.message,
                    },
                )

    return ServerSentEvent(
        events(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


@post("/api/chat", tags=["chat"], status_code=200)
async def chat(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    identity: CurrentIdentity,
    flow: FlowDep,
    data: JSONBody[schemas.ChatRequest],
) -> Response[Any] | ServerSentEvent:
    """Store the message, ask the model, and answer with JSON or server-sent events."""
    limiter: RateLimiter = request.app.state.chat_limiter
    await limiter.hit(identity.user_id, "chat messages")
    prepared = await flow.prepare(
        db_session, identity.user_id, data.message, data.conversation_id, data.model
    )
    return await _answer(flow, prepared, _wants_stream(request, data.stream))


class ConversationController(Controller):
    path = "/api/conversations"
    tags = ["conversations"]

    @get("/")
    async def list_conversations(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> schemas.ConversationPage:
        """Newest activity first; pass `nextCursor` back as `cursor` for the next page."""
        return await ConversationService(db_session, identity.user_id).list_for_user(limit, cursor)

    @post("/", status_code=201)
    async def create_conversation(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        settings: AppSettings,
        data: JSONBody[schemas.ConversationCreate | None] = None,
    ) -> schemas.ConversationDetail:
        title = _title(data.title if data else None, settings)
        row = await ConversationService(db_session, identity.user_id).create(title)
        return _detail(row)

    @get("/{conversation_id:str}")
    async def get_conversation(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        limit: FromQuery[int | None] = None,
    ) -> schemas.ConversationDetail:
        """The conversation with its latest page of messages."""
        row = await ConversationService(db_session, identity.user_id).get_owned(conversation_id)
        page = await MessageService(db_session, identity.user_id).page(row.id, None, limit)
        return _detail(row, page)

    @patch("/{conversation_id:str}")
    async def rename_conversation(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        settings: AppSettings,
        conversation_id: FromPath[str],
        data: JSONBody[schemas.ConversationUpdate],
    ) -> schemas.ConversationDetail:
        service = ConversationService(db_session, identity.user_id)
        row = await service.rename(conversation_id, _title(data.title, settings))
        return _detail(row)

    @delete("/{conversation_id:str}", status_code=204)
    async def delete_conversation(
        self, db_session: DbSession, identity: CurrentIdentity, conversation_id: FromPath[str]
    ) -> None:
        await ConversationService(db_session, identity.user_id).delete(conversation_id)

    @get("/{conversation_id:str}/messages")
    async def list_messages(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        before: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
        include_versions: Annotated[bool, QueryParameter(name="includeVersions")] = False,
    ) -> schemas.MessagePage:
        """A page of messages in chronological order; `before` = `nextCursor` for older ones."""
        await ConversationService(db_session, identity.user_id).get_owned(conversation_id)
        return await MessageService(db_session, identity.user_id).page(
            conversation_id, before, limit, include_versions
        )

    @post("/{conversation_id:str}/regenerate", status_code=200)
    async def regenerate(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        identity: CurrentIdentity,
        flow: FlowDep,
        conversation_id: FromPath[str],
        data: JSONBody[schemas.RegenerateRequest | None] = None,
    ) -> Response[Any] | ServerSentEvent:
        """Answer the last user message again; the earlier answer is kept as a version."""
        limiter: RateLimiter = request.app.state.chat_limiter
        await limiter.hit(identity.user_id, "chat messages")
        prepared = await flow.prepare_regeneration(
            db_session, identity.user_id, conversation_id, data.model if data else None
        )
        return await _answer(flow, prepared, _wants_stream(request, data.stream if data else None))

    @get("/{conversation_id:str}/export")
    async def export_conversation(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        format: Format = "json",
    ) -> Response[Any]:
        """The whole conversation, as JSON or as Markdown."""
        row = await ConversationService(db_session, identity.user_id).get_owned(conversation_id)
        messages = [
            message_schema(m)
            for m in await MessageService(db_session, identity.user_id).all_in(row.id)
        ]
        filename = f"conversation-{row.id}"
        if format == "markdown":
            lines = [f"# {row.title or 'Conversation'}", ""]
            for m in messages:
                if m.superseded_at is not None:
                    continue
                who = "You" if m.role == "user" else f"Assistant ({m.model or 'unknown model'})"
                lines += [f"## {who} - {m.created_at:%Y-%m-%d %H:%M} UTC", "", m.content, ""]
            return Response(
                "\n".join(lines),
                media_type="text/markdown; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{filename}.md"'},
            )
        body = {
            "id": row.id,
            "title": row.title,
            "createdAt": as_utc(row.created_at),
            "updatedAt": as_utc(row.updated_at),
            "messages": messages,
        }
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
        await MessageService(db_session, identity.user_id).unreact(message_id, _reaction(reaction))


def _detail(
    row: Conversation, page: schemas.MessagePage | None = None
) -> schemas.ConversationDetail:
    return schemas.ConversationDetail(
        id=row.id,
        title=row.title,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        messages=page.messages if page else [],
        next_cursor=page.next_cursor if page else None,
    )


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
