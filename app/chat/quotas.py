"""Daily budgets per user: messages and tokens, counted from the stored messages.

A message counts when it reaches a model: every answer made (a question, or a regeneration),
whatever its outcome; its tokens (prompt and completion) count once they are known. The tokens
of conversation titles a model made count too (`title_usages`), under the title model, though
a title is not a message. Every answer made here names its provider; the answers of a shared
conversation copied into one's own (app/shares) name none, and reached no model for this
user: they do not count. The day is
the user's own (the `timeZone` preference, else UTC). Counting in SQL from `messages` makes the
budget hold across app processes and restarts; a request that starts while another is being
counted may pass at the edge (the answers are counted, not reserved).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat import schemas
from app.db.models import Message, TitleUsage, UserPreferences
from app.files.services import file_totals
from app.lib.errors import QuotaExceeded
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Day:
    """The user's current day, as naive UTC bounds (the stored timestamps' form)."""

    local: date
    zone: str
    start: datetime
    end: datetime


def zone_or_utc(name: str | None) -> str:
    try:
        return name if name and ZoneInfo(name) else "UTC"
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"


def current_day(zone_name: str | None, now: datetime | None = None) -> Day:
    zone_name = zone_or_utc(zone_name)
    zone = ZoneInfo(zone_name)
    today = (now or datetime.now(UTC)).astimezone(zone).date()

    def utc(day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC).replace(tzinfo=None)

    return Day(today, zone_name, utc(today), utc(today + timedelta(days=1)))


class QuotaService:
    def __init__(self, db: AsyncSession, user_id: str, settings: Settings) -> None:
        self.db = db
        self.user_id = user_id
        self.settings = settings

    @property
    def limited(self) -> bool:
        return bool(self.settings.quota_daily_messages or self.settings.quota_daily_tokens)

    async def _day(self) -> Day:
        zone = await self.db.scalar(
            select(UserPreferences.time_zone).where(UserPreferences.user_id == self.user_id)
        )
        return current_day(zone)

    async def _used(self, day: Day) -> list[schemas.ModelUsage]:
        answers = select(
            Message.model.label("model"),
            literal(1).label("messages"),
            (func.coalesce(Message.prompt_tokens, 0) + func.coalesce(Message.completion_tokens, 0))
            .label("tokens"),
        ).where(
            Message.user_id == self.user_id,
            Message.role == "assistant",
            Message.provider.is_not(None),
            Message.created_at >= day.start,
            Message.created_at < day.end,
        )  # fmt: skip
        titles = select(
            TitleUsage.model,
            literal(0),
            func.coalesce(TitleUsage.prompt_tokens, 0)
            + func.coalesce(TitleUsage.completion_tokens, 0),
        ).where(
            TitleUsage.user_id == self.user_id,
            TitleUsage.created_at >= day.start,
            TitleUsage.created_at < day.end,
        )
        used = union_all(answers, titles).subquery("used")
        rows = await self.db.execute(
            select(used.c.model, func.sum(used.c.messages), func.sum(used.c.tokens))
            .group_by(used.c.model)
            .order_by(used.c.model)
        )
        return [schemas.ModelUsage(model=m, messages=int(n), tokens=int(t)) for m, n, t in rows]

    async def usage(self) -> schemas.UsageReport:
        """Today's messages and tokens against the budgets, per model."""
        day = await self._day()
        models = await self._used(day)
        file_count, file_bytes = await file_totals(self.db, self.user_id)
        return schemas.UsageReport(
            day=day.local,
            time_zone=day.zone,
            resets_at=day.end.replace(tzinfo=UTC),
            messages=_budget(sum(m.messages for m in models), self.settings.quota_daily_messages),
            tokens=_budget(sum(m.tokens for m in models), self.settings.quota_daily_tokens),
            models=models,
            file_bytes=_budget(file_bytes, self.settings.file_quota_bytes),
            file_count=file_count,
        )

    async def check(self) -> None:
        """QuotaExceeded (429) when a daily budget is used up."""
        if not self.limited:
            return
        report = await self.usage()
        for name, budget in (("messages", report.messages), ("tokens", report.tokens)):
            if budget.limit is not None and budget.used >= budget.limit:
                wait = (report.resets_at - datetime.now(UTC)).total_seconds()
                raise QuotaExceeded(
                    f"Your daily {name} budget ({budget.limit}) is used up; it resets at "
                    f"{report.resets_at:%Y-%m-%dT%H:%M:%SZ}.",
                    int(wait) + 1,
                    budget=name,
                    limit=budget.limit,
                    used=budget.used,
                    resetsAt=f"{report.resets_at:%Y-%m-%dT%H:%M:%SZ}",
                )


def _budget(used: int, limit: int | None) -> schemas.Budget:
    remaining = None if limit is None else max(0, limit - used)
    return schemas.Budget(used=used, limit=limit, remaining=remaining)
