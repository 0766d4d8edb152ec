"""The signed-in user's profile, preferences and deletion (the export: app/users/exports.py)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.services import SESSION_CACHE
from app.chat.quotas import zone_or_utc
from app.chat.services import checked_system_prompt
from app.db.models import User, UserPreferences
from app.lib.errors import InvalidInput, NotFound
from app.lib.time import as_utc, utc_now
from app.llm.catalogue import ModelCatalogue
from app.stats.services import require_database_zone
from app.users import schemas
from prisma_compat import cuid

THEMES = ("dark", "light", "system")
BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-[A-Za-z0-9]{5,8})*$")
MAX_NAME = 100
MAX_IMAGE_URL = 2048


def profile(user: User) -> schemas.UserProfile:
    return schemas.UserProfile(
        id=user.id,
        name=user.name,
        email=user.email,
        email_verified=as_utc(user.email_verified) if user.email_verified else None,
        image=user.image,
        created_at=as_utc(user.created_at),
        updated_at=as_utc(user.updated_at),
    )


def preferences_schema(row: UserPreferences) -> schemas.Preferences:
    return schemas.Preferences(
        default_model=row.default_model,
        theme=row.theme,
        language=row.language,
        time_zone=row.time_zone,
        updated_at=as_utc(row.updated_at),
        system_prompt=row.system_prompt,
    )


class UserService:
    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self.db = db
        self.user_id = user_id

    async def get(self) -> User:
        user = await self.db.get(User, self.user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def update(self, data: schemas.UserUpdate) -> User:
        user = await self.get()
        if data.name is not msgspec.UNSET:
            name = (data.name or "").strip() or None
            if name and len(name) > MAX_NAME:
                raise InvalidInput(f"name: longer than {MAX_NAME} characters")
            user.name = name
        if data.image is not msgspec.UNSET:
            user.image = _https_url(data.image) if data.image else None
        user.updated_at = utc_now()
        await self.db.flush()
        return user

    async def delete(self) -> None:
        """Removes the user; the database cascades to everything theirs. Committed here, so
        that the user's cached sessions are forgotten after the rows are gone."""
        await self.db.execute(delete(User).where(User.id == self.user_id))
        await self.db.commit()
        SESSION_CACHE.forget(user_id=self.user_id)

    async def preferences(self) -> UserPreferences:
        """The user's preferences, made with Prisma's defaults on first read."""
        now = utc_now()
        await self.db.execute(
            insert(UserPreferences)
            .values(id=cuid(), user_id=self.user_id, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["userId"])
        )
        found = await self.db.scalar(
            select(UserPreferences).where(UserPreferences.user_id == self.user_id)
        )
        assert found is not None
        return found

    async def update_preferences(
        self, data: schemas.PreferencesUpdate, catalogue: ModelCatalogue
    ) -> UserPreferences:
        row = await self.preferences()
        if data.default_model is not msgspec.UNSET:
            if not catalogue.is_known(data.default_model):
                raise InvalidInput(
                    f"defaultModel: {data.default_model!r} is not a model or alias of this server"
                )
            row.default_model = data.default_model
        if data.theme is not msgspec.UNSET:
            if data.theme not in THEMES:
                raise InvalidInput(f"theme: must be one of {', '.join(THEMES)}")
            row.theme = data.theme
        if data.language is not msgspec.UNSET:
            if len(data.language) > 35 or not BCP47.match(data.language):
                raise InvalidInput("language: must be a BCP 47 language tag such as en or pt-BR")
            row.language = data.language
        if data.time_zone is not msgspec.UNSET:
            if data.time_zone is not None and zone_or_utc(data.time_zone) != data.time_zone:
                raise InvalidInput("timeZone: not an IANA time zone name (such as Europe/Berlin)")
            if data.time_zone is not None:
                await require_database_zone(self.db, data.time_zone, "timeZone")
            row.time_zone = data.time_zone
        if data.system_prompt is not msgspec.UNSET:
            row.system_prompt = checked_system_prompt(data.system_prompt)
        row.updated_at = utc_now()
        await self.db.flush()
        return row


def _https_url(raw: str) -> str:
    """Stored as given, never fetched by the server."""
    parts = urlsplit(raw.strip())
    if len(raw) > MAX_IMAGE_URL or parts.scheme != "https" or not parts.netloc:
        raise InvalidInput("image: must be an https URL")
    return raw.strip()
