"""`/api/chat` speaking the AI SDK's UI message stream (v1), checked against the documented
chunk schema (../shared/AISDK.md, read from the `ai` package's own `uiMessageChunkSchema`);
idempotent retries; the durable assistant row."""

from __future__ import annotations

import re
from typing import Any

import httpx
import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.settings import Settings
from tests.auth.conftest import make_session, make_user
from tests.chat.conftest import sse_events
from tests.fakes.llm import FakeLLM, Scenario

# The chunk types a backend may send, with their required fields and enums (ai 5, 6 and 7).
REQUIRED = {
    "start": {},
    "text-start": {"id": str},
    "text-delta": {"id": str, "delta": str},
    "text-end": {"id": str},
    "finish": {},
    "message-metadata": {"messageMetadata": object},
    "error": {"errorText": str},
    "abort": {},
}
FINISH_REASONS = {"stop", "length", "content-filter", "tool-calls", "error", "other"}


def ui_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    """Parse a UI message stream the way the SDK does, checking every frame and chunk."""
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    frames = response.text.replace("\r\n", "\n").strip().split("\n\n")
    assert frames[-1] == "data: [DONE]"
    chunks = []
    for frame in frames[:-1]:
        assert frame.startswith("data: ") and "\n" not in frame
        chunk = msgspec.json.decode(frame[len("data: ") :])
        kind = chunk["type"]
        assert kind in REQUIRED, f"undocumented chunk type {kind}"
        for name, expected in REQUIRED[kind].items():
            assert isinstance(chunk[name], expected), (kind, name)
        if kind == "finish" and "finishReason" in chunk:
            assert chunk["finishReason"] in FINISH_REASONS
        chunks.append(chunk)
    return chunks


def check_order(chunks: list[dict[str, Any]]) -> str:
    """start, then text parts opened before their deltas and closed once; returns the text."""
    assert chunks[0]["type"] == "start"
    opened: set[str] = set()
    closed: set[str] = set()
    text_so_far = []
    for chunk in chunks[1:]:
        if chunk["type"] == "text-start":
            opened.add(chunk["id"])
        elif chunk["type"] == "text-delta":
            assert chunk["id"] in opened and chunk["id"] not in closed
            text_so_far.append(chunk["delta"])
        elif chunk["type"] == "text-end":
            assert chunk["id"] in opened
            closed.add(chunk["id"])
    assert opened == closed
    assert chunks[-1]["type"] in {"finish", "error", "abort"}
    return "".join(text_so_far)


def ui_body(chat_id: str, text_: str, message_id: str = "msg0000000000001") -> dict[str, Any]:
    return {
        "id": chat_id,
        "messages": [
            {"id": "earlier0000000001", "role": "user", "parts": [{"type": "text", "text": "x"}]},
            {"id": "earlier0000000002", "role": "assistant", "parts": []},
            {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text_}]},
        ],
        "trigger": "submit-message",
    }


async def test_the_ai_sdk_body_gets_a_ui_message_stream_with_the_stored_answer_id(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(chunks=[f"w{i} " for i in range(50)]))
    response = await api.post("/api/chat", json=ui_body("chatAbc_123-xyz0", "Count please"))
    assert response.status_code == 200
    chunks = ui_chunks(response)
    answer = check_order(chunks)
    assert answer == "".join(f"w{i} " for i in range(50))
    start, finish = chunks[0], chunks[-1]
    assert finish["type"] == "finish" and finish["finishReason"] == "stop"
    row = (
        await connection.execute(
            text("SELECT * FROM messages WHERE id = :i"), {"i": start["messageId"]}
        )
    ).one()
    assert (row.role, row.status, row.content) == ("assistant", "complete", answer)
    assert row.conversationId == "chatAbc_123-xyz0"
    assert start["messageMetadata"]["conversationId"] == "chatAbc_123-xyz0"
    assert start["messageMetadata"]["model"] == "groq/llama-3.3-70b-versatile"
    assert finish["messageMetadata"]["status"] == "complete"
    assert finish["messageMetadata"]["usage"] == {
        "promptTokens": 11, "completionTokens": 7, "estimated": False
    }  # fmt: skip
    question = (
        await connection.execute(text("SELECT * FROM messages WHERE id = :i"), {"i": row.replyToId})
    ).one()
    # The question is the last user message; history comes from the database, not the client.
    assert (question.content, question.clientMessageId) == ("Count please", "msg0000000000001")
    assert groq_fake.received[-1].body["messages"][1:] == [
        {"role": "user", "content": "Count please"}
    ]


