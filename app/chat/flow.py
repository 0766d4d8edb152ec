"""The chat flow: store the question and the answer's row, start the answer, hand out readers.

Orchestration with side effects lives here; plain data access is in `services.py`, the answer
being generated in `live.py`. No database transaction or pooled connection is held while the
model is answering: the question and the answer's `streaming` row are committed first.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat import schemas
from app.chat.history import PastMessage, Window, history_window
from app.chat.live import Ended, LiveAnswers, Piece, Question, Text
from app.chat.quotas import QuotaService
from app.chat.services import ConversationService, MessageService, message_schema, title_from
from app.db.models import Message, UserPreferences
from app.lib.errors import Conflict, InvalidInput, NotFound
from app.llm.catalogue import UnknownModel
from app.llm.types import ModelInfo
from app.settings import Settings

# What a reader is told when an answer did not complete, by failure kind.
GENERIC_ERRORS = {
    "rate_limited": "The model provider is busy; try again shortly.",
    "unavailable": "The model provider is unavailable right now.",
    "timeout": "The model took too long to answer.",
    "auth": "The server's model provider credentials were refused.",
    "bad_request": "The model provider refused the request.",
    "content_filtered": "The answer was withheld by the provider's content filter.",
    "cancelled": "The answer was stopped.",
    "shutdown": "The server shut down before the answer was complete.",
    "interrupted": "The answer was interrupted; the server that generated it went away.",
}


def error_text(failure: str) -> str:
    return GENERIC_ERRORS.get(failure, "The answer could not be completed.")


@dataclass(frozen=True, slots=True)
class Exchange:
    """A question and its answer (being generated, or stored), ready to be read."""

    conversation_id: str
    user_message: schemas.Message | None
    answer_id: str
    model: str | None
    provider: str | None
    pieces: Callable[[], AsyncIterator[Piece]]

    async def ended(self) -> Ended:
        """Wait for the answer's end."""
        async for piece in self.pieces():
            if isinstance(piece, Ended):
                return piece
        raise RuntimeError("an answer ended without its final state")  # pragma: no cover


def _stored(row: Message) -> Callable[[], AsyncIterator[Piece]]:
    async def pieces() -> AsyncIterator[Piece]:
        if row.content:
            yield Text(0, row.content)
        failure = None if row.status == "complete" else row.error_code or row.status
        yield Ended(message_schema(row), failure)

    return pieces


