"""Cursors, decoded once at the boundary into checked values, so no raw cursor text reaches SQL.

Cursors are opaque to clients, but they come back from clients: anything may arrive in their
place (random bytes, deep JSON, NUL, numbers PostgreSQL cannot hold, time zones). Each decoder
gives a value every statement can bind, or raises `InvalidInput` (400). The API issues naive
UTC times; an aware time is converted to naive UTC, which is the same instant.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal, NamedTuple

from app.lib.errors import InvalidInput

# Issued cursors are well under this (about 60 characters for a list, 130 for a search).
MAX_CURSOR_CHARS = 512
# Row ids are cuids, or ids clients chose (app/chat/schemas.py ClientId); no control characters.
_ROW_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,255}\Z")
# Search scores are far below this bound.
_SCORE_PLACES = Decimal("0.000001")
_SCORE_BOUND = Decimal(10) ** 9
Mode = Literal["fulltext", "fuzzy", "filters"]
_PINNED = b"pinned|"  # a list cursor that ended among the pinned conversations


class Keyset(NamedTuple):
    """Where a list or message page ended: its last row's time (naive UTC) and id."""

    at: datetime
    row_id: str


class Listed(NamedTuple):
    """Where a conversation list page ended: pinned conversations come first, so also which
    part of the list it was in."""

    at: datetime
    row_id: str
    pinned: bool


class Ranked(NamedTuple):
    """Where a search page ended: the exact (numeric) score keeps ties between pages in order,
    and `as_of` the recency boost of the first page. A search of filters only (mode
    `filters`) is ordered by activity: `as_of` is then the last row's `updatedAt`."""

    score: Decimal
    conversation_id: str
    as_of: datetime
    mode: Mode = "fulltext"


def encode_keyset(at: datetime, row_id: str) -> str:
    return _encode(f"{at.isoformat()}|{row_id}".encode())


def decode_keyset(raw: str | None, field: str = "cursor") -> Keyset | None:
    """A list or message page cursor (`None` when absent); 400 naming `field` otherwise."""
    if not raw:
        return None
    try:
        stamp, row_id = _decode(raw, field).decode().split("|", 1)
        return Keyset(_naive_utc(datetime.fromisoformat(stamp)), _row_id(row_id))
    except (ValueError, OverflowError):  # UnicodeDecodeError is a ValueError
        raise _refused(field) from None


def encode_listed(cursor: Listed) -> str:
    keyset = f"{cursor.at.isoformat()}|{cursor.row_id}".encode()
    return _encode(_PINNED + keyset if cursor.pinned else keyset)


def decode_listed(raw: str | None, field: str = "cursor") -> Listed | None:
    """A conversation list cursor (`None` when absent); one without the pinned mark (as
    issued before pins) continues among the unpinned ones; 400 naming `field` otherwise."""
    if not raw:
        return None
    found = _decode(raw, field)
    pinned = found.startswith(_PINNED)
    try:
        stamp, row_id = found.removeprefix(_PINNED).decode().split("|", 1)
        return Listed(_naive_utc(datetime.fromisoformat(stamp)), _row_id(row_id), pinned)
    except (ValueError, OverflowError):
        raise _refused(field) from None


def encode_ranked(cursor: Ranked) -> str:
    fields = [str(cursor.score), cursor.conversation_id, cursor.as_of.isoformat(), cursor.mode]
    return _encode(json.dumps(fields).encode())


def decode_ranked(raw: str | None, field: str = "cursor") -> Ranked | None:
    """A search cursor (`None` when absent); 400 naming `field` otherwise."""
    if not raw:
        return None
    try:
        found = json.loads(_decode(raw, field))
        if not isinstance(found, list) or len(found) not in (3, 4):
            raise ValueError(found)
        score, conversation_id, as_of, *mode = found
        if not isinstance(score, str | int) or isinstance(score, bool):
            raise ValueError(score)
        if mode not in ([], ["fulltext"], ["fuzzy"], ["filters"]):
            raise ValueError(mode)
        return Ranked(
            _score(Decimal(score)),
            _row_id(conversation_id),
            _naive_utc(datetime.fromisoformat(as_of)),
            *mode,
        )
    except (ValueError, TypeError, OverflowError, RecursionError, InvalidOperation):
        raise _refused(field) from None


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(raw: str, field: str) -> bytes:
    """The bytes of a cursor: URL-safe base64 with or without padding, nothing else."""
    if len(raw) > MAX_CURSOR_CHARS:
        raise _refused(field)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (ValueError, binascii.Error):
        raise _refused(field) from None


def _naive_utc(value: datetime) -> datetime:
    """The instant as naive UTC (OverflowError when that is before year 1 or after 9999)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _row_id(value: object) -> str:
    if not isinstance(value, str) or not _ROW_ID.match(value):
        raise ValueError(value)
    return value


def _score(value: Decimal) -> Decimal:
    """A score as SQL rounds them (6 places): 1e999999 and 1e-999999, which PostgreSQL's
    numeric cannot hold, are none."""
    if not value.is_finite() or abs(value) >= _SCORE_BOUND:
        raise ValueError(value)
    rounded = value.quantize(_SCORE_PLACES)
    if rounded != value:
        raise ValueError(value)
    return rounded


def _refused(field: str) -> InvalidInput:
    return InvalidInput(f"{field}: not a cursor this API gave out")
