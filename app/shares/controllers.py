"""Share links: `POST /api/conversations/{id}/shares`, `/api/shares` (yours), and
`/api/shared/{token}` (anyone holding the link; the page is `/s/{token}`, app/web)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, FromQuery

from app.auth.guard import CurrentIdentity
from app.chat.schemas import ConversationDetail
from app.chat.services import MessageService
from app.lib.cursors import decode_keyset
from app.lib.deps import AppSettings, DbSession
from app.lib.openapi import problems
from app.lib.rate_limit import RateLimiter, client_ip
from app.lib.time import as_utc
from app.shares import schemas
from app.shares.services import SharedLinks, ShareService

NOT_FOUND = "No such share link, revoked, or its conversation is in the trash or deleted"


async def limit_share_reads(request: Request[Any, Any, Any]) -> None:
    """Reads of shared conversations, per client IP (SHARE_RATE_LIMIT per SHARE_RATE_WINDOW)."""
    limiter: RateLimiter = request.app.state.share_limiter
    await limiter.hit(client_ip(request), "requests for shared conversations")


@post(
    "/api/conversations/{conversation_id:str}/shares",
    tags=["shares"],
    status_code=201,
    responses=problems(404, 429, s404="No such conversation (or not yours, or in the trash)"),
)
async def create_share(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    identity: CurrentIdentity,
    settings: AppSettings,
    conversation_id: FromPath[str],
) -> schemas.ShareCreated:
    """A read-only snapshot of your conversation as it is now (title; role, text, model, time
    and status of the current version of each message) at a new link. The link is in this
    answer only: the server keeps a hash of its token. Counted per user against
    SHARE_RATE_LIMIT."""
    limiter: RateLimiter = request.app.state.share_limiter
    await limiter.hit(f"user:{identity.user_id}", "share links made")
    service = ShareService(db_session, identity.user_id)
    made, token = await service.create(conversation_id, settings.share_max_bytes)
    return schemas.ShareCreated(
        **msgspec.structs.asdict(made),
        token=token,
        url=f"{settings.base_url}/s/{token}",
    )


class ShareController(Controller):
    path = "/api/shares"
    tags = ["shares"]

    @get("/")
    async def list_shares(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> schemas.SharePage:
        """Your share links, newest first (without their tokens); pass `nextCursor` back as
        `cursor` for the next page."""
        service = ShareService(db_session, identity.user_id)
        return await service.list_for_user(limit, decode_keyset(cursor))

    @delete("/{share_id:str}", status_code=204, responses=problems(404))
    async def revoke_share(
        self, db_session: DbSession, identity: CurrentIdentity, share_id: FromPath[str]
    ) -> None:
        """Revoke a link at once: it answers 404 from the next request on."""
        await ShareService(db_session, identity.user_id).delete(share_id)


class SharedController(Controller):
    path = "/api/shared"
    tags = ["shares"]

    @get(
        "/{token:str}",
        opt={"public": True},
        responses=problems(404, 429, s404=NOT_FOUND),
    )
    async def shared_conversation(
        self, request: Request[Any, Any, Any], db_session: DbSession, token: FromPath[str]
    ) -> schemas.SharedConversation:
        """The snapshot behind a link, for anyone holding it (no sign-in): title and
        messages, nothing of the owner's. `X-Robots-Tag: noindex`, no referrer, not stored
        by caches; limited per client IP."""
        await limit_share_reads(request)
        share, messages = await SharedLinks(db_session).get(token)
        return schemas.SharedConversation(
            title=share.title, shared_at=as_utc(share.created_at), messages=messages
        )

    @post(
        "/{token:str}/copy",
        status_code=201,
        responses=problems(404, 429, s404=NOT_FOUND),
    )
    async def copy_shared(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        identity: CurrentIdentity,
        token: FromPath[str],
    ) -> ConversationDetail:
        """Your own copy of a shared conversation, as a new conversation to go on with."""
        await limit_share_reads(request)
        row = await SharedLinks(db_session).copy(token, identity.user_id)
        page = await MessageService(db_session, identity.user_id).page(row.id, None, None)
        return ConversationDetail(
            id=row.id,
            title=row.title,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            messages=page.messages,
            next_cursor=page.next_cursor,
        )
