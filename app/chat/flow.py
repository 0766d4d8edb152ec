"""The chat flow: store the question, ask the model, stream the answer, store the answer.

Orchestration with side effects lives here; plain data access is in `services.py`. No
database transaction or pooled connection is held while the model is answering: the user's
message is committed first, and the answer is stored afterwards in a session of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat import schemas
from app.chat.history import PastMessage, Window, history_window
from app.chat.services import ConversationService, MessageService, message_schema, title_from
from app.db.engine import Database
from app.db.models import Conversation, Message, UserPreferences
from app.lib.errors import InvalidInput
from app.lib.time import utc_now
from app.llm.catalogue import UnknownModel
from app.llm.router import Generation, ModelRouter
from app.llm.types import ModelInfo, ProviderFailure
from app.settings import Settings
from prisma_compat import cuid

# Deltas are sent in batches: at most this long after the first unsent text arrived...
BATCH_SECONDS = 0.03
# ...or as soon as this much text is waiting.
BATCH_CHARS = 512
GENERIC_ERRORS = {
    "rate_limited": "The model provider is busy; try again shortly.",
    "unavailable": "The model provider is unavailable right now.",
    "timeout": "The model took too long to answer.",
    "auth": "The server's model provider credentials were refused.",
    "bad_request": "The model provider refused the request.",
    "content_filtered": "The answer was withheld by the provider's content filter.",
}
# Stores that outlive a cancelled request are kept here until they finish.
_background: set[asyncio.Task[object]] = set()


@dataclass(frozen=True, slots=True)
class Prepared:
    user_id: str
    conversation_id: str
    user_message: Message
    model: ModelInfo
    window: Window


@dataclass(frozen=True, slots=True)
class Delta:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    message: schemas.Message
    failure: ProviderFailure | None


Event = Delta | Finished


class ChatFlow:
    def __init__(self, settings: Settings, database: Database, router: ModelRouter) -> None:
        self.settings = settings
        self.database = database
        self.router = router
        self.lease = timedelta(seconds=settings.llm_total_timeout + 60)

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

    async def prepare(
        self,
        db: AsyncSession,
        user_id: str,
        message: str,
        conversation_id: str | None,
        model: str | None,
    ) -> Prepared:
        """Check, take the conversation's lease, commit the user's message, build the prompt."""
        self._check_length(message)
        chosen = await self._choose_model(db, user_id, model)
        conversations = ConversationService(db, user_id)
        if conversation_id is None:
            conversation = await conversations.create(title_from(message))
            conversation_id = conversation.id
        await conversations.start_generation(conversation_id, self.lease)
        messages = MessageService(db, user_id)
        history = await messages.recent_history(
            conversation_id, self.settings.chat_history_messages
        )
        stored = await messages.add_user_message(conversation_id, message)
        await db.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(updated_at=utc_now())
        )
        await db.commit()  # the question is durable before the model is asked
        return Prepared(
            user_id, conversation_id, stored, chosen, self._window(history, message, chosen)
        )

    async def prepare_regeneration(
        self, db: AsyncSession, user_id: str, conversation_id: str, model: str | None
    ) -> Prepared:
        """Answer the last user message again; earlier answers become previous versions."""
        chosen = await self._choose_model(db, user_id, model)
        conversations = ConversationService(db, user_id)
        await conversations.start_generation(conversation_id, self.lease)
        messages = MessageService(db, user_id)
        question = await messages.last_user_message(conversation_id)
        history = await messages.recent_history(
            conversation_id, self.settings.chat_history_messages, before=question.created_at
        )
        await messages.supersede_answers_to(question.id)
        await db.commit()
        return Prepared(
            user_id,
            conversation_id,
            question,
            chosen,
            self._window(history, question.content, chosen),
        )

    def _window(self, history: list[PastMessage], message: str, model: ModelInfo) -> Window:
        return history_window(
            history,
            message,
            system_prompt=self.settings.system_prompt,
            model=model,
            max_messages=self.settings.chat_history_messages,
            margin=self.settings.chat_context_margin,
        )

    async def run(self, prepared: Prepared) -> AsyncIterator[Event]:
        """Deltas as they come, then one Finished with the stored answer.

        If the consumer goes away, the upstream call is cancelled and the partial answer is
        stored as `cancelled`; the answer row is written exactly once in every case.
        """
        generation = self.router.stream(prepared.model, prepared.window.messages)
        failure: ProviderFailure | None = None
        status = "cancelled"
        try:
            async for text in generation:
                yield Delta(text)
            status = "complete"
        except ProviderFailure as exc:
            failure = exc
            status = "incomplete" if generation.partial else "error"
        finally:
            await generation.aclose()
            store = asyncio.ensure_future(self._store(prepared, generation, status, failure))
            _background.add(store)
            store.add_done_callback(_background.discard)
            stored = await asyncio.shield(store)
        yield Finished(stored, failure)

    async def _store(
        self,
        prepared: Prepared,
        generation: Generation,
        status: str,
        failure: ProviderFailure | None,
    ) -> schemas.Message:
        result = generation.result
        answered = generation.answered_by or prepared.model
        usage = result.usage if result else None
        total_ms = result.total_time_ms if result else generation.elapsed_ms()
        ttft = generation.time_to_first_token_ms
        row = Message(
            id=cuid(),
            conversation_id=prepared.conversation_id,
            user_id=prepared.user_id,
            role="assistant",
            content=generation.partial,
            model=answered.id,
            provider=answered.provider,
            status=status,
            prompt_tokens=usage.prompt_tokens if usage else prepared.window.prompt_tokens_estimate,
            completion_tokens=usage.completion_tokens if usage else None,
            tokens_estimated=usage.estimated if usage else True,
            time_to_first_token_ms=round(ttft) if ttft is not None else None,
            total_time_ms=round(total_ms),
            finish_reason=result.finish_reason if result else None,
            error_code=failure.kind if failure else None,
            attempts=[asdict(a) for a in generation.attempts] or None,
            prompt_message_ids=[*prepared.window.included_ids, prepared.user_message.id],
            reply_to_id=prepared.user_message.id,
            created_at=utc_now(),
        )
        async with self.database.session_maker() as db:
            db.add(row)
            await db.execute(
                update(Conversation)
                .where(Conversation.id == prepared.conversation_id)
                .values(updated_at=utc_now(), generating_until=None)
            )
            await db.commit()
        return message_schema(row)


async def batched(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """Merge deltas into batches: never one event per tiny token, never held back for long.

    The source runs in a task of its own, so that a pause in the model's answer does not
    delay text already received; cancelling the consumer cancels the source.
    """
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        finally:
            queue.put_nowait(None)

    source = asyncio.ensure_future(pump())
    _background.add(source)
    source.add_done_callback(_background.discard)
    waiting: list[str] = []
    deadline = 0.0
    try:
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if waiting else None
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                yield Delta("".join(waiting))
                waiting = []
                continue
            if isinstance(event, Delta):
                if not waiting:
                    deadline = time.monotonic() + BATCH_SECONDS
                waiting.append(event.text)
                if sum(map(len, waiting)) >= BATCH_CHARS:
                    yield Delta("".join(waiting))
                    waiting = []
                continue
            if waiting:
                yield Delta("".join(waiting))
                waiting = []
            if event is None:
                break
            yield event
        source.result()  # re-raise what failed in the source
    finally:
        if not source.done():
            source.cancel()
