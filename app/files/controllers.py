"""`/api/files`: upload an attachment, read it back (its owner only)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, delete, get, post
from litestar.params import FromQuery, Parameter
from litestar.response import Stream

from app.auth.guard import CurrentIdentity
from app.db.engine import Database
from app.files.multipart import FileUpload
from app.files.schemas import FileInfo, FileList, file_info
from app.files.services import FileService, file_totals
from app.files.sniff import is_image
from app.files.storage import PostgresStorage
from app.lib.cursors import decode_keyset, encode_keyset
from app.lib.deps import AppSettings, DbSession
from app.lib.errors import PayloadTooLarge
from app.lib.openapi import problems, success
from app.lib.pagination import clamp

# The multipart framing around the file: headers, boundaries, a few small fields.
FRAMING_BYTES = 64 * 1024
# A file is data, never a page: no script, no plugin, no form, no same-origin access.
SANDBOX_CSP = "default-src 'none'; sandbox"


def disposition(kind: str, name: str) -> str:
    """RFC 6266: an ASCII fallback and the UTF-8 name."""
    fallback = name.encode("ascii", "replace").decode().replace("?", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class FileController(Controller):
    path = "/api/files"
    tags = ["files"]

    @post(
        "/",
        status_code=201,
        request_max_body_size=None,  # FILE_MAX_BYTES, counted as the file is stored
        responses={
            **success(FileInfo, "The stored file (the earlier one, if you sent it before)",
                      status=201),
            **problems(
                400, 413, 415, 429, 503,
                s413="Larger than FILE_MAX_BYTES",
                s415="Not PNG, JPEG, WebP, GIF or PDF (read from the bytes)",
                s429="Your files would pass FILE_QUOTA_BYTES",
            ),
        },
    )  # fmt: skip
    async def upload(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        identity: CurrentIdentity,
        settings: AppSettings,
    ) -> FileInfo:
        """One file as `multipart/form-data`, in the field `file`: an image (PNG, JPEG,
        WebP, GIF) or a PDF, at most FILE_MAX_BYTES. Streamed into the database as it
        arrives; an upload cut short stores nothing. The same bytes sent again give the
        same file. Attach it to a message with `files: [id]` or an AI SDK `file` part."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.file_max_bytes + FRAMING_BYTES:
            raise PayloadTooLarge(
                f"file: larger than FILE_MAX_BYTES ({settings.file_max_bytes:,} bytes)"
            )
        upload = FileUpload(request)
        # Signing in read the session through this request's session: its transaction ends
        # here, so that no pooled connection waits on the client while it sends the file.
        await db_session.commit()
        name = await upload.open()
        service = FileService(db_session, identity.user_id, settings)
        return file_info(await service.upload(upload.chunks(), name))

    @get("/")
    async def list_files(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        settings: AppSettings,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> FileList:
        """Your files, newest first (`limit`: default 50, at most 200; pass `nextCursor` back
        as `cursor` for the next page), how many there are and what they take of your
        quota."""
        service = FileService(db_session, identity.user_id, settings)
        size = clamp(limit, 50, 200)
        rows = await service.list_for_user(size + 1, decode_keyset(cursor))
        page = rows[:size]
        count, used = await file_totals(db_session, identity.user_id)
        return FileList(
            files=[file_info(r) for r in page],
            count=count,
            bytes=used,
            quota_bytes=settings.file_quota_bytes,
            next_cursor=encode_keyset(page[-1].created_at, page[-1].id)
            if len(rows) > size
            else None,
        )

    @delete("/{file_id:str}", status_code=204, responses=problems(404))
    async def delete_file(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        settings: AppSettings,
        file_id: str = Parameter(max_length=64),
    ) -> None:
        """Delete a file of yours and its bytes (frees its quota); messages that carried it
        keep their text and no longer show it."""
        await FileService(db_session, identity.user_id, settings).delete(file_id)

    @get("/{file_id:str}", responses=problems(404))
    async def download(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        identity: CurrentIdentity,
        settings: AppSettings,
        file_id: str = Parameter(max_length=64),
    ) -> Stream:
        """The file's bytes, to its owner only (404 for anyone else). Images are shown
        inline; anything else is a download. Never run as a page: `nosniff` and a
        sandboxing CSP."""
        row = await FileService(db_session, identity.user_id, settings).get_owned(file_id)
        await db_session.commit()  # hold no transaction while the client reads
        database: Database = request.app.state.database
        storage = PostgresStorage(db_session, database.session_maker)
        kind = "inline" if is_image(row.media_type) else "attachment"
        return Stream(
            storage.read(row.id),
            media_type=row.media_type,
            headers={
                "Content-Length": str(row.size),
                "Content-Disposition": disposition(kind, row.name),
                "Content-Security-Policy": SANDBOX_CSP,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "private, no-store",
                "ETag": f'"{row.sha256}"',
            },
        )
