"""Admission of new answers: a bounded, fair queue to start one, and an early 503 when full.

Starting an answer runs a handful of statements on the main pool: the session lookup (the
guard's, when the session is not cached), the question, the answer's row, the lease. Under a
burst each chat takes one of `CHAT_START_CONCURRENCY` turns, in arrival order, before the
first of them (the guard takes it for routes marked `opt={"admission": True}`), and gives it
back once the answer has begun: no connection is held while waiting, and the pool's own
bounded wait (`DB_POOL_TIMEOUT`, then 503) is not where a burst queues. A chat finds the process
full, and gets 503 with `Retry-After` before anything is stored, when `CHAT_MAX_ANSWERS`
answers are running or waiting to start, when `CHAT_START_QUEUE` chats wait already, or when
its wait passes `CHAT_START_WAIT` seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.live import LiveAnswers
from app.lib.errors import Busy
from app.lib.gates import REFUSED, Full, Gate
from app.settings import Settings

GATE = "chat_start"
_HELD = "chat_start_turn"  # in the request's scope state while it holds a turn


class Admission:
    def __init__(self, settings: Settings, answers: LiveAnswers) -> None:
        limit = settings.chat_start_concurrency or max(1, settings.db_pool_size * 2 // 3)
        self.starts = Gate(
            GATE, limit, queue=settings.chat_start_queue, wait=settings.chat_start_wait
        )
        self.max_answers = settings.chat_max_answers
        self.answers = answers

    def _full(self, retry_after: int) -> Busy:
        return Busy(
            "This server is answering as many chats as it can; try again shortly.", retry_after
        )

    async def enter(self, scope: Any, db: AsyncSession | None = None) -> None:
        """Take a turn for this request (once), or raise Busy (503, Retry-After) at once.
        With `db`, its transaction is committed first if the turn must be waited for."""
        state = scope.setdefault("state", {})
        if state.get(_HELD):
            return
        starting = self.starts.in_use + self.starts.waiting
        if len(self.answers.by_conversation) + starting >= self.max_answers:
            REFUSED.labels(gate="chat_answers").inc()
            raise self._full(5)
        if not self.starts.try_acquire():
            if db is not None and db.in_transaction():
                await db.commit()  # hold no pooled connection while waiting for a turn
            try:
                await self.starts.acquire()
            except Full as exc:
                raise self._full(exc.retry_after) from None
        state[_HELD] = True

    def leave(self, scope: Any) -> None:
        """Give the request's turn back, if it holds one."""
        state = scope.get("state") or {}
        if state.pop(_HELD, False):
            self.starts.release()

    @asynccontextmanager
    async def turn(self, scope: Any, db: AsyncSession) -> AsyncIterator[None]:
        """Hold the request's turn (taken by the guard, or now) while the answer begins."""
        await self.enter(scope, db)
        try:
            yield
        finally:
            self.leave(scope)


class ReleaseTurns:
    """Plain ASGI around the app: a turn taken by the guard is given back however the request
    ends (401, a 400 on the body, an error), not only when the handler ran."""

    def __init__(self, app: Any, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.admission.leave(scope)
