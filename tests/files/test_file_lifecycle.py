"""Files through a conversation's life (issue 24, item 1): exports list them, the trash keeps
them, purging and permanent deletion free their space when no other message carries them,
deleting the account deletes them, and stats and usage count them."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.chat.trash import purge
from tests.files.conftest import Person, count, person, png, upload


async def chat_with_file(web: httpx.AsyncClient, who: Person, seed: int) -> tuple[str, str]:
    """A conversation whose question carries one image: (conversation id, file id)."""
    file_id = (await upload(web, who, png(seed=seed))).json()["id"]
    answered = await web.post(
        "/api/chat", json={"message": "See", "files": [file_id]}, headers=who.auth
    )
    assert answered.status_code == 200, answered.text
    return answered.json()["conversationId"], file_id


async def test_exports_list_the_files_of_each_message(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada = await person(engine, "ada-lifecycle@example.com")
    conversation_id, file_id = await chat_with_file(web, ada, 1)
    exported = await web.get(f"/api/conversations/{conversation_id}/export", headers=ada.auth)
    question = exported.json()["messages"][0]
    assert [(f["id"], f["url"]) for f in question["files"]] == [(file_id, f"/api/files/{file_id}")]
    markdown = await web.get(
        f"/api/conversations/{conversation_id}/export?format=markdown", headers=ada.auth
    )
    assert f"(/api/files/{file_id}) (image/png)" in markdown.text
    everything = await web.get("/api/users/me/export", headers=ada.auth)
    assert everything.status_code == 200
    (conversation,) = everything.json()["conversations"]
    assert conversation["messages"][0]["files"][0]["id"] == file_id


async def test_the_trash_keeps_files_and_a_restore_brings_them_back(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bea = await person(engine, "bea-lifecycle@example.com")
    conversation_id, file_id = await chat_with_file(web, bea, 2)
    trashed = await web.delete(f"/api/conversations/{conversation_id}", headers=bea.auth)
    assert trashed.status_code == 204
    assert await count(engine, "files", bea.user_id) == 1
    restored = await web.post(f"/api/conversations/{conversation_id}/restore", headers=bea.auth)
    assert restored.json()["messages"][0]["files"][0]["id"] == file_id


async def test_purging_the_trash_deletes_files_no_message_carries(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    cy = await person(engine, "cy-lifecycle@example.com")
    gone_id, _ = await chat_with_file(web, cy, 3)
    kept_id, kept_file = await chat_with_file(web, cy, 4)
    # The same image in a conversation that stays: purging the other must not take it.
    shared = (await upload(web, cy, png(seed=4))).json()["id"]
    assert shared == kept_file
    again = await web.post(
        "/api/chat",
        json={"message": "Again", "files": [shared], "conversationId": gone_id},
        headers=cy.auth,
    )
    assert again.status_code == 200
    unsent = (await upload(web, cy, png(seed=5))).json()["id"]
    assert (await web.delete(f"/api/conversations/{gone_id}", headers=cy.auth)).status_code == 204
    async with AsyncSession(engine) as db:
        purged = await purge(db, timedelta(0))
        await db.commit()
    assert purged.files == 1  # seed 3's image; seed 4's is still in `kept_id`
    assert await count(engine, "files", cy.user_id) == 2
    for file_id in (kept_file, unsent):
        assert (await web.get(f"/api/files/{file_id}", headers=cy.auth)).status_code == 200
    assert kept_id


async def test_deleting_a_conversation_for_good_frees_its_files(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    dee = await person(engine, "dee-lifecycle@example.com")
    conversation_id, file_id = await chat_with_file(web, dee, 6)
    deleted = await web.delete(
        f"/api/conversations/{conversation_id}?permanent=true", headers=dee.auth
    )
    assert deleted.status_code == 204
    assert await count(engine, "files", dee.user_id) == 0
    assert await count(engine, "file_chunks", dee.user_id) == 0
    assert (await web.get(f"/api/files/{file_id}", headers=dee.auth)).status_code == 404


async def test_deleting_the_account_deletes_its_files(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    eli = await person(engine, "eli-lifecycle@example.com")
    await chat_with_file(web, eli, 7)
    await upload(web, eli, png(seed=8))
    assert (await web.delete("/api/users/me", headers=eli.auth)).status_code == 204
    for table in ("files", "file_chunks", "message_files"):
        assert await count(engine, table, eli.user_id) == 0


async def test_stats_and_usage_count_the_files(web: httpx.AsyncClient, engine: AsyncEngine) -> None:
    flo = await person(engine, "flo-lifecycle@example.com")
    first = png(seed=9)
    await upload(web, flo, first)
    await upload(web, flo, first)  # the same bytes: counted once
    second = png(width=4, height=4, seed=10)
    await upload(web, flo, second)
    stats = (await web.get("/api/users/me/stats", headers=flo.auth)).json()
    assert (stats["fileCount"], stats["fileBytes"]) == (2, len(first) + len(second))
    usage = (await web.get("/api/users/me/usage", headers=flo.auth)).json()
    assert usage["fileCount"] == 2
    assert usage["fileBytes"]["used"] == len(first) + len(second)
    assert usage["fileBytes"]["limit"] == 5 * 1024 * 1024


async def test_a_deleted_file_leaves_its_message_with_its_text(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    gil = await person(engine, "gil-lifecycle@example.com")
    conversation_id, file_id = await chat_with_file(web, gil, 11)
    assert (await web.delete(f"/api/files/{file_id}", headers=gil.auth)).status_code == 204
    detail = (await web.get(f"/api/conversations/{conversation_id}", headers=gil.auth)).json()
    question = detail["messages"][0]
    assert (question["content"], question["files"]) == ("See", [])
    assert await count(engine, "message_files", gil.user_id) == 0
