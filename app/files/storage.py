"""Where a file's bytes live: PostgreSQL by default, behind a small interface.

The bytes are written in chunks inside the uploading request's transaction, so an upload that
fails half-way (the client leaves, the database stops) leaves nothing behind, and every app
process and replica sees a committed file with no other service. Reads take one chunk a query,
each in a short session of its own, so a slow download holds no transaction and at most one
chunk in memory.

Moving to an object store (S3, GCS, MinIO) keeps this interface: `append` becomes a part of a
multipart upload keyed by the file id (parts of at least 5 MiB, so `CHUNK_BYTES` grows),
committed by the same transaction's success (and aborted by its failure); `read` a ranged GET;
`delete` a DELETE, called where the `files` row is deleted (today a cascade does it). The
`files` table keeps the metadata, the hash and the owner either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import FileChunk

# One row of `file_chunks`: small enough to hold one in memory per request, large enough that
# a 10 MB file is ten rows.
CHUNK_BYTES = 1024 * 1024


class FileStorage(Protocol):
    """The bytes of files, addressed by file id; the metadata stays in `files`."""

    async def append(self, file_id: str, user_id: str, seq: int, data: bytes) -> None:
        """Write part `seq` (0, 1, 2, ...) of a file being uploaded."""

    def read(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes, part by part."""

    async def read_all(self, file_id: str) -> bytes:
        """The whole file (what a model call needs)."""


class PostgresStorage:
    """`file_chunks` rows: written through the request's session (its transaction), read
    through short sessions of their own when `sessions` is given."""

    def __init__(
        self, db: AsyncSession, sessions: async_sessionmaker[AsyncSession] | None = None
    ) -> None:
        self.db = db
        self.sessions = sessions

    async def append(self, file_id: str, user_id: str, seq: int, data: bytes) -> None:
        # Core, not the ORM: a session's identity map would keep every chunk in memory.
        await self.db.execute(
            insert(FileChunk).values(file_id=file_id, user_id=user_id, seq=seq, data=data)
        )

    async def _chunk(self, file_id: str, seq: int) -> bytes | None:
        query = select(FileChunk.data).where(FileChunk.file_id == file_id, FileChunk.seq == seq)
        if self.sessions is None:
            return await self.db.scalar(query)
        async with self.sessions() as session:
            return await session.scalar(query)

    async def read(self, file_id: str) -> AsyncIterator[bytes]:
        seq = 0
        while (data := await self._chunk(file_id, seq)) is not None:
            yield data
            seq += 1

    async def read_all(self, file_id: str) -> bytes:
        rows = await self.db.scalars(
            select(FileChunk.data).where(FileChunk.file_id == file_id).order_by(FileChunk.seq)
        )
        return b"".join(rows)
