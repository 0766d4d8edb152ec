"""`/api/imports`: bring conversations over from ChatGPT's data export or this API's export."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from sqlalchemy import select

from app.auth.guard import CurrentIdentity
from app.db.models import Import
from app.imports.reader import ImportRefused
from app.imports.service import Importer, check_file, expire_lapsed, running
from app.lib.deps import AppSettings, DbSession
from app.lib.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from app.lib.openapi import problems, success
from app.lib.schema import CamelStruct
from app.lib.time import as_utc
from prisma_compat import cuid

UPLOAD_CHUNK = 1024 * 1024


class ImportStatus(CamelStruct):
    id: str
    source: str  # chatgpt, chatwithme
    status: str  # running, done, failed, interrupted
    total: int | None  # conversations in the file, once checked
    done: int  # conversations handled (stored or already there)
    duplicates: int  # of `done`, imported before: not stored again
    messages: int  # messages stored
    skipped: dict[str, int]  # left out, by kind ("images and files", "other branches", ...)
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class ImportList(CamelStruct):
    imports: list[ImportStatus]


def status_of(row: Import) -> ImportStatus:
    return ImportStatus(
        id=row.id,
        source=row.source,
        status=row.status,
        total=row.total,
        done=row.done,
        duplicates=row.duplicates,
        messages=row.messages,
        skipped=row.skipped,
        error=row.error,
        created_at=as_utc(row.created_at),
        finished_at=as_utc(row.finished_at) if row.finished_at else None,
    )


class TooLarge(Exception):
    pass


class ImportController(Controller):
    path = "/api/imports"
    tags = ["imports"]

    @post(
        "/",
        status_code=202,
        request_max_body_size=None,  # IMPORT_MAX_BYTES, counted while the file is written
        responses={
            **success(ImportStatus, "The import is running: follow it at Location", status=202),
            **problems(400, 409, 413, s409="Another import of yours is running"),
        },
    )
    async def start(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        identity: CurrentIdentity,
        settings: AppSettings,
    ) -> Response[ImportStatus]:
        """Send the file as the body: ChatGPT's data export (the `.zip`, or its
        `conversations.json`) or this API's own export (`GET /api/users/me/export`). It is
        checked whole, then stored in the background; `GET /api/imports/{id}` tells how far.
        Importing the same file again stores nothing twice."""
        importer: Importer = request.app.state.importer
        if importer.busy(identity.user_id):
            raise Conflict("Another import of yours is running; wait for it to end.")
        import_id = cuid()
        importer.folder.mkdir(parents=True, exist_ok=True)
        path = importer.folder / f"{import_id}.upload"
        try:
            await _receive(request, path, settings.import_max_bytes)
            source = check_file(path)
        except TooLarge:
            path.unlink(missing_ok=True)
            raise PayloadTooLarge(
                f"The file is larger than IMPORT_MAX_BYTES ({settings.import_max_bytes:,} bytes)."
            ) from None
        except ImportRefused as exc:
            path.unlink(missing_ok=True)
            raise InvalidInput(f"file: {exc}") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        lease = settings.import_lease_seconds
        row = running(import_id, identity.user_id, source, lease)
        db_session.add(row)
        await db_session.commit()
        importer.start(import_id, identity.user_id, path, lease)
        return Response(
            status_of(row),
            status_code=202,
            headers={"Location": f"/api/imports/{import_id}"},
        )

    @get("/", responses=problems())
    async def list_imports(self, db_session: DbSession, identity: CurrentIdentity) -> ImportList:
        """Your imports, newest first (the last 50)."""
        await expire_lapsed(db_session, identity.user_id)
        rows = await db_session.scalars(
            select(Import)
            .where(Import.user_id == identity.user_id)
            .order_by(Import.created_at.desc(), Import.id.desc())
            .limit(50)
        )
        return ImportList(imports=[status_of(r) for r in rows])

    @get("/{import_id:str}", responses=problems(404))
    async def get_import(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        import_id: str = Parameter(max_length=64),
    ) -> ImportStatus:
        """One import's progress and outcome."""
        await expire_lapsed(db_session, identity.user_id)
        row = await db_session.get(Import, import_id)
        if row is None or row.user_id != identity.user_id:
            raise NotFound("No such import.")
        await db_session.refresh(row)
        return status_of(row)


async def _receive(request: Request[Any, Any, Any], path: Path, limit: int) -> None:
    """The body into `path`, never more than `limit` bytes of it (TooLarge)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    written = 0
    with path.open("wb") as file:
        async for chunk in request.stream():
            written += len(chunk)
            if written > limit:
                raise TooLarge
            file.write(chunk)
    if written == 0:
        raise ImportRefused("The body is empty: send the export file as the request body.")
