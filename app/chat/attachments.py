"""Files in the chat flow: the files a question carries (ids, or the AI SDK's `file` parts with
a file's URL or a `data:` URL), whether the model takes them, and their bytes in the prompt.

Earlier user messages in the history window send their files too, newest first, while their
bytes fit HISTORY_FILE_BYTES (the question's own files always go): a model sees what was
discussed, and a long conversation with many images does not make every call huge. An earlier
file the model cannot take (the model was changed) is left out; the text stays.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.history import Window
from app.chat.schemas import UIMessagePart
from app.db.models import File
from app.files.services import CarriedFile, FileService, files_of
from app.files.storage import PostgresStorage
from app.lib.errors import InvalidInput, PayloadTooLarge
from app.llm.catalogue import ModelCatalogue
from app.llm.types import TOKENS_PER_FILE, Attachment, ChatMessage, ModelInfo
from app.settings import Settings

HISTORY_FILE_BYTES = 20 * 1024 * 1024
_FILE_PATH = re.compile(r"^/api/files/([A-Za-z0-9_-]{1,64})$")
_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*),(.*)$", re.S)


@dataclass(frozen=True, slots=True)
class InlineFile:
    """A file sent inside the chat body (a `data:` URL): stored as an upload is."""

    data: bytes
    name: str | None


FileRef = str | InlineFile


def file_ref(url: str | None, filename: str | None, settings: Settings) -> FileRef:
    """An AI SDK `file` part's `url`: this API's file URL (relative or absolute) gives the
    file's id, a base64 `data:` URL its bytes. The server fetches no other URL."""
    url = (url or "").strip()
    if url.startswith("data:"):
        found = _DATA_URL.match(url)
        if found is None or ";base64" not in found.group(2):
            raise InvalidInput("files: a data: URL must be base64 (data:<type>;base64,...)")
        encoded = found.group(3)
        if len(encoded) * 3 // 4 > settings.file_max_bytes + 3:
            raise PayloadTooLarge(
                f"file: larger than FILE_MAX_BYTES ({settings.file_max_bytes:,} bytes)"
            )
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("files: the data: URL is not valid base64") from None
        return InlineFile(data, filename)
    try:
        found = _FILE_PATH.match(urlsplit(url).path) if url else None
    except ValueError:  # urlsplit: "Invalid IPv6 URL" (http://[/...)
        found = None
    if found is None:
        raise InvalidInput(
            "files: a file part's url must be a file of this API (/api/files/{id}, from "
            "POST /api/files) or a data: URL"
        )
    return found.group(1)


def file_refs(
    ids: Sequence[str] | None, parts: Sequence[UIMessagePart], settings: Settings
) -> list[FileRef]:
    """A chat body's files: this API's `files` ids, then the AI SDK's `file` parts."""
    return [*(ids or []), *(file_ref(p.url, p.filename, settings) for p in parts)]


async def carried_files(
    db: AsyncSession, user_id: str, settings: Settings, refs: Sequence[FileRef]
) -> list[File]:
    """The question's files: `data:` ones stored (in the caller's transaction), ids checked
    to be the caller's (404 otherwise), at most FILES_PER_MESSAGE (400)."""
    if len(refs) > settings.files_per_message:
        raise InvalidInput(f"files: at most {settings.files_per_message} files a message")
    service = FileService(db, user_id, settings)
    ids = [
        ref if isinstance(ref, str) else (await service.upload_bytes(ref.data, ref.name)).id
        for ref in refs
    ]
    return await service.owned(ids)


def check_model_takes(
    model: ModelInfo, files: Sequence[File | CarriedFile], catalogue: ModelCatalogue
) -> None:
    """400 when `model` cannot take one of `files`, naming the models that can."""
    for row in files:
        if not model.takes(row.media_type, row.size):
            able = [m.id for m in catalogue.accepting(row.media_type, row.size)]
            what = (
                f"{row.media_type} files"
                if not model.takes(row.media_type)
                else f"files over {model.max_file_bytes:,} bytes ({row.name} has {row.size:,})"
            )
            raise InvalidInput(
                f"files: {model.id} does not take {what}; models that do: "
                + (", ".join(able) or "none on this server")
            )


async def with_files(
    db: AsyncSession,
    user_id: str,
    window: Window,
    question_id: str,
    model: ModelInfo,
    catalogue: ModelCatalogue,
) -> tuple[Window, list[CarriedFile]]:
    """The window with each user message's files as attachments, and the question's files
    (checked against the model: a 400 before anything is committed)."""
    by_message = await files_of(db, user_id, [*window.included_ids, question_id])
    asked = by_message.get(question_id, [])
    check_model_takes(model, asked, catalogue)
    if not by_message:
        return window, asked
    storage = PostgresStorage(db)
    ids = [*window.included_ids, question_id]
    first = len(window.messages) - len(ids)  # after the system prompt, if any
    messages = list(window.messages)
    budget = HISTORY_FILE_BYTES
    extra_tokens = 0
    for index in range(len(ids) - 1, -1, -1):  # newest first: the question, then back
        files = by_message.get(ids[index], [])
        is_question = index == len(ids) - 1
        chosen = [f for f in files if model.takes(f.media_type, f.size)]
        if not is_question:
            if sum(f.size for f in chosen) > budget:
                continue
            budget -= sum(f.size for f in chosen)
        if not chosen:
            continue
        attachments = tuple(
            [Attachment(f.media_type, await storage.read_all(f.id), f.name) for f in chosen]
        )
        message: ChatMessage = messages[first + index]
        messages[first + index] = replace(message, attachments=attachments)
        extra_tokens += TOKENS_PER_FILE * len(chosen)
    return (
        replace(
            window,
            messages=messages,
            prompt_tokens_estimate=window.prompt_tokens_estimate + extra_tokens,
        ),
        asked,
    )
