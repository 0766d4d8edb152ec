"""The trash's purge: rows trashed longer ago than the retention go for good.

Run by `chatwithme purge` and, once a day, by every `serve` process; a PostgreSQL advisory
lock lets only one process purge at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import Database
from app.db.models import Conversation, Message
from app.files.services import carried_by, delete_left_over
from app.lib.time import utc_now

logger = logging.getLogger("chatwithme.trash")

# Any fixed number, the same in every process: the key of the purge's advisory lock.
PURGE_LOCK = 0x7472617368  # "trash"
_AGE = re.compile(r"^\s*(\d+)\s*([dh])\s*$")

# Before trashed messages of live conversations go: what hung under one of them hangs under
# its nearest ancestor that stays (or becomes a root), and a leaf among them moves there too
# (else to the conversation's newest live message). Without it the foreign key's SET NULL cut
# the branch at the purged row, and a leaf left pointing at a purged row made the next
# question's parent a row that is gone.
_REATTACH = """
WITH RECURSIVE gone AS (
    SELECT m.id, m."parentId" FROM messages m
    JOIN conversations c ON c.id = m."conversationId"
    WHERE m."deletedAt" < :cutoff AND (c."deletedAt" IS NULL OR c."deletedAt" >= :cutoff)
), up AS (
    SELECT id, "parentId" AS ancestor, 0 AS depth FROM gone
  UNION ALL
    SELECT up.id, g."parentId", up.depth + 1 FROM up JOIN gone g ON g.id = up.ancestor
    WHERE up.depth < 100000
), stays AS (
    SELECT up.id, up.ancestor FROM up
    WHERE up.ancestor IS NULL OR up.ancestor NOT IN (SELECT id FROM gone)
)
"""
_REATTACH_CHILDREN = text(
    _REATTACH  # noqa: S608 (constants)
    + """UPDATE messages m SET "parentId" = stays.ancestor FROM stays
    WHERE m."parentId" = stays.id AND m.id NOT IN (SELECT id FROM gone)"""
)
_REATTACH_LEAVES = text(
    _REATTACH  # noqa: S608 (constants)
    + """UPDATE conversations c SET "currentLeafId" = COALESCE(
        (SELECT s.id FROM messages s WHERE s.id = stays.ancestor AND s."deletedAt" IS NULL),
        (SELECT n.id FROM messages n
         WHERE n."conversationId" = c.id AND n."deletedAt" IS NULL
         ORDER BY n."createdAt" DESC, n.id DESC LIMIT 1))
    FROM stays WHERE c."currentLeafId" = stays.id"""
)


def parse_age(raw: str) -> timedelta:
    """`30d` or `12h` (a bare number is days)."""
    if raw.strip().isdigit():
        return timedelta(days=int(raw))
    found = _AGE.match(raw.lower())
    if found is None:
        raise ValueError(f"not an age like 30d or 12h: {raw!r}")
    amount = int(found.group(1))
    return timedelta(days=amount) if found.group(2) == "d" else timedelta(hours=amount)


@dataclass(frozen=True)
class Purged:
    conversations: int
    messages: int
    files: int = 0

    def __str__(self) -> str:
        files = f", {self.files} file(s)" if self.files else ""
        return f"{self.conversations} conversation(s), {self.messages} message(s){files}"


async def purge(db: AsyncSession, older_than: timedelta, dry_run: bool = False) -> Purged:
    """Remove (or, `dry_run`, count) what was trashed before now - `older_than`: trashed
    conversations with all their messages, and trashed messages of other conversations."""
    cutoff = utc_now() - older_than
    old_conversations = select(Conversation.id).where(Conversation.deleted_at < cutoff)
    old_messages = or_(Message.deleted_at < cutoff, Message.conversation_id.in_(old_conversations))
    if dry_run:
        conversations = await db.scalar(
            select(func.count()).select_from(old_conversations.subquery())
        )
        messages = await db.scalar(select(func.count()).where(old_messages))
        return Purged(conversations or 0, messages or 0)
    # The files of those messages go with them when no other message carries them.
    file_ids = list(await db.scalars(carried_by(select(Message.id).where(old_messages))))
    await db.execute(_REATTACH_CHILDREN, {"cutoff": cutoff})
    await db.execute(_REATTACH_LEAVES, {"cutoff": cutoff})
    # Messages first, counted from their own statement (the conversations' cascade would not
    # say how many it took).
    messages = len(
        (await db.execute(delete(Message).where(old_messages).returning(Message.id))).all()
    )
    conversations = len(
        (
            await db.execute(
                delete(Conversation)
                .where(Conversation.deleted_at < cutoff)
                .returning(Conversation.id)
            )
        ).all()
    )
    return Purged(conversations, messages, await delete_left_over(db, file_ids))


class TrashPurger:
    """Purges the trash once a day in the background of a `serve` process."""

    def __init__(
        self,
        database: Database,
        retention: timedelta,
        every: timedelta = timedelta(days=1),
        first_after: timedelta = timedelta(minutes=1),
    ) -> None:
        self.database = database
        self.retention = retention
        self.every = every
        self.first_after = first_after
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.database.one_connection:
            return  # a test's one shared connection takes no writer at random times
        self._task = asyncio.create_task(self._run(), name="trash-purge")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> Purged | None:
        """Purge unless another process is purging (then None)."""
        async with self.database.session_maker() as db:
            # Held to the end of this transaction: the others skip this round.
            if not await db.scalar(select(func.pg_try_advisory_xact_lock(PURGE_LOCK))):
                return None
            purged = await purge(db, self.retention)
            await db.commit()
        if purged.conversations or purged.messages:
            logger.info("trash purged: %s", purged)
        return purged

    async def _run(self) -> None:
        await asyncio.sleep(self.first_after.total_seconds())
        while True:
            try:
                await self.run_once()
            except Exception:
                # The next round tries again; serving goes on.
                logger.exception("trash purge failed")
            await asyncio.sleep(self.every.total_seconds())
