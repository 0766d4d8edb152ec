"""Answers that outlive their request, seen from two `chatwithme serve` processes on one
database: re-attach and stop from the other process, retries, partial text while generating,
and SIGTERM during an answer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.db.engine import Database
from app.settings import Settings
from tests.chat.conftest import answering, read_ui_stream, sse_events, text_of, ui_body
from tests.conftest import CHATWITHME_BIN, TEST_SECRET
from tests.fakes.llm import FakeLLM, Scenario
from tests.test_cli import _free_port, _wait_healthy

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]


@contextmanager
def serving(
    database_url: str, groq: FakeLLM, workdir: Path, count: int = 2, **extra: str
) -> Iterator[list[Server]]:
    """`count` app processes on one database, their Groq being the loopback fake."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "APP_ENV", "REDIS_URL", "GEMINI_API_KEY", "GOOGLE_API_KEY"}
    }
    env |= {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(workdir / ".data"),
        "AUTH_SECRET": TEST_SECRET,
        "GROQ_API_KEY": "gsk_test_key",
        "GROQ_BASE_URL": groq.url,
        "LOG_LEVEL": "warning",
        "TITLE_MODEL": "none",  # no title calls mixed with the answers' at the fake
        **extra,
    }
    servers = []
    try:
        for _ in range(count):
            port = _free_port()
            process = subprocess.Popen(
                [CHATWITHME_BIN, "serve", "--port", str(port)],
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            servers.append(Server(f"http://127.0.0.1:{port}", process))
        for server in servers:
            _wait_healthy(server.process, int(server.url.rsplit(":", 1)[1]))
        yield servers
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGINT)
        for server in servers:
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.process.kill()


