"""Running an import: the file is read twice, once to check all of it and count its
conversations (a file wrong anywhere stores nothing), then to store them, each conversation
with its messages in one transaction of its own.

A conversation already imported from the same source (`imported_conversations`) is skipped,
so importing the same file again creates nothing twice, and an import that was interrupted
(SIGTERM, a restart) is finished by importing the same file again: what was stored stays,
nothing is stored half-way, the rest is added. Progress is written to the `imports` row as it
goes (`GET /api/imports/{id}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.services import title_from
from app.db.engine import Database
from app.db.models import Conversation, Import, ImportedConversation, Message
from app.imports.reader import (
    ImportedConversation as Read,
)
from app.imports.reader import (
    ImportRefused,
    Source,
    conversations,
    open_source,
)
from app.lib.time import utc_now
from prisma_compat import cuid

logger = logging.getLogger(__name__)

PROGRESS_SECONDS = 0.5
STEP = timedelta(milliseconds=1)


@dataclass
class Tally:
    total: int | None = None
    done: int = 0
    duplicates: int = 0
    messages: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def add_skipped(self, skipped: dict[str, int]) -> None:
        for kind, count in skipped.items():
            self.skipped[kind] = self.skipped.get(kind, 0) + count


def check_file(path: Path) -> Source:
    """The file's kind, or ImportRefused when it is neither export (cheap: its first bytes,
    or the zip's directory)."""
    source, stream = open_source(path)
    stream.close()
    return source


def _count(path: Path) -> int:
    """Every conversation read and converted once: ImportRefused for a file wrong anywhere."""
    source, stream = open_source(path)
    with stream:
        return sum(1 for _ in conversations(source, stream))


class _Conversations:
    """The file's conversations, read in a worker thread one at a time."""

    def __init__(self, path: Path) -> None:
        self._source, self._stream = open_source(path)
        self._items: Iterator[Read] = conversations(self._source, self._stream)

    async def next(self) -> Read | None:
        return await asyncio.to_thread(next, self._items, None)

    def close(self) -> None:
        self._stream.close()


LAPSED = "The server running this import stopped; import the same file again to finish."


def lease_until(lease_seconds: float) -> datetime:
    return utc_now() + timedelta(seconds=lease_seconds)


def running(import_id: str, user_id: str, source: str, lease_seconds: float) -> Import:
    """The `imports` row of an import about to start, its lease taken."""
    return Import(
        id=import_id,
        user_id=user_id,
        source=source,
        status="running",
        lease_until=lease_until(lease_seconds),
    )


async def run_import(
    database: Database,
    import_id: str,
    user_id: str,
    path: Path,
    stop: asyncio.Event | None = None,
    *,
    lease_seconds: float,
) -> Tally:
    """Check, then store, the file's conversations for `user_id`, keeping the `imports` row
    up to date and its lease renewed; the row ends `done`, `failed` (with the reason) or
    `interrupted` (`stop` set: it ends between two conversations, or cancelled)."""
    beat = asyncio.create_task(_renew(database, import_id, lease_seconds))
    try:
        return await _run(database, import_id, user_id, path, stop)
    finally:
        beat.cancel()


async def _renew(database: Database, import_id: str, lease_seconds: float) -> None:
    """Every third of the lease, push it on; a failed renewal is tried again next time (the
    lease outlasts two of them)."""
    while True:
        await asyncio.sleep(lease_seconds / 3)
        try:
            async with database.session_maker() as db:
                await db.execute(
                    update(Import)
                    .where(Import.id == import_id, Import.status == "running")
                    .values(lease_until=lease_until(lease_seconds))
                )
                await db.commit()
        except Exception as exc:
            logger.warning("renewing the lease of import %s failed: %r", import_id, exc)


async def expire_lapsed(db: AsyncSession, user_id: str) -> None:
    """The user's `running` imports whose lease ran out (their process was killed) end
    `interrupted`; what they stored stays, and the same file again finishes them."""
    await db.execute(
        update(Import)
        .where(
            Import.user_id == user_id,
            Import.status == "running",
            Import.lease_until < utc_now(),
        )
        .values(status="interrupted", error=LAPSED, finished_at=utc_now(), lease_until=None)
    )
    await db.commit()


async def _run(
    database: Database,
    import_id: str,
    user_id: str,
    path: Path,
    stop: asyncio.Event | None,
) -> Tally:
    tally = Tally()
    try:
        source = check_file(path)
        tally.total = await asyncio.to_thread(_count, path)
        await _progress(database, import_id, tally)
        reader = _Conversations(path)
        last = time.monotonic()
        try:
            while (read := await reader.next()) is not None:
                if stop is not None and stop.is_set():
                    raise asyncio.CancelledError
                await _store(database, user_id, source, read, tally)
                if time.monotonic() - last > PROGRESS_SECONDS:
                    await _progress(database, import_id, tally)
                    last = time.monotonic()
        finally:
            reader.close()
        # Before the row says `done`: a client that saw it then reads what was imported,
        # wherever the read runs (read replicas, app/db/replicas.py).
        await database.record_write(user_id)
    except ImportRefused as exc:
        await _progress(database, import_id, tally, status="failed", error=str(exc))
        return tally
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.shield(
                _progress(
                    database,
                    import_id,
                    tally,
                    status="interrupted",
                    error="The server stopped; import the same file again to finish.",
                )
            )
        raise
    except Exception as exc:
        logger.exception("import %s failed", import_id)
        await _progress(
            database, import_id, tally, status="failed", error=f"The import failed ({exc})."
        )
        return tally
    await _progress(database, import_id, tally, status="done")
    return tally


