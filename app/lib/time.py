"""Timestamps as Prisma stores them: naive UTC, millisecond precision."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time as naive UTC truncated to milliseconds (PostgreSQL `TIMESTAMP(3)`)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


def to_naive_utc(value: datetime) -> datetime:
    """Normalise an aware or naive datetime to naive UTC with millisecond precision."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def as_utc(value: datetime) -> datetime:
    """A stored naive-UTC timestamp as an aware one, so JSON carries the `Z`."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
