"""The chat flow: store the question and the answer's row, start the answer, hand out readers.

Orchestration with side effects lives here; plain data access is in `services.py`, the answer
being generated in `live.py`. No database transaction or pooled connection is held while the
model is answering: the question and the answer's `streaming` row are committed first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat import schemas
from app.chat.attachments import FileRef, carried_files, with_files
from app.chat.branches import BranchService
from app.chat.history import PastMessage, Window, history_window
from app.chat.live import Ended, LiveAnswers, Piece, Question, Text, Thought
from app.chat.quotas import QuotaService
from app.chat.services import (
    ConversationService,
    ConversationSettings,
    MessageService,
    available_model,
    message_schema,
    sampling_for,
    title_from,
)
from app.chat.titles import TitleFailed, TitleMaker
from app.db.models import Message, UserPreferences
from app.files.schemas import file_info
from app.files.services import FileService
from app.lib.errors import Conflict, InvalidInput, NotFound, ProviderError
from app.llm.catalogue import UnknownModel
from app.llm.types import ModelInfo, Sampling
from app.settings import Settings

# How long an answer given whole (JSON) waits for its last write; a stream waits less
# (STREAM_WAITS_FOR_STORE), its reader being shown the text meanwhile.
JSON_WAITS_FOR_STORE = 30.0

_PREFERENCES = select(UserPreferences.default_model, UserPreferences.system_prompt).where(
    UserPreferences.user_id == bindparam("user_id")
)

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
class Setup:
    """How an answer is made: the model, its sampling and the system prompt ("" for none)."""

    model: ModelInfo
    sampling: Sampling
    system_prompt: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """A question and its answer (being generated, or stored), ready to be read."""

    conversation_id: str
    user_message: schemas.Message | None
    answer_id: str
    model: str | None
    provider: str | None
    pieces: Callable[[], AsyncIterator[Piece]]
    # Set once the answer's last write is in (or given up on), when this process runs it.
    stored: asyncio.Event | None = None

    async def ended(self) -> Ended:
        """Wait for the answer's end."""
        async for piece in self.pieces():
            if isinstance(piece, Ended):
                return piece
        raise RuntimeError("an answer ended without its final state")  # pragma: no cover

    async def ended_and_stored(self) -> Ended:
        """Wait for the answer's end and its last write: what is read next (a page, a share)
        has it. A stream waits at most STREAM_WAITS_FOR_STORE for that write; an answer
        given whole waits for it, up to JSON_WAITS_FOR_STORE (the database being away)."""
        ended = await self.ended()
        if self.stored is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stored.wait(), JSON_WAITS_FOR_STORE)
        return ended


