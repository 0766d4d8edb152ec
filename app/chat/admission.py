"""Admission of new answers: a bounded, fair queue to start one, and an early 503 when full.

Starting an answer runs a handful of statements (the question, the answer's row, the lease)
on the main pool. Under a burst, each start takes one of `CHAT_START_CONCURRENCY` turns in
arrival order (default: half the pool, the rest stays for other requests and the answers'
writes), holding no connection while it waits (the guard's session lookup is committed
first). A start finds the process full, and gets 503 with `Retry-After` before anything is
stored, when `CHAT_MAX_ANSWERS` answers are running or waiting to start, when
`CHAT_START_QUEUE` starts wait already, or when its wait passes `CHAT_START_WAIT` seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.live import LiveAnswers
from app.lib.errors import Busy
from app.lib.gates import REFUSED, Full, Gate
from app.settings import Settings

GATE = "chat_start"


class Admission:
    def __init__(self, settings: Settings, answers: LiveAnswers) -> None:
        limit = settings.chat_start_concurrency or max(1, settings.db_pool_size // 2)
        self.starts = Gate(
            GATE, limit, queue=settings.chat_start_queue, wait=settings.chat_start_wait
        )
        self.max_answers = settings.chat_max_answers
        self.answers = answers

    def _full(self, retry_after: int) -> Busy:
        return Busy(
            "This server is answering as many chats as it can; try again shortly.", retry_after
        )

    @asynccontextmanager
    async def turn(self, db: AsyncSession) -> AsyncIterator[None]:
        """Hold a turn to start an answer, or raise Busy (503, Retry-After) at once."""
        starting = self.starts.in_use + self.starts.waiting
        if len(self.answers.by_conversation) + starting >= self.max_answers:
            REFUSED.labels(gate="chat_answers").inc()
            raise self._full(5)
        if not self.starts.try_acquire():
            if db.in_transaction():
                await db.commit()  # hold no pooled connection while waiting for a turn
            try:
                await self.starts.acquire()
            except Full as exc:
                raise self._full(exc.retry_after) from None
        try:
            yield
        finally:
            self.starts.release()