class ChatFlow:
    def __init__(self, settings: Settings, answers: LiveAnswers) -> None:
        self.settings = settings
        self.answers = answers
        self.router = answers.router

    async def _choose_model(
        self, db: AsyncSession, user_id: str, requested: str | None
    ) -> ModelInfo:
        """Asked for, else the user's default (when available), else the server's."""
        try:
            if requested:
                return self.router.resolve(requested)
        except UnknownModel as exc:
            raise InvalidInput(
                f"model: {exc.requested!r} is not available; available: {', '.join(exc.available)}"
            ) from None
        preferred = await db.scalar(
            select(UserPreferences.default_model).where(UserPreferences.user_id == user_id)
        )
        if preferred:
            with contextlib.suppress(UnknownModel):
                return self.router.resolve(preferred)
        return self.router.resolve(None)

    def _check_length(self, message: str) -> str:
        if not message.strip():
            raise InvalidInput("message: must not be empty")
        if len(message) > self.settings.chat_max_message_chars:
            raise InvalidInput(
                f"message: longer than {self.settings.chat_max_message_chars} characters"
            )
        return message

    async def ask(
        self,
        db: AsyncSession,
        user_id: str,
        message: str,
        conversation_id: str | None,
        model: str | None,
        *,
        client_message_id: str | None = None,
        create_conversation: bool = False,
    ) -> Exchange:
        """Store the question and the answer's row, start the answer. A question whose
        `client_message_id` was seen before gets the earlier exchange instead."""
        self._check_length(message)
        if client_message_id is not None:
            repeated = await self._repeat(db, user_id, client_message_id)
            if repeated is not None:
                return repeated
        await QuotaService(db, user_id, self.settings).check()
        chosen = await self._choose_model(db, user_id, model)
        conversations = ConversationService(db, user_id)
        if conversation_id is None:
            conversation_id = (await conversations.create(title_from(message))).id
        elif create_conversation:
            await conversations.ensure(conversation_id, title_from(message))
        await conversations.start_generation(conversation_id, self.answers.lease)
        messages = MessageService(db, user_id)
        history = await messages.recent_history(
            conversation_id, self.settings.chat_history_messages
        )
        question = await messages.add_user_message(conversation_id, message, client_message_id)
        return await self._begin(db, messages, question, chosen, self._window(history, chosen))

    async def regenerate(
        self, db: AsyncSession, user_id: str, conversation_id: str, model: str | None
    ) -> Exchange:
        """Answer the last user message again; earlier answers become previous versions."""
        await QuotaService(db, user_id, self.settings).check()
        chosen = await self._choose_model(db, user_id, model)
        conversations = ConversationService(db, user_id)
        await conversations.start_generation(conversation_id, self.answers.lease)
        messages = MessageService(db, user_id)
        question = await messages.last_user_message(conversation_id)
        history = await messages.recent_history(
            conversation_id, self.settings.chat_history_messages, before=question.created_at
        )
        await messages.supersede_answers_to(question.id)
        return await self._begin(db, messages, question, chosen, self._window(history, chosen))

    async def _begin(
        self,
        db: AsyncSession,
        messages: MessageService,
        question: Message,
        model: ModelInfo,
        past: Callable[[str], Window],
    ) -> Exchange:
        window = past(question.content)
        answer = await messages.add_answer(
            question, model.id, model.provider, [*window.included_ids, question.id]
        )
        try:
            await db.commit()  # question and answer row are durable before the model is asked
        except IntegrityError:
            await db.rollback()
            raise Conflict("This message was sent already.") from None
        live = self.answers.begin(
            Question(
                user_id=question.user_id,
                conversation_id=question.conversation_id,
                user_message=message_schema(question),
                answer_id=answer.id,
                answer_created_at=answer.created_at,
                model=model,
                window=window,
            )
        )
        return Exchange(
            question.conversation_id,
            message_schema(question),
            answer.id,
            model.id,
            model.provider,
            live.follow,
        )

    async def _repeat(
        self, db: AsyncSession, user_id: str, client_message_id: str
    ) -> Exchange | None:
        """The exchange an earlier request with this client message id started."""
        messages = MessageService(db, user_id)
        question = await messages.by_client_id(client_message_id)
        if question is None:
            return None
        answer = await messages.answer_to(question.id)
        if answer is None:
            raise Conflict("This message was sent already, and its answer was deleted.")
        exchange = await self._reader_of(answer)
        return Exchange(
            question.conversation_id,
            message_schema(question),
            answer.id,
            answer.model,
            answer.provider,
            exchange,
        )

    async def _reader_of(self, answer: Message) -> Callable[[], AsyncIterator[Piece]]:
        live = self.answers.local(answer.conversation_id)
        if live is not None and live.id == answer.id:
            return live.follow
        if answer.status == "streaming":
            saved = answer.content

            def remote() -> AsyncIterator[Piece]:
                return self.answers.follow_remote(answer.id, saved)

            return remote
        return _stored(answer)

    async def attach(self, db: AsyncSession, user_id: str, conversation_id: str) -> Exchange | None:
        """The answer being generated in the conversation (by any process), or None."""
        await ConversationService(db, user_id).get_owned(conversation_id)
        live = self.answers.local(conversation_id)
        if live is not None and live.question.user_id == user_id:
            question = live.question
            return Exchange(
                conversation_id,
                question.user_message,
                live.id,
                question.model.id,
                question.model.provider,
                live.follow,
            )
        answer = await MessageService(db, user_id).streaming_answer(conversation_id)
        if answer is None:
            return None
        return Exchange(
            conversation_id, None, answer.id, answer.model, answer.provider,
            await self._reader_of(answer),
        )  # fmt: skip

    async def resumable(
        self, db: AsyncSession, user_id: str, conversation_id: str
    ) -> Exchange | None:
        """As `attach`, but None for a conversation that is not the caller's or does not exist
        (yet): a client resuming a chat id it has only just made up learns nothing either way."""
        try:
            return await self.attach(db, user_id, conversation_id)
        except NotFound:
            return None

    async def stop(self, db: AsyncSession, user_id: str, conversation_id: str) -> Message | None:
        """Stop the answer being generated in the conversation; None when none was."""
        exchange = await self.attach(db, user_id, conversation_id)
        if exchange is None:
            return None
        await db.commit()  # hold no transaction while waiting
        await self.answers.stop(conversation_id, exchange.answer_id)
        return await MessageService(db, user_id).wait_until_stored(exchange.answer_id)

    def _window(self, history: list[PastMessage], model: ModelInfo) -> Callable[[str], Window]:
        def window(message: str) -> Window:
            return history_window(
                history,
                message,
                system_prompt=self.settings.system_prompt,
                model=model,
                max_messages=self.settings.chat_history_messages,
                margin=self.settings.chat_context_margin,
            )

        return window
