"""Filters written in the search box: `tag:name` (or `tag:"two words"`), `pinned:true|false`,
`archived:true|false`, `model:id`, `before:YYYY-MM-DD`, `after:YYYY-MM-DD`.

They are taken out of `q` before full-text search reads it; what is left is the words (maybe
none). A quoted phrase is words, whatever it holds (`"tag:x"` searches for the text). Days are
UTC days: `after:D` from D's start, `before:D` up to D's start (D itself excluded). A value
that is not one of these is a 400 naming `q`, never a search that quietly ignores it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from app.lib.errors import InvalidInput
from app.organize.schemas import MAX_TAG_NAME

MAX_TAG_FILTERS = 10
_FILTER = re.compile(
    r'("[^"]*"?)|(?<!\S)(tag|pinned|archived|model|before|after):("[^"]*"?|\S*)', re.IGNORECASE
)
_MODEL_ID = re.compile(r"^[\w.:/@+-]{1,200}\Z")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class QueryFilters:
    """What `q` asked for besides words."""

    tags: list[str] = field(default_factory=list)
    pinned: bool | None = None
    archived: bool | None = None
    model: str | None = None
    after: datetime | None = None  # createdAt >= this
    before: datetime | None = None  # createdAt < this

    @property
    def given(self) -> bool:
        return bool(self.tags) or any(
            v is not None for v in (self.pinned, self.archived, self.model, self.after, self.before)
        )


def parse(query: str) -> tuple[str, QueryFilters]:
    """(the words of `query`, its filters); InvalidInput (400 on `q`) for a bad filter."""
    found = QueryFilters()
    seen: set[str] = set()

    def take(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return match.group(1)
        key, value = match.group(2).lower(), match.group(3)
        if key != "tag" and key in seen:
            raise InvalidInput(f"q: {key}: given twice")
        seen.add(key)
        _apply(found, key, value)
        return " "

    words = " ".join(_FILTER.sub(take, query).split())
    if found.after and found.before and found.after >= found.before:
        raise InvalidInput("q: after: must be a day before before:")
    return words, found


def _apply(found: QueryFilters, key: str, raw: str) -> None:
    if key == "tag":
        found.tags.append(_tag(raw))
        if len(found.tags) > MAX_TAG_FILTERS:
            raise InvalidInput(f"q: at most {MAX_TAG_FILTERS} tag: filters")
    elif key in ("pinned", "archived"):
        if raw.lower() not in ("true", "false"):
            raise InvalidInput(f"q: {key}: must be true or false")
        setattr(found, key, raw.lower() == "true")
    elif key == "model":
        if not _MODEL_ID.match(raw):
            raise InvalidInput("q: model: must be a model id (as GET /api/models lists them)")
        found.model = raw
    else:
        setattr(found, key, _day(key, raw))


def _tag(raw: str) -> str:
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise InvalidInput('q: tag: a quoted name needs its closing "')
        raw = raw[1:-1]
    name = raw.strip()
    if not name or len(name) > MAX_TAG_NAME or _CONTROL.search(name):
        raise InvalidInput(f"q: tag: a tag name is 1 to {MAX_TAG_NAME} characters")
    return name


def _day(key: str, raw: str) -> datetime:
    try:
        if not _DAY.match(raw):
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"q: {key}: must be a day, YYYY-MM-DD") from None
    return datetime(day.year, day.month, day.day)
