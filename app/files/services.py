"""Files: storing an upload (checked, limited, deduplicated), finding a user's own files, and
linking them to the messages that carry them.

Deduplication is per user: (userId, sha256) is unique. A user who sends the same bytes twice
gets the first file back (its id and name) and pays for it once; two users sending the same
bytes each hold a copy, so quotas count what each sent, deleting one user's data deletes only
their bytes, and no upload can reveal what another user holds.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import IO, Any, NamedTuple

from sqlalchemy import Text, any_, bindparam, delete, func, insert, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.compiled import CompiledQuery, aware_utc
from app.db.models import File, MessageFile
from app.files.sniff import EXTENSIONS, SNIFF_BYTES, media_type_of
from app.files.storage import CHUNK_BYTES, FileStorage, PostgresStorage
from app.lib.cursors import Keyset
from app.lib.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    StorageFull,
    UnsupportedMediaType,
)
from app.settings import Settings

MAX_NAME_CHARS = 255
# Control characters (NUL included), path separators and quotes never reach a stored name:
# the name is shown on the page and sent in Content-Disposition.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f/\\"<>|:*?]')


def clean_name(name: str | None, media_type: str) -> str:
    """A name safe to store and show: the last path segment, no control characters, at most
    255 characters; `file.<ext>` when nothing is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    return name[:MAX_NAME_CHARS] or f"file.{EXTENSIONS[media_type]}"


# The first key of the per-user upload lock (pg_advisory_xact_lock(int, int)); the second is
# the user id's hash.
FILES_LOCK = 0x66696C65  # "file"


def _media_type(head: bytes) -> str:
    media_type = media_type_of(head)
    if media_type is None:
        raise UnsupportedMediaType(
            "file: not an accepted type; send PNG, JPEG, WebP or GIF images, or PDF "
            "(the type is read from the file's bytes, not its name)"
        )
    return media_type


