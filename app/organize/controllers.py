"""`/api/tags`, and a conversation's pin, archive and tags: thin handlers over the services."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody

from app.auth.guard import CurrentIdentity
from app.lib.deps import DbSession
from app.lib.openapi import problems
from app.organize import schemas
from app.organize.services import LabelService, TagService

DUPLICATE_OR_FULL = "You have a tag of that name (in any case), or 100 tags already"
NOT_YOURS = "No such conversation or tag (or not yours)"


class TagController(Controller):
    path = "/api/tags"
    tags = ["tags"]

    @get("/")
    async def list_tags(self, db_session: DbSession, identity: CurrentIdentity) -> schemas.TagList:
        """Your tags by name, each with how many conversations (not in the trash) have it."""
        return await TagService(db_session, identity.user_id).list_for_user()

    @post(
        "/",
        status_code=201,
        responses=problems(409, s409="A tag of that name (any case), or 100 tags already"),
    )
    async def create_tag(
        self, db_session: DbSession, identity: CurrentIdentity, data: JSONBody[schemas.TagCreate]
    ) -> schemas.Tag:
        """A new tag: a name unique among yours whatever its case, and a colour (`#rrggbb`)."""
        return await TagService(db_session, identity.user_id).create(data)

    @patch("/{tag_id:str}", responses=problems(404, 409))
    async def update_tag(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        tag_id: FromPath[str],
        data: JSONBody[schemas.TagUpdate],
    ) -> schemas.Tag:
        """Rename it or change its colour."""
        return await TagService(db_session, identity.user_id).update(tag_id, data)

    @delete("/{tag_id:str}", status_code=204, responses=problems(404))
    async def delete_tag(
        self, db_session: DbSession, identity: CurrentIdentity, tag_id: FromPath[str]
    ) -> None:
        """Delete the tag; the conversations that had it stay, without it."""
        await TagService(db_session, identity.user_id).delete(tag_id)


class LabelController(Controller):
    path = "/api/conversations/{conversation_id:str}"
    tags = ["conversations"]

    @put("/pin", status_code=200, responses=problems(404))
    async def pin(
        self, db_session: DbSession, identity: CurrentIdentity, conversation_id: FromPath[str]
    ) -> schemas.Labels:
        """Pin it: pinned conversations come first in the list (pinning is no activity)."""
        return await LabelService(db_session, identity.user_id).pin(conversation_id, True)

    @delete("/pin", status_code=200, responses=problems(404))
    async def unpin(
        self, db_session: DbSession, identity: CurrentIdentity, conversation_id: FromPath[str]
    ) -> schemas.Labels:
        """Unpin it."""
        return await LabelService(db_session, identity.user_id).pin(conversation_id, False)

    @put("/archive", status_code=200, responses=problems(404))
    async def archive(
        self, db_session: DbSession, identity: CurrentIdentity, conversation_id: FromPath[str]
    ) -> schemas.Labels:
        """Archive it: out of the list (see it with `?archived=true`), kept whole, still
        found by search; a new message in it takes it out of the archive."""
        return await LabelService(db_session, identity.user_id).archive(conversation_id, True)

    @delete("/archive", status_code=200, responses=problems(404))
    async def unarchive(
        self, db_session: DbSession, identity: CurrentIdentity, conversation_id: FromPath[str]
    ) -> schemas.Labels:
        """Back into the list."""
        return await LabelService(db_session, identity.user_id).archive(conversation_id, False)

    @put("/tags/{tag_id:str}", status_code=200, responses=problems(404, s404=NOT_YOURS))
    async def add_tag(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        tag_id: FromPath[str],
    ) -> schemas.Labels:
        """Put one of your tags on it (again: no change)."""
        service = LabelService(db_session, identity.user_id)
        return await service.tag(conversation_id, tag_id, True)

    @delete("/tags/{tag_id:str}", status_code=200, responses=problems(404, s404=NOT_YOURS))
    async def remove_tag(
        self,
        db_session: DbSession,
        identity: CurrentIdentity,
        conversation_id: FromPath[str],
        tag_id: FromPath[str],
    ) -> schemas.Labels:
        """Take the tag off it (nothing happens when it had none)."""
        service = LabelService(db_session, identity.user_id)
        return await service.tag(conversation_id, tag_id, False)
