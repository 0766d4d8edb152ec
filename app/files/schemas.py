"""Bodies of the files API (camelCase keys)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from app.db.models import File
from app.lib.schema import CamelStruct
from app.lib.time import as_utc

if TYPE_CHECKING:
    from app.files.services import CarriedFile


class FileInfo(CamelStruct):
    """An uploaded file: `url` is where its owner reads it, and what a message may carry
    (`files: [id]`, or the AI SDK's `file` part with this `url`)."""

    id: str
    url: str
    media_type: str
    size: int
    name: str
    created_at: datetime


class FileList(CamelStruct):
    files: list[FileInfo]
    count: int  # all your files
    bytes: int  # what they take, against FILE_QUOTA_BYTES
    quota_bytes: int
    next_cursor: str | None  # pass as `cursor` for the next page


def file_url(file_id: str) -> str:
    return f"/api/files/{file_id}"


def file_info(row: File | CarriedFile) -> FileInfo:
    return FileInfo(
        id=row.id,
        url=file_url(row.id),
        media_type=row.media_type,
        size=row.size,
        name=row.name,
        created_at=as_utc(row.created_at),
    )