async def test_the_last_message_alone_is_enough(api: httpx.AsyncClient) -> None:
    body = {
        "id": "onlylast00000001",
        "message": {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]},
    }
    chunks = ui_chunks(await api.post("/api/chat", json=body))
    assert check_order(chunks) == "Hello, world!"
    second = {**body, "message": {**body["message"], "id": "m2"}}
    again = ui_chunks(await api.post("/api/chat", json=second))
    assert again[0]["messageMetadata"]["conversationId"] == "onlylast00000001"
    listed = await api.get("/api/conversations/onlylast00000001")
    assert [m["role"] for m in listed.json()["messages"]] == ["user", "assistant"] * 2


async def test_regenerate_message_answers_the_last_question_again(
    api: httpx.AsyncClient, groq_fake: FakeLLM
) -> None:
    first = ui_chunks(await api.post("/api/chat", json=ui_body("regen00000000001", "Hi")))
    groq_fake.next(Scenario(chunks=["Another ", "answer"]))
    body = {**ui_body("regen00000000001", "Hi"), "trigger": "regenerate-message"}
    body["messageId"] = first[0]["messageId"]
    second = ui_chunks(await api.post("/api/chat", json=body))
    assert check_order(second) == "Another answer"
    assert second[0]["messageId"] != first[0]["messageId"]
    page = await api.get(
        "/api/conversations/regen00000000001/messages", params={"includeVersions": "true"}
    )
    answers = [m for m in page.json()["messages"] if m["role"] == "assistant"]
    assert [a["supersededAt"] is None for a in answers] == [False, True]
    assert sum(m["role"] == "user" for m in page.json()["messages"]) == 1


async def test_a_provider_failure_is_an_error_chunk_and_the_partial_stays(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(chunks=["partial ", "text ", "more"], disconnect_after=2))
    chunks = ui_chunks(await api.post("/api/chat", json=ui_body("failing000000001", "Hi")))
    assert check_order(chunks) == "partial text "
    assert chunks[-1]["type"] == "error" and chunks[-1]["errorText"]
    assert chunks[-2] == {
        "type": "message-metadata", "messageMetadata": chunks[-2]["messageMetadata"]
    }  # fmt: skip
    assert chunks[-2]["messageMetadata"]["status"] == "incomplete"
    status = await connection.scalar(
        text("SELECT status FROM messages WHERE id = :i"), {"i": chunks[0]["messageId"]}
    )
    assert status == "incomplete"


async def test_chat_ids_are_checked_and_someone_elses_is_not_found_but_resumes_to_nothing(
    api: httpx.AsyncClient, connection: AsyncConnection, settings: Settings
) -> None:
    for bad in ["", "x" * 65, "has space", "semi;colon", "ünï"]:
        response = await api.post("/api/chat", json=ui_body(bad, "Hi"))
        assert response.status_code == 400, bad
        assert response.headers["content-type"].startswith("application/problem+json")
    other = await make_user(connection, "bob@example.com", "Bob")
    bobs_token = await make_session(connection, other)
    made = await api.post("/api/chat", json=ui_body("adasChat0000001", "secret question"))
    assert made.status_code == 200
    as_bob = {"authorization": f"Bearer {bobs_token}"}
    taken = await api.post("/api/chat", json=ui_body("adasChat0000001", "mine?"), headers=as_bob)
    unknown = await api.get("/api/chat/noSuchChat000001/stream", headers=as_bob)
    resume = await api.get("/api/chat/adasChat0000001/stream", headers=as_bob)
    assert taken.status_code == 404
    # useChat({resume: true}) asks for a chat id it has just made up: nothing running, for any id
    # (another user's too), which tells nobody whether the id exists.
    assert resume.status_code == unknown.status_code == 204
    assert resume.content == unknown.content == b""
    assert dict(resume.headers).keys() == dict(unknown.headers).keys()
    count = await connection.scalar(
        text("SELECT count(*) FROM messages WHERE \"conversationId\" = 'adasChat0000001'")
    )
    assert count == 2