async def signed_in(database: Database, name: str) -> str:
    """A user with a session; returns the bearer token."""
    async with database.engine.begin() as conn:
        await conn.execute(
            text('INSERT INTO users (id, email, "updatedAt") VALUES (:i, :e, now())'),
            {"i": f"u-{name}", "e": f"{name}@example.com"},
        )
        await conn.execute(
            text(
                'INSERT INTO sessions (id, "sessionToken", "userId", expires) '
                "VALUES (:i, :t, :u, now() + interval '1 day')"
            ),
            {"i": f"s-{name}", "t": f"token-{name}", "u": f"u-{name}"},
        )
    return f"token-{name}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLM]:
    """One fake Groq for the module's two app processes."""
    fake = FakeLLM().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def pair(
    database_url: str, upstream: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    """Two app processes on one database, shared by the tests of this module."""
    with serving(database_url, upstream, tmp_path_factory.mktemp("pair")) as servers:
        yield servers


@pytest.fixture
def groq(upstream: FakeLLM) -> FakeLLM:
    """The shared fake, its records cleared for this test."""
    upstream.received.clear()
    upstream.queue.clear()
    upstream.disconnects = upstream.completed = 0
    return upstream


@pytest.fixture
async def database(database_url: str, settings: Settings) -> AsyncIterator[Database]:
    db = Database.from_url(database_url, settings)
    yield db
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM users WHERE id LIKE 'u-%'"))
    await db.engine.dispose()


async def row(database: Database, message_id: str) -> Any:
    async with database.engine.connect() as conn:
        return (
            await conn.execute(text("SELECT * FROM messages WHERE id = :i"), {"i": message_id})
        ).one()


ANSWER = [f"word{i} " for i in range(60)]


async def test_another_process_re_attaches_replays_and_follows_to_the_end(
    pair: list[Server], database: Database, groq: FakeLLM
) -> None:
    groq.next(Scenario(chunks=ANSWER, gap=0.05))
    token = await signed_in(database, "resume")
    headers = {"authorization": f"Bearer {token}"}
    a, b = pair
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        first, started = answering(client, a.url, "resumeChat000001", "Tell me")
        await asyncio.wait_for(started.wait(), 10)
        # Listing on the other process shows the partial answer (saved at least every
        # second), as `streaming`.
        for _ in range(40):
            listed = (await client.get(f"{b.url}/api/conversations/resumeChat000001")).json()
            partial = listed["messages"][-1]
            if partial["content"]:
                break
            await asyncio.sleep(0.05)
        assert partial["role"] == "assistant" and partial["status"] == "streaming"
        assert "".join(ANSWER).startswith(partial["content"]) and partial["content"]
        async with client.stream("GET", f"{b.url}/api/chat/resumeChat000001/stream") as resumed:
            chunks = await read_ui_stream(resumed)
        original = await first
    assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert chunks[0]["type"] == "start" and chunks[-1]["type"] == "[DONE]"
    assert chunks[0]["messageId"] == original[0]["messageId"]
    assert chunks[-2]["type"] == "finish" and original[-2]["type"] == "finish"
    assert text_of(chunks) == text_of(original) == "".join(ANSWER)
    stored = await row(database, original[0]["messageId"])
    assert (stored.status, stored.content) == ("complete", "".join(ANSWER))


async def test_stop_from_another_process_cancels_the_model_call_and_keeps_the_partial(
    pair: list[Server], database: Database, groq: FakeLLM
) -> None:
    groq.next(Scenario(chunks=ANSWER * 3, gap=0.05))
    token = await signed_in(database, "stop")
    headers = {"authorization": f"Bearer {token}"}
    a, b = pair
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        first, started = answering(client, a.url, "stopChat00000001", "Go on")
        await asyncio.wait_for(started.wait(), 10)
        stopped = await client.post(f"{b.url}/api/chat/stopChat00000001/stop")
        original = await asyncio.wait_for(first, 10)
        # The conversation is free at once for the next question, on either process.
        groq.next(Scenario(chunks=["next"]))
        after = await client.post(
            f"{b.url}/api/chat", json=ui_body("stopChat00000001", "Again", "q2")
        )
    assert stopped.status_code == 200
    body = stopped.json()
    assert body["stopped"] is True and body["message"]["status"] == "cancelled"
    assert original[-2]["type"] == "abort" and original[-1]["type"] == "[DONE]"
    kept = text_of(original)
    assert kept and "".join(ANSWER * 3).startswith(kept) and kept != "".join(ANSWER * 3)
    stored = await row(database, original[0]["messageId"])
    assert (stored.status, stored.content) == ("cancelled", kept)
    for _ in range(40):  # the fake notices at its next write
        if groq.disconnects:
            break
        await asyncio.sleep(0.05)
    assert groq.disconnects == 1  # the model call itself was cancelled
    assert after.status_code == 200 and "next" in after.text


async def test_a_disconnected_client_that_retries_on_another_process_gets_the_same_answer(
    pair: list[Server], database: Database, groq: FakeLLM
) -> None:
    groq.next(Scenario(chunks=ANSWER, gap=0.04))
    token = await signed_in(database, "retry")
    headers = {"authorization": f"Bearer {token}"}
    body = {"message": "Once", "clientMessageId": "client-msg-1", "stream": True}
    a, b = pair
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        async with client.stream("POST", f"{a.url}/api/chat", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: delta"):
                    break  # the connection drops mid-answer
        again = await client.post(f"{b.url}/api/chat", json={**body, "stream": False})
    assert again.status_code == 200
    answer = again.json()["aiMessage"]
    assert (answer["status"], answer["content"]) == ("complete", "".join(ANSWER))
    async with database.engine.connect() as conn:
        counts = await conn.execute(
            text(
                "SELECT role, count(*) FROM messages WHERE \"userId\" = 'u-retry' "
                "GROUP BY role ORDER BY role"
            )
        )
        assert dict(counts.all()) == {"assistant": 1, "user": 1}
    assert len(groq.received) == 1


async def test_sigterm_during_an_answer_ends_the_stream_and_stores_it_incomplete(
    database_url: str, database: Database, groq_fake: FakeLLM, tmp_path: Path
) -> None:
    groq_fake.next(Scenario(chunks=ANSWER * 5, gap=0.05))
    token = await signed_in(database, "sigterm")
    headers = {"authorization": f"Bearer {token}"}
    with serving(database_url, groq_fake, tmp_path, count=1, SHUTDOWN_GRACE_SECONDS="1") as (
        server,
    ):
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            reading, started = answering(client, server.url, "sigtermChat00001", "Long answer")
            await asyncio.wait_for(started.wait(), 10)
            sent = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            chunks = await asyncio.wait_for(reading, 20)
            ended_after = time.monotonic() - sent
            exit_code = await asyncio.to_thread(server.process.wait, 30)
    assert chunks[-1]["type"] == "[DONE]" and chunks[-2]["type"] == "error"
    assert chunks[-3]["messageMetadata"]["status"] == "incomplete"
    assert ended_after < 10  # the grace period (1 s) ended it, not the answer's own end
    assert exit_code == 0
    stored = await row(database, chunks[0]["messageId"])
    assert (stored.status, stored.errorCode) == ("incomplete", "shutdown")
    assert stored.content == text_of(chunks)
    async with database.engine.connect() as conn:
        lease = await conn.scalar(
            text("SELECT \"generatingUntil\" FROM conversations WHERE id = 'sigtermChat00001'")
        )
    assert lease is None


async def test_the_daily_quota_holds_across_two_processes_and_only_for_its_user(
    database_url: str, database: Database, upstream: FakeLLM, tmp_path: Path
) -> None:
    ada = {"authorization": f"Bearer {await signed_in(database, 'quota-ada')}"}
    bob = {"authorization": f"Bearer {await signed_in(database, 'quota-bob')}"}
    with serving(database_url, upstream, tmp_path, QUOTA_DAILY_MESSAGES="2") as (a, b):
        async with httpx.AsyncClient(timeout=30) as client:
            first = await client.post(f"{a.url}/api/chat", json={"message": "1"}, headers=ada)
            second = await client.post(f"{b.url}/api/chat", json={"message": "2"}, headers=ada)
            third_a = await client.post(f"{a.url}/api/chat", json={"message": "3"}, headers=ada)
            third_b = await client.post(f"{b.url}/api/chat", json={"message": "3"}, headers=ada)
            bobs = await client.post(f"{a.url}/api/chat", json={"message": "hi"}, headers=bob)
            usage = (await client.get(f"{b.url}/api/users/me/usage", headers=ada)).json()
    assert first.status_code == second.status_code == bobs.status_code == 200
    assert third_a.status_code == third_b.status_code == 429
    assert third_b.json()["budget"] == "messages" and "retry-after" in third_b.headers
    assert usage["messages"] == {"used": 2, "limit": 2, "remaining": 0}


async def test_a_follower_on_another_process_gets_the_reasoning_with_the_stored_answer(
    pair: list[Server], database: Database, groq: FakeLLM
) -> None:
    """Reasoning is not relayed live over LISTEN/NOTIFY: another process's reader gets it
    whole from the stored row when the answer ends, before `done` (issue 23, item 5)."""
    thoughts = ["Thinking ", "it over."]
    groq.next(Scenario(reasoning=thoughts, chunks=ANSWER, gap=0.05))
    token = await signed_in(database, "thinking")
    headers = {"authorization": f"Bearer {token}"}
    a, b = pair
    body = ui_body("thinkChat0000001", "Think first") | {"model": "groq/openai/gpt-oss-120b"}
    started = asyncio.Event()

    async def ask() -> list[dict[str, Any]]:
        async with client.stream("POST", f"{a.url}/api/chat", json=body) as response:
            return await read_ui_stream(response, started)

    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        first = asyncio.create_task(ask())
        await asyncio.wait_for(started.wait(), 10)
        resumed = await client.get(f"{b.url}/api/chat/thinkChat0000001/stream?format=events")
        original = await first
    events = sse_events(resumed.text)
    names = [name for name, _ in events]
    assert names[-1] == "done" and names[-2] == "reasoning"
    assert events[-2][1] == {"text": "".join(thoughts)}
    assert events[-1][1]["assistantMessage"]["reasoning"] == "".join(thoughts)
    live = "".join(c["delta"] for c in original if c["type"] == "reasoning-delta")
    assert live == "".join(thoughts)  # the generating process streams it as it comes
    stored = await row(database, original[0]["messageId"])
    assert stored.reasoning == "".join(thoughts)