class FileService:
    def __init__(
        self,
        db: AsyncSession,
        user_id: str,
        settings: Settings,
        storage: FileStorage | None = None,
    ) -> None:
        self.db = db
        self.user_id = user_id
        self.settings = settings
        self.storage = storage or PostgresStorage(db)

    async def used_bytes(self) -> int:
        """What the user's stored files take (each content once)."""
        return (await file_totals(self.db, self.user_id))[1]

    async def upload(self, chunks: AsyncIterator[bytes], name: str | None) -> File:
        """Store the bytes `chunks` yields as one file, in the caller's transaction.

        The bytes are read whole first, into a spooled temporary file (one chunk in memory,
        the rest on disk), with no database connection held: a client sending slowly must
        not keep a pooled connection and an open transaction for as long as it takes (ten
        slow uploads would hold the whole pool). The type comes from the first bytes (415 for
        anything but PNG, JPEG, WebP, GIF, PDF, as soon as they arrive) and the size is
        counted as they come (413 past FILE_MAX_BYTES). Then, in one short stretch: bytes
        this user stored before give the earlier file back (nothing new is kept, and nothing
        counts against the quota); else 429 past the quota, or the file is stored."""
        limit = self.settings.file_max_bytes
        digest = hashlib.sha256()
        head = b""
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=CHUNK_BYTES) as spool:
            async for piece in chunks:
                size += len(piece)
                if size > limit:
                    raise PayloadTooLarge(f"file: larger than FILE_MAX_BYTES ({limit:,} bytes)")
                if len(head) < SNIFF_BYTES:
                    head += piece[: SNIFF_BYTES - len(head)]
                    if len(head) == SNIFF_BYTES:
                        _media_type(head)
                digest.update(piece)
                spool.write(piece)
            if size == 0:
                raise InvalidInput("file: empty")
            media_type = _media_type(head)
            spool.seek(0)
            return await self._store(spool, media_type, name, digest.hexdigest(), size)

    async def _store(
        self, spool: IO[bytes], media_type: str, name: str | None, sha256: str, size: int
    ) -> File:
        # One user's uploads take turns from here to their commit, so that two of them at
        # once cannot both fit in the room that is left for one (or store the same bytes
        # twice); other users' do not wait.
        await self.db.execute(
            select(func.pg_advisory_xact_lock(FILES_LOCK, func.hashtext(self.user_id)))
        )
        earlier = await self._by_hash(sha256)
        if earlier is not None:
            return earlier
        if await self.used_bytes() + size > self.settings.file_quota_bytes:
            raise self._full()
        row = File(
            user_id=self.user_id,
            media_type=media_type,
            name=clean_name(name, media_type),
            sha256=sha256,
            size=size,
        )
        self.db.add(row)
        await self.db.flush()
        seq = 0
        while piece := spool.read(CHUNK_BYTES):
            await self.storage.append(row.id, self.user_id, seq, piece)
            seq += 1
        return row

    async def upload_bytes(self, data: bytes, name: str | None) -> File:
        """As `upload`, for bytes already in memory (a `data:` URL in a chat body)."""

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(data), CHUNK_BYTES):
                yield data[start : start + CHUNK_BYTES]

        return await self.upload(pieces(), name)

    def _full(self) -> StorageFull:
        quota = self.settings.file_quota_bytes
        return StorageFull(
            f"file: your files would pass your storage quota (FILE_QUOTA_BYTES, {quota:,} "
            "bytes); delete files (DELETE /api/files/{id}) to make room."
        )

    async def _by_hash(self, sha256: str) -> File | None:
        return await self.db.scalar(
            select(File).where(File.user_id == self.user_id, File.sha256 == sha256)
        )

    async def get_owned(self, file_id: str) -> File:
        """The caller's stored file; NotFound for anyone else's, or none."""
        row = await self.db.scalar(
            select(File).where(
                File.id == file_id, File.user_id == self.user_id, File.sha256.is_not(None)
            )
        )
        if row is None:
            raise NotFound("No such file.")
        return row

    async def list_for_user(self, limit: int, after: Keyset | None = None) -> list[File]:
        """The user's files, newest first; those past `after` (a page's last file)."""
        statement = (
            select(File)
            .where(File.user_id == self.user_id, File.sha256.is_not(None))
            .order_by(File.created_at.desc(), File.id.desc())
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(tuple_(File.created_at, File.id) < tuple(after))
        return list(await self.db.scalars(statement))

    async def delete(self, file_id: str) -> None:
        """Delete the file with its bytes; the messages that carried it no longer do (their
        text stays). NotFound for anyone else's."""
        gone = await self.db.scalar(
            delete(File)
            .where(File.id == file_id, File.user_id == self.user_id, File.sha256.is_not(None))
            .returning(File.id)
        )
        if gone is None:
            raise NotFound("No such file.")

    async def owned(self, file_ids: Sequence[str]) -> list[File]:
        """The caller's files in the order given (repeats dropped); NotFound if any is not
        theirs, 400 past FILES_PER_MESSAGE."""
        ids = list(dict.fromkeys(file_ids))
        most = self.settings.files_per_message
        if len(ids) > most:
            raise InvalidInput(f"files: at most {most} files a message")
        if not ids:
            return []
        # FOR SHARE: a DELETE of one of them waits for this message's commit (and then takes
        # the link with it) instead of removing it between this check and the link's insert
        # (a foreign-key violation: 500).
        rows = await self.db.scalars(
            select(File)
            .where(File.id.in_(ids), File.user_id == self.user_id, File.sha256.is_not(None))
            .with_for_update(read=True)
        )
        found = {row.id: row for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"No such file: {missing[0]}.")
        return [found[i] for i in ids]

    async def attach(self, message_id: str, files: Sequence[File]) -> None:
        """Link `files` to the user message `message_id`, in order."""
        if files:
            await self.db.execute(
                insert(MessageFile),
                [
                    {"message_id": message_id, "file_id": f.id, "user_id": self.user_id,
                     "position": n}
                    for n, f in enumerate(files)
                ],
            )  # fmt: skip

    async def content(self, row: File) -> bytes:
        return await self.storage.read_all(row.id)


async def file_totals(db: AsyncSession, user_id: str) -> tuple[int, int]:
    """How many files the user holds, and their bytes (what FILE_QUOTA_BYTES limits)."""
    found = (
        await db.execute(
            select(func.count(), func.coalesce(func.sum(File.size), 0)).where(
                File.user_id == user_id, File.sha256.is_not(None)
            )
        )
    ).one()
    return int(found[0]), int(found[1])


class CarriedFile(NamedTuple):
    """What a message's file is to the messages that carry it (its bytes are read by id)."""

    id: str
    media_type: str
    size: int
    name: str
    created_at: datetime


# Every message page asks this: compiled once (as the page itself), it runs on the read pool
# when the request has no transaction open. Built with the ORM per request, it took a tenth of
# the app's CPU in the T9 mix.
_CARRIED = CompiledQuery(
    select(
        MessageFile.message_id,
        File.id,
        File.media_type,
        File.size,
        File.name,
        aware_utc(File.created_at),
    )
    .join(File, File.id == MessageFile.file_id)
    .where(
        MessageFile.user_id == bindparam("user_id"),
        MessageFile.message_id == any_(bindparam("ids", type_=ARRAY(Text))),
    )
    .order_by(MessageFile.message_id, MessageFile.position)
)


async def files_of(
    db: AsyncSession, user_id: str, message_ids: Sequence[str]
) -> dict[str, list[CarriedFile]]:
    """The files each of the user's messages carries, in order."""
    if not message_ids:
        return {}
    result: dict[str, list[CarriedFile]] = {}
    for row in await _CARRIED.fetch(db, user_id=user_id, ids=list(message_ids)):
        result.setdefault(row[0], []).append(CarriedFile(*row[1:]))
    return result


def carried_by(messages: Any) -> Any:
    """The ids of the files the messages whose ids `messages` selects carry (a subquery)."""
    return select(MessageFile.file_id).where(MessageFile.message_id.in_(messages))


async def delete_left_over(db: AsyncSession, file_ids: Sequence[str]) -> int:
    """Of `file_ids` (files of messages just deleted for good), those no message carries any
    more, with their bytes: purging a conversation frees its files' space. A file uploaded
    and never sent is not touched here; it stays until its owner is deleted."""
    if not file_ids:
        return 0
    gone = await db.execute(
        delete(File)
        .where(
            File.id.in_(file_ids),
            ~select(MessageFile.file_id).where(MessageFile.file_id == File.id).exists(),
        )
        .returning(File.id)
    )
    return len(gone.all())