async def test_a_retried_request_gets_the_same_exchange_and_stores_nothing_twice(
    api: httpx.AsyncClient, connection: AsyncConnection, groq_fake: FakeLLM
) -> None:
    body = {"message": "Only once please", "clientMessageId": "retry-0001"}
    first = await api.post("/api/chat", json=body)
    again = await api.post("/api/chat", json=body)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    streamed = await api.post("/api/chat", json={**body, "stream": True})
    events = sse_events(streamed.text)
    assert events[-1][1]["assistantMessage"]["id"] == first.json()["aiMessage"]["id"]
    ui = ui_chunks(await api.post("/api/chat", json=ui_body("retrySdk00000001", "Hi", "sdkmsg1")))
    ui_again = ui_chunks(
        await api.post("/api/chat", json=ui_body("retrySdk00000001", "Hi", "sdkmsg1"))
    )
    assert ui_again[0]["messageId"] == ui[0]["messageId"]
    assert check_order(ui_again) == check_order(ui)
    assert len(groq_fake.received) == 2  # the model was asked once per question
    counts = await connection.execute(
        text("SELECT role, count(*) FROM messages GROUP BY role ORDER BY role")
    )
    assert dict(counts.all()) == {"assistant": 2, "user": 2}


async def test_the_legacy_stream_names_the_answer_row_at_the_start(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    response = await api.post("/api/chat", json={"message": "Hi", "stream": True})
    events = sse_events(response.text)
    start, done = events[0][1], events[-1][1]
    assert start["assistantMessageId"] == done["assistantMessage"]["id"]
    assert re.fullmatch(r"c[0-9a-z]{24}", start["assistantMessageId"])


async def test_nothing_running_resumes_as_204_and_stops_as_not_stopped(
    api: httpx.AsyncClient,
) -> None:
    made = (await api.post("/api/chat", json={"message": "Hi"})).json()
    conversation_id = made["conversationId"]
    resumed = await api.get(f"/api/chat/{conversation_id}/stream")
    assert resumed.status_code == 204 and resumed.content == b""
    stopped = await api.post(f"/api/chat/{conversation_id}/stop")
    assert stopped.status_code == 200
    assert stopped.json() == {"stopped": False, "message": None}


async def test_an_answer_orphaned_by_a_dead_process_is_closed_by_the_next_one(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    """A process died mid-answer: its row stays `streaming` and its lease runs out."""
    ui_chunks(await api.post("/api/chat", json=ui_body("orphan0000000001", "Hi", "o1")))
    await connection.execute(
        text(
            "UPDATE messages SET status = 'streaming', content = 'half an' "
            "WHERE \"conversationId\" = 'orphan0000000001' AND role = 'assistant'"
        )
    )
    await connection.execute(
        text(
            "UPDATE conversations SET \"generatingUntil\" = now() at time zone 'utc' + "
            "interval '10 seconds' WHERE id = 'orphan0000000001'"
        )
    )
    busy = await api.post("/api/chat", json=ui_body("orphan0000000001", "Again", "o2"))
    assert busy.status_code == 409  # the lease still runs: perhaps its process is alive
    await connection.execute(
        text(
            "UPDATE conversations SET \"generatingUntil\" = now() at time zone 'utc' - "
            "interval '1 second' WHERE id = 'orphan0000000001'"
        )
    )
    nothing = await api.get("/api/chat/orphan0000000001/stream")
    assert nothing.status_code == 204  # an expired lease: nothing is being generated
    again = ui_chunks(await api.post("/api/chat", json=ui_body("orphan0000000001", "Go", "o3")))
    assert again[-1]["type"] == "finish"
    rows = await connection.execute(
        text(
            'SELECT status, "errorCode", content FROM messages WHERE "conversationId" = '
            "'orphan0000000001' AND role = 'assistant' ORDER BY \"createdAt\""
        )
    )
    assert [tuple(r) for r in rows] == [
        ("incomplete", "interrupted", "half an"), ("complete", None, "Hello, world!")
    ]  # fmt: skip
