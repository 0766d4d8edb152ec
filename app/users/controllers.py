"""`/api/users/me`: your profile, preferences, export, and account deletion."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, patch
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import JSONBody
from litestar.response import Stream

from app.auth import cookies
from app.auth.cookies import CookieNames
from app.auth.guard import CurrentIdentity
from app.chat.quotas import QuotaService
from app.chat.schemas import UsageReport
from app.db.routing import Reads
from app.lib.deps import AppSettings, DbSession
from app.lib.openapi import problems, success
from app.llm.router import ModelRouter
from app.users import schemas
from app.users.exports import ExportSlots, export_chunks
from app.users.services import UserService, preferences_schema, profile


class UserController(Controller):
    path = "/api/users/me"
    tags = ["users"]

    @get("/")
    async def me(self, db_session: DbSession, identity: CurrentIdentity) -> schemas.UserProfile:
        """Your profile."""
        return profile(await UserService(db_session, identity.user_id).get())

    @patch("/")
    async def update_me(
        self, db_session: DbSession, identity: CurrentIdentity, data: JSONBody[schemas.UserUpdate]
    ) -> schemas.UserProfile:
        """Change `name` and `image` (an https URL, stored and never fetched)."""
        return profile(await UserService(db_session, identity.user_id).update(data))

    @delete("/", status_code=204)
    async def delete_me(
        self, db_session: DbSession, identity: CurrentIdentity, settings: AppSettings
    ) -> Response[None]:
        """Delete your account and everything in it: conversations, sessions, accounts."""
        await UserService(db_session, identity.user_id).delete()
        names = CookieNames.for_settings(settings).session_candidates()
        return Response(
            None, status_code=204, cookies=[cookies.expired(settings, n) for n in names]
        )

    @get("/preferences")
    async def preferences(
        self, db_session: DbSession, identity: CurrentIdentity
    ) -> schemas.Preferences:
        """Made with the defaults (groq, dark, en) on first read."""
        return preferences_schema(await UserService(db_session, identity.user_id).preferences())

    @patch("/preferences")
    async def update_preferences(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        router: NamedDependency[ModelRouter],
        data: JSONBody[schemas.PreferencesUpdate],
    ) -> schemas.Preferences:
        """Change `defaultModel` (an available model), `theme` or `language`."""
        service = UserService(db_session, identity.user_id)
        return preferences_schema(await service.update_preferences(data, router.catalogue))

    @get("/usage")
    async def usage(
        self, db_session: DbSession, identity: CurrentIdentity, settings: AppSettings
    ) -> UsageReport:
        """Today's messages and tokens against the daily budgets (in your `timeZone`), per
        model, and when they reset."""
        return await QuotaService(db_session, identity.user_id, settings).usage()

    @get(
        "/export",
        responses={
            **success(schemas.UserExport, "Everything of yours, streamed as one JSON document"),
            **problems(429, s429="Another export of yours is still running"),
        },
    )
    async def export(
        self, request: Request[Any, Any, Any], reads: Reads, identity: CurrentIdentity
    ) -> Stream:
        """Everything of yours in one JSON download (no tokens), written as it is read; one
        export per user at a time (EXPORT_CONCURRENCY, per process)."""
        session_maker = await reads.session_maker()  # a replica's, when one has your writes
        slots: ExportSlots = request.app.state.export_slots
        release = slots.claim(identity.user_id)
        return Stream(
            export_chunks(session_maker, identity.user_id, release),
            media_type=MediaType.JSON,
            headers={"Content-Disposition": 'attachment; filename="chatwithme-export.json"'},
        )
