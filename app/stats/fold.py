"""The stats fold: moves the deltas the triggers on messages append (revision 0015) into the
rollups that stats read, in batches, every few seconds in each `serve` process.

Stats stay exact without it (they add the deltas not yet folded); the fold keeps what they
read small. Processes folding at once take disjoint rows (FOR UPDATE SKIP LOCKED in
`fold_stats_deltas`), so there is no lock to share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import Database
from app.lib.backoff import Backoff

logger = logging.getLogger(__name__)

# Delta rows per table per transaction: short transactions, a few milliseconds each.
BATCH = 5000


async def fold(db: AsyncSession, batch: int = BATCH) -> int:
    """Fold up to `batch` deltas of each table in `db`'s transaction; the rows moved."""
    moved = await db.scalar(text("SELECT fold_stats_deltas(:batch)"), {"batch": batch})
    return int(moved or 0)


class StatsFolder:
    """Folds every `every` seconds (jittered) until nothing is left; backs off while the
    database is away."""

    def __init__(self, database: Database, every: float) -> None:
        self.database = database
        self.every = every
        self.folded = 0  # rows moved by this process, for metrics and tests
        self._backoff = Backoff("the stats fold", logger)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.database.one_connection:
            return  # a test's one shared connection takes no writer at random times
        self._task = asyncio.create_task(self._run(), name="stats-fold")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int:
        """Fold until a batch comes back short; the rows moved."""
        total = 0
        while True:
            async with self.database.session_maker() as db:
                moved = await fold(db)
                await db.commit()
            total += moved
            if moved < BATCH:  # neither table's batch was full
                break
        self.folded += total
        return total

    async def _run(self) -> None:
        while True:
            # Jittered, so that processes started together do not fold together.
            await asyncio.sleep(self.every * random.uniform(0.75, 1.25))
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._backoff.failed(exc)
                await self._backoff.wait()
                continue
            self._backoff.succeeded()
