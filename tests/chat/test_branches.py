"""Edits that branch (issue 23 item 2): an edit makes a sibling of the question, the old branch
stays whole and comes back when switched to, and the prompt holds only the current branch."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.chat.trash import purge
from app.db.engine import Database
from app.settings import Settings
from tests.auth.conftest import count, make_session, make_user
from tests.chat.conftest import chat_json, chat_settings, sse_events
from tests.chat.test_ai_sdk import ui_chunks
from tests.chat.test_live import live_app
from tests.fakes.llm import FakeLLM, Scenario

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*")


async def _edit(
    api: httpx.AsyncClient, conversation_id: str, message_id: str, message: str
) -> httpx.Response:
    return await api.post(
        f"/api/conversations/{conversation_id}/messages/{message_id}/edit",
        json={"message": message},
    )


async def _shown(api: httpx.AsyncClient, conversation_id: str) -> list[dict[str, Any]]:
    page = await api.get(f"/api/conversations/{conversation_id}/messages")
    assert page.status_code == 200, page.text
    return list(page.json()["messages"])


def _prompt(fake: FakeLLM) -> list[str]:
    """What the model was last sent, without the system prompt."""
    return [m["content"] for m in fake.received[-1].body["messages"] if m["role"] != "system"]


async def _two_exchanges(api: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    first = await chat_json(api, "first question")
    conversation_id = first["conversationId"]
    second = await chat_json(api, "second question", conversation_id)
    return conversation_id, second


async def test_an_edit_makes_a_branch_and_the_prompt_holds_only_that_branch(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    conversation_id, second = await _two_exchanges(api)
    groq_fake.next(Scenario(chunks=["edited ", "answer"]))
    edited = await _edit(api, conversation_id, second["userMessage"]["id"], "second, edited")
    assert edited.status_code == 200, edited.text
    result = edited.json()
    assert result["aiMessage"]["content"] == "edited answer"
    assert result["userMessage"]["parentId"] == second["userMessage"]["parentId"]
    assert _prompt(groq_fake) == ["first question", "Hello, world!", "second, edited"]
    shown = await _shown(api, conversation_id)
    assert [m["content"] for m in shown] == [
        "first question", "Hello, world!", "second, edited", "edited answer"
    ]  # fmt: skip
    question = shown[2]
    assert question["siblingIds"] == [second["userMessage"]["id"], result["userMessage"]["id"]]
    assert (question["siblingIndex"], question["siblingCount"]) == (1, 2)
    assert result["aiMessage"]["promptMessageIds"] == [
        shown[0]["id"],
        shown[1]["id"],
        shown[2]["id"],
    ]


async def test_the_old_branch_comes_back_whole_and_the_next_answer_continues_it(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    conversation_id, second = await _two_exchanges(api)
    old_question, old_answer = second["userMessage"]["id"], second["aiMessage"]["id"]
    assert (await _edit(api, conversation_id, old_question, "another way")).status_code == 200
    switched = await api.post(
        f"/api/conversations/{conversation_id}/branch", json={"messageId": old_question}
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["currentLeafId"] == old_answer
    assert [m["id"] for m in switched.json()["messages"]][-2:] == [old_question, old_answer]
    third = await chat_json(api, "third question", conversation_id)
    assert _prompt(groq_fake) == [
        "first question", "Hello, world!", "second question", "Hello, world!", "third question"
    ]  # fmt: skip
    assert "another way" not in str(groq_fake.received[-1].body)
    assert third["userMessage"]["parentId"] == old_answer
    shown = await _shown(api, conversation_id)
    assert [m["content"] for m in shown] == [
        "first question", "Hello, world!", "second question", "Hello, world!",
        "third question", "Hello, world!",
    ]  # fmt: skip
    assert third["aiMessage"]["promptMessageIds"] == [m["id"] for m in shown[:5]]


async def test_the_branches_of_a_message_give_its_place_among_its_siblings(
    api: httpx.AsyncClient,
) -> None:
    conversation_id, second = await _two_exchanges(api)
    question = second["userMessage"]["id"]
    ids = [question]
    for n in range(2):
        edited = await _edit(api, conversation_id, question, f"version {n + 2}")
        ids.append(edited.json()["userMessage"]["id"])
    found = await api.get(f"/api/conversations/{conversation_id}/messages/{ids[1]}/branches")
    assert found.status_code == 200
    assert found.json() == {
        "messageId": ids[1], "parentId": second["userMessage"]["parentId"], "siblings": ids,
        "index": 1, "count": 3,
    }  # fmt: skip


async def test_editing_the_first_message_makes_a_second_root(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    conversation_id, second = await _two_exchanges(api)
    first_id = (await _shown(api, conversation_id))[0]["id"]
    edited = await _edit(api, conversation_id, first_id, "a new start")
    assert edited.status_code == 200
    assert edited.json()["userMessage"]["parentId"] is None
    assert _prompt(groq_fake) == ["a new start"]
    shown = await _shown(api, conversation_id)
    assert [m["content"] for m in shown] == ["a new start", "Hello, world!"]
    assert shown[0]["siblingIds"] == [first_id, edited.json()["userMessage"]["id"]]
    back = await api.post(
        f"/api/conversations/{conversation_id}/branch", json={"messageId": first_id}
    )
    assert back.json()["currentLeafId"] == second["aiMessage"]["id"]


async def test_regenerate_adds_a_sibling_answer_and_versions_still_list(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    conversation_id, second = await _two_exchanges(api)
    groq_fake.next(Scenario(chunks=["again"]))
    again = await api.post(f"/api/conversations/{conversation_id}/regenerate", json={})
    assert again.status_code == 200
    answer = again.json()["aiMessage"]
    assert answer["parentId"] == second["userMessage"]["id"]
    shown = await _shown(api, conversation_id)
    assert shown[-1]["siblingIds"] == [second["aiMessage"]["id"], answer["id"]]
    # Switching to the earlier version shows it; the next question follows it.
    back = await api.post(
        f"/api/conversations/{conversation_id}/branch",
        json={"messageId": second["aiMessage"]["id"]},
    )
    assert back.json()["messages"][-1]["id"] == second["aiMessage"]["id"]
    await chat_json(api, "after the first version", conversation_id)
    assert "again" not in _prompt(groq_fake)


async def test_an_edit_answers_in_this_apis_events_and_in_the_ai_sdk_stream(
    api: httpx.AsyncClient,
) -> None:
    conversation_id, second = await _two_exchanges(api)
    path = f"/api/conversations/{conversation_id}/messages/{second['userMessage']['id']}/edit"
    events = await api.post(path, json={"message": "as events", "stream": True})
    assert events.status_code == 200
    names = [name for name, _ in sse_events(events.text)]
    assert names[0] == "start" and names[-1] == "done", names
    ui = await api.post(path, params={"format": "ui"}, json={"message": "as the AI SDK"})
    assert ui.headers["x-vercel-ai-ui-message-stream"] == "v1"
    chunks = ui_chunks(ui)
    assert chunks[0]["type"] == "start" and chunks[-1]["type"] == "finish"
    listed = await api.get(
        f"/api/conversations/{conversation_id}/messages/{second['userMessage']['id']}/branches"
    )
    assert listed.json()["count"] == 3


async def test_the_ai_sdk_submit_with_a_message_id_is_an_edit(
    api: httpx.AsyncClient, groq_fake: FakeLLM, connection: AsyncConnection
) -> None:
    chat_id = "branchAiSdk00001"

    def body(message_id: str, words: str, **extra: Any) -> dict[str, Any]:
        message = {"id": message_id, "role": "user", "parts": [{"type": "text", "text": words}]}
        return {"id": chat_id, "messages": [message], "trigger": "submit-message", **extra}

    assert (await api.post("/api/chat", json=body("clientQuestion01", "Hi"))).status_code == 200
    assert (await api.post("/api/chat", json=body("clientQuestion02", "More"))).status_code == 200
    # sendMessage({text, messageId}) keeps the edited message's id and names it.
    edit = body("clientQuestion02", "More, edited", messageId="clientQuestion02")
    response = await api.post("/api/chat", json=edit)
    assert response.status_code == 200
    assert ui_chunks(response)[-1]["type"] == "finish"
    assert _prompt(groq_fake) == ["Hi", "Hello, world!", "More, edited"]
    assert await count(connection, "messages", '"conversationId" = :c', c=chat_id) == 6
    shown = await _shown(api, chat_id)
    assert [m["content"] for m in shown] == ["Hi", "Hello, world!", "More, edited", "Hello, world!"]
    assert shown[2]["siblingCount"] == 2


async def test_a_conversation_written_by_prisma_reads_linearly_and_can_be_edited(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    """Rows with no parent and a conversation with no leaf (Prisma's writes) read in order."""
    user_id = api.user_id  # type: ignore[attr-defined]
    await connection.execute(
        text(
            'INSERT INTO conversations (id, "userId", title, "updatedAt") '
            "VALUES ('prismaConv', :u, 'from prisma', now())"
        ),
        {"u": user_id},
    )
    for n, (role, words) in enumerate([("user", "p1"), ("assistant", "a1"), ("user", "p2"),
                                       ("assistant", "a2")]):  # fmt: skip
        await connection.execute(
            text(
                'INSERT INTO messages (id, content, role, "conversationId", "userId", "createdAt") '
                "VALUES (:i, :c, :r, 'prismaConv', :u, now() + make_interval(secs => :n))"
            ),
            {"i": f"prismaMsg{n}", "c": words, "r": role, "u": user_id, "n": n},
        )
    shown = await _shown(api, "prismaConv")
    assert [m["content"] for m in shown] == ["p1", "a1", "p2", "a2"]
    listed = (await api.get("/api/conversations")).json()["conversations"]
    assert listed[0]["lastMessage"] == "a2"
    edited = await _edit(api, "prismaConv", "prismaMsg2", "p2 edited")
    assert edited.status_code == 200, edited.text
    assert _prompt(groq_fake) == ["p1", "a1", "p2 edited"]
    assert edited.json()["userMessage"]["parentId"] == "prismaMsg1"
    back = await api.post("/api/conversations/prismaConv/branch", json={"messageId": "prismaMsg2"})
    assert [m["content"] for m in back.json()["messages"]] == ["p1", "a1", "p2", "a2"]


async def test_edits_that_cannot_be_made_store_nothing(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    conversation_id, second = await _two_exchanges(api)
    question, answer = second["userMessage"]["id"], second["aiMessage"]["id"]
    before = await count(connection, "messages")

    of_answer = await _edit(api, conversation_id, answer, "x")
    assert of_answer.status_code == 400 and "answer" in of_answer.json()["detail"]
    empty = await _edit(api, conversation_id, question, "   ")
    assert empty.status_code == 400
    unknown = await _edit(api, conversation_id, "noSuchMessage", "x")
    assert unknown.status_code == 404

    other = await make_session(connection, await make_user(connection, "eve@example.com"))
    eve = {"authorization": f"Bearer {other}"}
    theirs = await api.post(
        f"/api/conversations/{conversation_id}/messages/{question}/edit",
        json={"message": "mine now"}, headers=eve,
    )  # fmt: skip
    assert theirs.status_code == 404
    branches = await api.get(
        f"/api/conversations/{conversation_id}/messages/{question}/branches", headers=eve
    )
    assert branches.status_code == 404
    switched = await api.post(
        f"/api/conversations/{conversation_id}/branch", json={"messageId": question}, headers=eve
    )
    assert switched.status_code == 404

    assert (await api.delete(f"/api/messages/{question}")).status_code == 204
    trashed = await _edit(api, conversation_id, question, "x")
    assert trashed.status_code == 404 and "trash" in trashed.json()["detail"]

    await connection.execute(
        text("UPDATE conversations SET \"generatingUntil\" = now() + interval '1 minute'")
    )
    first = (await _shown(api, conversation_id))[0]["id"]
    busy = await _edit(api, conversation_id, first, "while answering")
    assert busy.status_code == 409
    assert await count(connection, "messages") == before


async def test_switching_to_a_message_of_another_conversation_is_not_found(
    api: httpx.AsyncClient,
) -> None:
    one = (await chat_json(api, "one"))["conversationId"]
    other = await chat_json(api, "other")
    moved = await api.post(
        f"/api/conversations/{one}/branch", json={"messageId": other["userMessage"]["id"]}
    )
    assert moved.status_code == 404


async def test_two_edits_racing_on_one_message_keep_both_branches(
    settings: Settings, database_url: str, groq_fake: FakeLLM
) -> None:
    """Over real HTTP, two edits of one question at once: one is answered, the other is
    refused with 409 while that answer runs (one answer at a time, as chat does) and stores
    nothing; sent again, it is answered too. Both branches are kept, and the original."""
    groq_fake.default = Scenario(chunks=[f"w{i} " for i in range(10)], gap=0.02)
    async with live_app(chat_settings(settings, groq_fake), database_url) as (url, token, db):
        async with httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            first = await chat_json(client, "the question")
            conversation_id = first["conversationId"]
            question = first["userMessage"]["id"]
            texts = ["edit one", "edit two"]
            racing = await asyncio.gather(
                *(_edit(client, conversation_id, question, t) for t in texts)
            )
            statuses = sorted(r.status_code for r in racing)
            assert statuses in ([200, 200], [200, 409]), [r.text for r in racing]
            for words, response in zip(texts, racing, strict=True):
                while response.status_code == 409:
                    await asyncio.sleep(0.05)
                    response = await _edit(client, conversation_id, question, words)
                assert response.status_code == 200, response.text
            branches = await client.get(
                f"/api/conversations/{conversation_id}/messages/{question}/branches"
            )
            siblings = branches.json()["siblings"]
            assert len(siblings) == 3 and siblings[0] == question
            contents = set()
            for sibling in siblings:
                shown = await client.post(
                    f"/api/conversations/{conversation_id}/branch", json={"messageId": sibling}
                )
                messages = shown.json()["messages"]
                assert [m["id"] for m in messages[:1]] == [sibling] and len(messages) == 2
                assert messages[1]["status"] == "complete"
                contents.add(messages[0]["content"])
            assert contents == {"the question", "edit one", "edit two"}
        async with db.engine.connect() as conn:
            stored = await conn.scalar(
                text('SELECT count(*) FROM messages WHERE "conversationId" = :c'),
                {"c": conversation_id},
            )
        await db.engine.dispose()
    assert stored == 6


async def test_trashing_the_last_message_ends_the_branch_at_its_parent(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    conversation_id, second = await _two_exchanges(api)
    assert (await api.delete(f"/api/messages/{second['aiMessage']['id']}")).status_code == 204
    listed = (await api.get("/api/conversations")).json()["conversations"][0]
    assert (listed["lastMessage"], listed["lastMessageRole"]) == ("second question", "user")
    detail = (await api.get(f"/api/conversations/{conversation_id}")).json()
    assert detail["currentLeafId"] == second["userMessage"]["id"]
    await chat_json(api, "third question", conversation_id)
    assert _prompt(groq_fake) == [
        "first question", "Hello, world!", "second question", "third question"
    ]  # fmt: skip


async def test_pages_of_a_branch_follow_the_cursor_without_gaps(api: httpx.AsyncClient) -> None:
    conversation_id, second = await _two_exchanges(api)
    assert (await _edit(api, conversation_id, second["userMessage"]["id"], "edited")).is_success
    await chat_json(api, "third question", conversation_id)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = await api.get(f"/api/conversations/{conversation_id}/messages", params=params)
        body = page.json()
        seen = [m["content"] for m in body["messages"]] + seen
        if body["nextCursor"] is None:
            break
        params["before"] = body["nextCursor"]
    assert seen == [
        "first question", "Hello, world!", "edited", "Hello, world!", "third question",
        "Hello, world!",
    ]  # fmt: skip


async def _purge_now(connection: AsyncConnection) -> None:
    async with Database.bound_to(connection).session_maker() as db:
        await purge(db, timedelta(0))
        await db.commit()


async def test_a_purge_keeps_the_branch_whole_and_the_leaf_on_a_message_that_stays(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    """Review finding: the purge deleted trashed messages and the foreign key's SET NULL cut
    the branch under them; a leaf left on a purged row made the next question's parent a
    row that was gone (a foreign-key violation: 500)."""
    conversation_id, second = await _two_exchanges(api)
    shown = await _shown(api, conversation_id)
    first_answer = shown[1]["id"]
    # The middle of the branch, then its end, question and answer, go to the trash.
    for message_id in (first_answer, second["userMessage"]["id"], second["aiMessage"]["id"]):
        assert (await api.delete(f"/api/messages/{message_id}")).status_code == 204
    detail = (await api.get(f"/api/conversations/{conversation_id}")).json()
    assert detail["currentLeafId"] == shown[0]["id"]  # the nearest live ancestor
    await _purge_now(connection)
    assert [m["content"] for m in await _shown(api, conversation_id)] == ["first question"]
    third = await chat_json(api, "third question", conversation_id)
    assert third["userMessage"]["parentId"] == shown[0]["id"]
    assert _prompt(groq_fake) == ["first question", "third question"]


async def test_a_leaf_purged_from_under_the_conversation_is_continued_from_what_stays(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    conversation_id, second = await _two_exchanges(api)
    answer_id = second["aiMessage"]["id"]
    assert (await api.delete(f"/api/messages/{answer_id}")).status_code == 204
    # A leaf put back on the trashed answer (as a Prisma writer or an older version could).
    await connection.execute(
        text('UPDATE conversations SET "currentLeafId" = :m WHERE id = :c'),
        {"m": answer_id, "c": conversation_id},
    )
    await _purge_now(connection)
    detail = (await api.get(f"/api/conversations/{conversation_id}")).json()
    assert detail["currentLeafId"] == second["userMessage"]["id"]
    # And a leaf on a row that is gone altogether (no foreign key on currentLeafId).
    await connection.execute(
        text("UPDATE conversations SET \"currentLeafId\" = 'goneForGood' WHERE id = :c"),
        {"c": conversation_id},
    )
    third = await chat_json(api, "third question", conversation_id)
    assert third["userMessage"]["parentId"] == second["userMessage"]["id"]
    assert _prompt(groq_fake) == [
        "first question", "Hello, world!", "second question", "third question"
    ]  # fmt: skip