async def _progress(
    database: Database,
    import_id: str,
    tally: Tally,
    status: str | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "total": tally.total,
        "done": tally.done,
        "duplicates": tally.duplicates,
        "messages": tally.messages,
        "skipped": tally.skipped,
    }
    if status is not None:
        values |= {"status": status, "error": error, "finished_at": utc_now(), "lease_until": None}
    async with database.session_maker() as db:
        await db.execute(update(Import).where(Import.id == import_id).values(**values))
        await db.commit()


async def _store(
    database: Database, user_id: str, source: Source, read: Read, tally: Tally
) -> None:
    """One conversation and its messages in one transaction; skipped if imported before."""
    key = (ImportedConversation.user_id == user_id) & (ImportedConversation.source == source)
    async with database.session_maker() as db:
        seen = await db.scalar(
            select(ImportedConversation.conversation_id).where(
                key & (ImportedConversation.external_id == read.external_id)
            )
        )
        if seen is None:
            conversation_id = cuid()
            rows = _message_rows(read, user_id, conversation_id)
            created = read.created_at or (rows[0]["created_at"] if rows else utc_now())
            updated = max([read.updated_at or created, *(r["created_at"] for r in rows)])
            first_question = next((m.content for m in read.messages if m.role == "user"), "")
            await db.execute(
                insert(Conversation).values(
                    id=conversation_id,
                    title=read.title or (title_from(first_question) if first_question else None),
                    user_id=user_id,
                    created_at=created,
                    updated_at=updated,
                )
            )
            claimed = await db.scalar(
                pg_insert(ImportedConversation)
                .values(
                    user_id=user_id,
                    source=source,
                    external_id=read.external_id,
                    conversation_id=conversation_id,
                )
                .on_conflict_do_nothing()
                .returning(ImportedConversation.conversation_id)
            )
            if claimed is not None:  # else another import of the same file got there first
                if rows:
                    await db.execute(insert(Message), rows)
                    await db.execute(
                        update(Conversation)
                        .where(Conversation.id == conversation_id)
                        .values(current_leaf_id=_leaf(read, rows))
                    )
                await db.commit()
                tally.done += 1
                tally.messages += len(rows)
                tally.add_skipped(read.skipped)
                return
            await db.rollback()
    tally.done += 1
    tally.duplicates += 1


def _message_rows(read: Read, user_id: str, conversation_id: str) -> list[dict[str, Any]]:
    """The messages as rows, each after its parent (the previous message, or the parent the
    file gives: its branches), its time strictly after its parent's; an answer replies to its
    question. Parents come before their children in `read.messages`."""
    rows: list[dict[str, Any]] = []
    by_key: dict[str, dict[str, Any]] = {}
    previous: dict[str, Any] | None = None
    for message in read.messages:
        if message.key is None:
            parent = previous  # a chain in list order
        else:
            parent = by_key.get(message.parent_key) if message.parent_key else None
        after = parent["created_at"] if parent else None
        at = message.created_at or after or read.created_at or utc_now()
        if after is not None and at <= after:
            at = after + STEP
        row = {
            "id": cuid(),
            "content": message.content,
            "role": message.role,
            "model": message.model,
            "conversation_id": conversation_id,
            "user_id": user_id,
            "created_at": at,
            "status": "complete",
            "parent_id": parent["id"] if parent else None,
            "reply_to_id": parent["id"]
            if parent and message.role == "assistant" and parent["role"] == "user"
            else None,
        }
        rows.append(row)
        previous = row
        if message.key is not None:
            by_key[message.key] = row
    return rows


def _leaf(read: Read, rows: list[dict[str, Any]]) -> str | None:
    """The row that ends the branch shown: the file's current message, else the last one."""
    if read.current_key is not None:
        for message, row in zip(read.messages, rows, strict=True):
            if message.key == read.current_key:
                return str(row["id"])
    return str(rows[-1]["id"]) if rows else None


class Importer:
    """The imports running in this process: one per user at a time."""

    def __init__(self, database: Database, folder: Path, grace_seconds: float = 5.0) -> None:
        self.database = database
        self.folder = folder
        self.grace_seconds = grace_seconds
        self._running: dict[str, asyncio.Task[Tally]] = {}
        self._stop = asyncio.Event()

    def busy(self, user_id: str) -> bool:
        task = self._running.get(user_id)
        return task is not None and not task.done()

    def start(self, import_id: str, user_id: str, path: Path, lease_seconds: float) -> None:
        async def run() -> Tally:
            try:
                return await run_import(
                    self.database, import_id, user_id, path, self._stop, lease_seconds=lease_seconds
                )
            finally:
                await asyncio.to_thread(path.unlink, missing_ok=True)
                self._running.pop(user_id, None)

        self._running[user_id] = asyncio.create_task(run(), name=f"import-{import_id}")

    async def wait(self, user_id: str) -> None:
        """Until the user's running import ends (tests, the CLI)."""
        task = self._running.get(user_id)
        if task is not None:
            with contextlib.suppress(Exception):
                await task

    async def aclose(self) -> None:
        """On shutdown: imports still running end `interrupted` between two conversations
        (cancelled if one takes longer than the grace); importing the same file again
        finishes them."""
        self._stop.set()
        tasks = list(self._running.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.grace_seconds)
            for task in late:
                task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
