"""The database stops (`pg_ctl stop -m immediate`) during an answer: the answer goes on, the
stream ends properly, the answer is stored once the database is back, and the conversation is
not left locked. A PostgreSQL server of this module's own is stopped and started."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.db import migrate
from app.db.embedded import EmbeddedPostgres, _pg_ctl
from app.settings import Settings
from tests.chat.conftest import chat_settings, read_ui_stream, text_of, ui_body
from tests.chat.test_live import live_app
from tests.conftest import _admin, in_thread
from tests.fakes.llm import FakeLLM, Scenario

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*")

ANSWER = [f"word{i} " for i in range(50)]


class Postgres:
    """An embedded server this module may stop and start at will."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="chatwithme-faults-"))
        self.server = EmbeddedPostgres(self.folder / "postgres")
        self.server.start()
        in_thread(asyncio.run, _admin(self.server.url("postgres"), "CREATE DATABASE chatwithme"))
        self.url = self.server.url()
        in_thread(migrate.upgrade, self.url)

    def kill(self) -> None:
        """Stop at once, like a crash: no shutdown checkpoint, the socket file goes away."""
        _pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.server.pgdata,
                user=self.server._system_user)  # fmt: skip

    def start(self) -> None:
        self.server._server.ensure_postgres_running()

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    yield server
    server.close()


async def _answer_row(url: str, message_id: str) -> Any:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchrow(
            'SELECT m.status, m.content, c."generatingUntil" AS lease FROM messages m '
            'JOIN conversations c ON c.id = m."conversationId" WHERE m.id = $1',
            message_id,
        )
    finally:
        await connection.close()


async def _chat_again(client: httpx.AsyncClient, chat_id: str) -> httpx.Response:
    """A next question; a 503 while the pool replaces its dead connections is retried."""
    body = ui_body(chat_id, "And now?", "next")
    for _ in range(20):
        response = await client.post("/api/chat", json=body)
        if response.status_code != 503:
            return response
        await asyncio.sleep(0.25)
    return response


@pytest.mark.parametrize("outage", ["brief", "past_the_end"])
async def test_a_database_outage_during_an_answer_loses_nothing(
    outage: str, postgres: Postgres, settings: Settings, groq_fake: FakeLLM
) -> None:
    """`brief`: down for 1.5 s mid-answer. `past_the_end`: still down when the answer ends, so
    the last write waits for the database in the background."""
    groq_fake.next(Scenario(chunks=ANSWER, gap=0.05))  # about 2.5 s
    configured = chat_settings(settings, groq_fake, database_url=postgres.url)
    chat_id = f"outage-{outage}"
    async with live_app(configured, postgres.url) as (url, token, database):
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
            body = ui_body(chat_id, "Tell me")
            two_deltas = asyncio.Event()
            async with client.stream("POST", "/api/chat", json=body) as response:
                reading = asyncio.create_task(read_ui_stream(response, two_deltas))
                await asyncio.wait_for(two_deltas.wait(), 10)
                await asyncio.to_thread(postgres.kill)
                if outage == "brief":
                    await asyncio.sleep(1.5)
                    await asyncio.to_thread(postgres.start)
                chunks = await asyncio.wait_for(reading, 30)
            if outage == "past_the_end":
                await asyncio.to_thread(postgres.start)
            # The stream ended properly, with the whole answer.
            assert chunks[-1]["type"] == "[DONE]" and chunks[-2]["type"] == "finish", chunks[-4:]
            assert text_of(chunks) == "".join(ANSWER)
            # The answer is stored whole and the lease released, once the database is back.
            stored = None
            for _ in range(100):
                stored = await _answer_row(postgres.url, chunks[0]["messageId"])
                if stored["status"] != "streaming" and stored["lease"] is None:
                    break
                await asyncio.sleep(0.1)
            assert stored is not None
            assert (stored["status"], stored["content"]) == ("complete", "".join(ANSWER))
            assert stored["lease"] is None
            again = await _chat_again(client, chat_id)
            assert again.status_code == 200, again.text
        await database.engine.dispose()
