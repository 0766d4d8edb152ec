"""Conversation titles made by a model (`TITLE_MODEL`, else the cheapest available one).

The first answer of a conversation starts a title beside it, never in its way: the title has
its own task, its own short database sessions, and whatever it meets (a failing model, a
database that blinks) ends there, counted in metrics; the conversation then keeps the title
made from the question's first words. A title the user set is never replaced, unless the user
asks for a new one (`POST /api/conversations/{id}/title`). Every title a model made, or failed
to make, is a row of `title_usages`: its tokens count in the user's usage.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass

from sqlalchemy import insert, true, update

from app.chat.live import LiveAnswer, LiveAnswers
from app.chat.services import TITLE_CHARS, title_from
from app.db.models import Conversation, TitleUsage
from app.lib import metrics
from app.lib.errors import ConfigurationError
from app.lib.time import utc_now
from app.llm.catalogue import UnknownModel
from app.llm.router import ModelRouter
from app.llm.types import (
    ChatMessage,
    ModelInfo,
    ProviderFailure,
    Sampling,
    Usage,
    estimate_message_tokens,
    estimate_tokens,
)
from app.settings import Settings
from prisma_compat import cuid

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "You name conversations. Reply with a title for a conversation that begins with the "
    "user's message below: at most 8 words and 60 characters, in the language of the message, "
    "without quotes, emoji or a final full stop. Reply with the title only."
)
# The question as far as a title needs it, and what a title may cost.
QUESTION_CHARS = 2000
TITLE_SAMPLING = Sampling(max_tokens=48, temperature=0.2)
# A title that takes longer than this is given up (the first-words title stays).
TITLE_SECONDS = 20.0
_DECORATION = re.compile(r"^(title|titre|titel|título|titolo)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MadeTitle:
    title: str
    model: ModelInfo
    usage: Usage


class TitleFailed(Exception):
    """The title model failed or answered nothing usable; `kind` says how."""

    def __init__(self, kind: str, model: ModelInfo) -> None:
        super().__init__(kind)
        self.kind = kind
        self.model = model


def clean_title(raw: str) -> str:
    """The model's answer as a title: its first line, without quotes, a `Title:` label or a
    final full stop, at most 60 characters (cut at a word)."""
    line = next((part.strip() for part in raw.strip().splitlines() if part.strip()), "")
    marks = "*#_ \"'`\u201c\u201d\u2018\u2019\u00ab\u00bb"  # Markdown and quotes
    line = _DECORATION.sub("", line.strip(marks)).strip(marks).rstrip(".").strip(marks)
    return title_from(line) if line else ""


def echo_title(question: str) -> str:
    """dev-echo's title: the question's first six words, capitalised, without end marks."""
    words = title_from(question).split()[:6]
    title = " ".join(words).rstrip(".?!,;:")
    return (title[:1].upper() + title[1:])[:TITLE_CHARS] or "New conversation"


class TitleMaker:
    def __init__(self, settings: Settings, answers: LiveAnswers) -> None:
        self.answers = answers
        self.router: ModelRouter = answers.router
        self.model = self._choose(settings.title_model)

    def _choose(self, wanted: str | None) -> ModelInfo | None:
        if wanted and wanted.strip().lower() == "none":
            return None
        if not wanted:
            return self.router.catalogue.cheapest()
        try:
            return self.router.resolve(wanted)
        except UnknownModel as exc:
            raise ConfigurationError(
                f"TITLE_MODEL {wanted!r} is not available; available: {', '.join(exc.available)}"
            ) from None

    async def make(self, question: str) -> MadeTitle:
        """Ask the title model; TitleFailed when it fails or says nothing usable."""
        model = self.model
        if model is None:
            raise TitleFailed("off", self.router.resolve(None))
        question = question.strip()[:QUESTION_CHARS]
        if model.development:
            title = echo_title(question)
            usage = Usage(estimate_message_tokens(question), estimate_tokens(title), True)
            return MadeTitle(title, model, usage)
        messages = [ChatMessage("system", INSTRUCTIONS), ChatMessage("user", question)]
        generation = self.router.stream(model, messages, TITLE_SAMPLING, fallback=False)
        try:
            async with asyncio.timeout(TITLE_SECONDS):
                raw = "".join([d async for d in generation if isinstance(d, str)])
        except ProviderFailure as exc:
            raise TitleFailed(exc.kind, model) from None
        except TimeoutError:
            raise TitleFailed("timeout", model) from None
        finally:
            await generation.aclose()
        title = clean_title(raw)
        if not title or generation.result is None:
            raise TitleFailed("empty", model)
        return MadeTitle(title, model, generation.result.usage)

    def start(
        self, user_id: str, conversation_id: str, question: str, live: LiveAnswer | None
    ) -> None:
        """Make the conversation's title beside its first answer; `live` hears of it."""
        if self.model is None:
            return
        task = asyncio.create_task(
            self._title_beside(user_id, conversation_id, question, live),
            name=f"title {conversation_id}",
        )
        self.answers.track(task)

    async def _title_beside(
        self, user_id: str, conversation_id: str, question: str, live: LiveAnswer | None
    ) -> None:
        try:
            made = await self.make(question)
        except TitleFailed as exc:
            self.count_failure(exc)
            await self._quietly(self.record(user_id, conversation_id, None, exc))
            return
        except Exception:  # a bug here must not reach the answer
            logger.exception("making the title of %s failed", conversation_id)
            metrics.TITLES.labels(model="unknown", outcome="failed").inc()
            return
        took = await self._quietly(self.record(user_id, conversation_id, made, None))
        # Not stored (the database was away, or its pool full): as good as not made.
        outcome = "failed" if took is None else "made"
        metrics.TITLES.labels(model=made.model.id, outcome=outcome).inc()
        if took and live:
            live.titled(made.title)

    @staticmethod
    def count_failure(exc: TitleFailed) -> None:
        metrics.TITLES.labels(model=exc.model.id, outcome="failed").inc()
        logger.warning("the title model %s failed: %s", exc.model.id, exc.kind)

    async def _quietly(self, write: Awaitable[bool]) -> bool | None:
        """What `write` returned; None when it failed (logged, never raised)."""
        try:
            async with asyncio.timeout(TITLE_SECONDS):
                return await write
        except Exception as exc:
            logger.warning("storing a title failed: %s", exc.__class__.__name__)
            return None

    async def record(
        self,
        user_id: str,
        conversation_id: str,
        made: MadeTitle | None,
        failure: TitleFailed | None,
        *,
        replace: bool = False,
    ) -> bool:
        """Store the title (unless the user has set one meanwhile, or `replace`) and its
        usage, in one transaction; True when the conversation took it."""
        model = made.model if made else failure.model if failure else None
        assert model is not None
        usage = made.usage if made else None
        async with self.answers.turn(), self.answers.database.session_maker() as db:
            took = False
            if made is not None:
                took = (
                    await db.scalar(
                        update(Conversation)
                        .where(
                            Conversation.id == conversation_id,
                            Conversation.user_id == user_id,
                            true()
                            if replace
                            else Conversation.title_source.is_distinct_from("user"),
                        )
                        .values(
                            title=made.title,
                            title_source="model",
                            updated_at=Conversation.updated_at,  # a title is no activity
                        )
                        .returning(Conversation.id)
                    )
                    is not None
                )
            await db.execute(
                insert(TitleUsage).values(
                    id=cuid(),
                    user_id=user_id,
                    conversation_id=conversation_id,
                    model=model.id,
                    provider=model.provider,
                    status="complete" if made else "error",
                    prompt_tokens=usage.prompt_tokens if usage else None,
                    completion_tokens=usage.completion_tokens if usage else None,
                    tokens_estimated=usage.estimated if usage else None,
                    error_code=failure.kind if failure else None,
                    created_at=utc_now(),
                )
            )
            await db.commit()
        return took