def _stored(row: Message) -> Callable[[], AsyncIterator[Piece]]:
    async def pieces() -> AsyncIterator[Piece]:
        if row.reasoning:
            yield Thought(0, row.reasoning)
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
        self.titles = TitleMaker(settings, answers)

    async def _setup(
        self, db: AsyncSession, user_id: str, own: ConversationSettings, requested: str | None
    ) -> Setup:
        """The model: asked for, else the conversation's, else the user's default, else the
        server's (unavailable ones are passed over, except the one asked for). The system
        prompt: the conversation's, else the user's default, else SYSTEM_PROMPT. The
        conversation's temperature and output limit, held to the model's limit (400)."""
        model = available_model(self.router.catalogue, requested) if requested else None
        if model is None and own.model is not None:
            with contextlib.suppress(UnknownModel):
                model = self.router.resolve(own.model)
        preferred_model = preferred_prompt = None
        if model is None or own.system_prompt is None:
            found = (await db.execute(_PREFERENCES, {"user_id": user_id})).first()
            if found is not None:
                preferred_model, preferred_prompt = found
        if model is None and preferred_model:
            with contextlib.suppress(UnknownModel):
                model = self.router.resolve(preferred_model)
        if model is None:
            model = self.router.resolve(None)
        system_prompt = next(
            p for p in (own.system_prompt, preferred_prompt, self.settings.system_prompt)
            if p is not None
        )  # fmt: skip
        return Setup(model, sampling_for(own, model), system_prompt)

    def _check_length(self, message: str, with_files: bool = False) -> str:
        if not message.strip() and not with_files:
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
        files: Sequence[FileRef] = (),
    ) -> Exchange:
        """Store the question (with its `files`) and the answer's row, start the answer. A
        question whose `client_message_id` was seen before gets the earlier exchange
        instead."""
        self._check_length(message, with_files=bool(files))
        if client_message_id is not None:
            repeated = await self._repeat(db, user_id, client_message_id)
            if repeated is not None:
                return repeated
        await QuotaService(db, user_id, self.settings).check()
        if model:
            available_model(self.router.catalogue, model)  # a 400 before anything is stored
        # Another user's file is a 404 and a file of a type the model cannot take a 400
        # (in _begin): the transaction, `data:` files stored meanwhile included, is rolled back.
        attached = await carried_files(db, user_id, self.settings, files)
        conversations = ConversationService(db, user_id)
        created = conversation_id is None
        if conversation_id is None:
            conversation_id = (await conversations.create(title_from(message))).id
        elif create_conversation:
            await conversations.ensure(conversation_id, title_from(message))
        own = await conversations.start_generation(conversation_id, self.answers.lease)
        setup = await self._setup(db, user_id, own, model)
        messages = MessageService(db, user_id)
        # A conversation made just now has no messages: nothing to adopt, no history.
        leaf = None if created else await self._leaf(db, user_id, conversation_id, own)
        history = [] if created else await self._history(db, user_id, conversation_id, leaf)
        # The first question of a conversation whose title is not the user's gets a title
        # from the title model, beside its answer; its first words meanwhile.
        # (A question of files only leaves the title to its first words: "New conversation".)
        first = own.title_source is None and not history and bool(message.strip())
        # An empty history may be CHAT_HISTORY_MESSAGES=0: ask the table (first questions only).
        first = first and (created or not await messages.any_in(conversation_id))
        if first and own.title is None:
            await conversations.set_title(conversation_id, title_from(message), None)
        question = await messages.add_user_message(
            conversation_id, message, client_message_id, parent_id=leaf
        )
        await FileService(db, user_id, self.settings).attach(question.id, attached)
        return await self._begin(
            db, messages, question, setup, self._window(history, setup),
            title_from_question=first,
        )  # fmt: skip

    async def regenerate(
        self, db: AsyncSession, user_id: str, conversation_id: str, model: str | None
    ) -> Exchange:
        """Answer the current branch's last user message again: the new answer is a sibling
        of the earlier ones, which become previous versions."""
        await QuotaService(db, user_id, self.settings).check()
        if model:
            available_model(self.router.catalogue, model)
        conversations = ConversationService(db, user_id)
        own = await conversations.start_generation(conversation_id, self.answers.lease)
        setup = await self._setup(db, user_id, own, model)
        messages = MessageService(db, user_id)
        leaf = await self._leaf(db, user_id, conversation_id, own)
        question = await BranchService(db, user_id).last_question(conversation_id, leaf)
        history = await self._history(db, user_id, conversation_id, question.parent_id)
        await messages.supersede_answers_to(question.id)
        return await self._begin(db, messages, question, setup, self._window(history, setup))

    async def edit(
        self,
        db: AsyncSession,
        user_id: str,
        conversation_id: str,
        message_id: str,
        message: str,
        model: str | None,
    ) -> Exchange:
        """A new version of an earlier question, answered: a sibling of it (same parent), so
        the branch that followed the old one stays whole. `message_id` is the question's id
        or the id its client gave it (the AI SDK's). Nothing is stored on bad input."""
        self._check_length(message)
        await QuotaService(db, user_id, self.settings).check()
        if model:
            available_model(self.router.catalogue, model)
        branches = BranchService(db, user_id)
        if await branches.leaf_of(conversation_id) is None:
            await branches.adopt_linear(conversation_id)  # gives the edited row its parent
        original = await branches.editable(conversation_id, message_id)
        conversations = ConversationService(db, user_id)
        own = await conversations.start_generation(conversation_id, self.answers.lease)
        setup = await self._setup(db, user_id, own, model)
        history = await self._history(db, user_id, conversation_id, original.parent_id)
        messages = MessageService(db, user_id)
        # No client id: the AI SDK keeps the edited message's id, which the original holds.
        question = await messages.add_user_message(
            conversation_id, message, parent_id=original.parent_id
        )
        return await self._begin(db, messages, question, setup, self._window(history, setup))

    async def _leaf(
        self, db: AsyncSession, user_id: str, conversation_id: str, own: ConversationSettings
    ) -> str | None:
        """The leaf an answer continues; a conversation read in linear order is adopted. A
        leaf in the trash (or purged) is continued from its nearest live ancestor: a question
        never hangs under a message the user cannot see, or one that is gone."""
        branches = BranchService(db, user_id)
        if own.current_leaf_id is not None:
            return await branches.live_leaf(conversation_id, own.current_leaf_id)
        return await branches.adopt_linear(conversation_id)

    async def _history(
        self, db: AsyncSession, user_id: str, conversation_id: str, start: str | None
    ) -> list[PastMessage]:
        """The history window's candidates: the branch up from `start`, oldest first."""
        found = await BranchService(db, user_id).usable(
            conversation_id, start, self.settings.chat_history_messages
        )
        return [PastMessage(*row) for row in found]

    async def _begin(
        self,
        db: AsyncSession,
        messages: MessageService,
        question: Message,
        setup: Setup,
        past: Callable[[str], Window],
        *,
        title_from_question: bool = False,
    ) -> Exchange:
        model = setup.model
        window, files = await with_files(
            db, question.user_id, past(question.content), question.id, model, self.router.catalogue
        )
        answer = await messages.add_answer(
            question, model.id, model.provider, [*window.included_ids, question.id],
            setup.sampling, setup.system_prompt,
        )  # fmt: skip
        await BranchService(db, question.user_id).set_leaf(question.conversation_id, answer.id)
        try:
            await db.commit()  # question and answer row are durable before the model is asked
        except IntegrityError:
            await db.rollback()
            raise Conflict("This message was sent already.") from None
        user_message = message_schema(question)
        user_message.files = [file_info(f) for f in files]
        live = self.answers.begin(
            Question(
                user_id=question.user_id,
                conversation_id=question.conversation_id,
                user_message=user_message,
                answer_id=answer.id,
                answer_created_at=answer.created_at,
                model=model,
                window=window,
                sampling=setup.sampling,
                system_prompt=setup.system_prompt,
            )
        )
        if title_from_question:
            self.titles.start(question.user_id, question.conversation_id, question.content, live)
        return Exchange(
            question.conversation_id,
            user_message,
            answer.id,
            model.id,
            model.provider,
            live.follow,
            live.stored,
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

    def _window(self, history: list[PastMessage], setup: Setup) -> Callable[[str], Window]:
        def window(message: str) -> Window:
            return history_window(
                history,
                message,
                system_prompt=setup.system_prompt,
                model=setup.model,
                max_messages=self.settings.chat_history_messages,
                margin=self.settings.chat_context_margin,
                max_output=setup.sampling.max_tokens,
            )

        return window

    async def retitle(
        self, db: AsyncSession, user_id: str, conversation_id: str
    ) -> schemas.TitleResult:
        """A new title from the title model, on request: it replaces any title, the user's
        too. A failing model is a 502 and leaves the title as it was."""
        conversations = ConversationService(db, user_id)
        await conversations.get_owned(conversation_id)
        question = await MessageService(db, user_id).first_question(conversation_id)
        await QuotaService(db, user_id, self.settings).check()
        if self.titles.model is None:
            raise InvalidInput("Titles by a model are switched off on this server (TITLE_MODEL).")
        await db.commit()  # hold no transaction while the model answers
        try:
            made = await self.titles.make(question)
        except TitleFailed as exc:
            self.titles.count_failure(exc)
            await self.titles.record(user_id, conversation_id, None, exc)
            raise ProviderError("The title model failed; the title is unchanged.") from None
        await self.titles.record(user_id, conversation_id, made, None, replace=True)
        return schemas.TitleResult(
            id=conversation_id, title=made.title, title_source="model", model=made.model.id
        )
