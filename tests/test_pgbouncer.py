"""The app through a real pgbouncer in transaction mode (the pooled URL hosted services hand
out, `?pgbouncer=true`): the CLI's migrations, checks and purge, two serve processes without
a direct URL and two with one, chat in both formats, re-attach and stop across the processes,
lists, pages, search, stats, 50 requests at once, and pgbouncer recycling its server
connections (RECONNECT) in the middle of them."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from app.db.engine import Database
from app.db.url import to_libpq
from app.settings import Settings
from tests.chat.conftest import answering, read_ui_stream, text_of, ui_body
from tests.chat.test_answers_across_processes import Server, serving, signed_in
from tests.conftest import CHATWITHME_BIN, TEST_SECRET, DatabaseFactory
from tests.fakes.llm import FakeLLM, Scenario
from tests.pgbouncer import PgBouncer, running_pgbouncer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*")

# Server connections pgbouncer may open for the test database: far fewer than the two
# processes' pools (2 x (10 + 10)), so every server connection serves many clients.
POOL_SIZE = 10
ANSWER = [f"word{i} " for i in range(40)]
# The direct pair's LISTEN lines, one a process, around the pooler.
LISTEN_LINES = 2


@pytest.fixture(scope="module")
def bouncer(server_url: str) -> Iterator[PgBouncer]:
    with running_pgbouncer(server_url, POOL_SIZE) as running:
        yield running


@pytest.fixture(scope="module")
def direct_url(databases: DatabaseFactory, bouncer: PgBouncer) -> str:
    """A database of its own, empty: the module migrates it through pgbouncer."""
    return databases.create()


@pytest.fixture(scope="module")
def pooled_url(direct_url: str, bouncer: PgBouncer) -> str:
    return bouncer.url(direct_url)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DATABASE_DIRECT_URL", "DIRECT_URL", "DB_POOLER", "APP_ENV"}
    }
    return subprocess.run(
        [CHATWITHME_BIN, *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def migrations(pooled_url: str) -> list[subprocess.CompletedProcess[str]]:
    """`db upgrade` twice, `db check` and `prisma check` through pgbouncer (each process
    starts its statement names afresh, so a name left on a server connection would clash),
    then `db current` told by DB_POOLER rather than the URL's flag."""
    done = [
        cli(*action, DATABASE_URL=pooled_url)
        for action in (["db", "upgrade"], ["db", "upgrade"], ["db", "check"], ["prisma", "check"])
    ]
    unflagged = pooled_url.split("?")[0]
    return [*done, cli("db", "current", DATABASE_URL=unflagged, DB_POOLER="transaction")]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLM]:
    fake = FakeLLM().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def pair(
    pooled_url: str,
    migrations: list[subprocess.CompletedProcess[str]],
    upstream: FakeLLM,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[Server]]:
    """Two serve processes whose DATABASE_URL is the pooled one, and no direct URL."""
    assert all(done.returncode == 0 for done in migrations), migrations
    with serving(pooled_url, upstream, tmp_path_factory.mktemp("pooled")) as servers:
        yield servers


@pytest.fixture(scope="module")
def direct_pair(
    pooled_url: str,
    direct_url: str,
    migrations: list[subprocess.CompletedProcess[str]],
    upstream: FakeLLM,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[Server]]:
    """Two serve processes on the pooled URL with DATABASE_DIRECT_URL for their LISTEN line."""
    assert all(done.returncode == 0 for done in migrations), migrations
    workdir = tmp_path_factory.mktemp("pooled-direct")
    with serving(pooled_url, upstream, workdir, DATABASE_DIRECT_URL=direct_url) as servers:
        yield servers


@pytest.fixture(params=["no direct URL", "a direct URL"])
def servers(request: pytest.FixtureRequest) -> list[Server]:
    """Each pair in turn: the same flows with and without a LISTEN line."""
    name = "pair" if request.param == "no direct URL" else "direct_pair"
    servers: list[Server] = request.getfixturevalue(name)
    return servers


@pytest.fixture
def groq(upstream: FakeLLM) -> FakeLLM:
    upstream.received.clear()
    upstream.queue.clear()
    upstream.disconnects = upstream.completed = 0
    return upstream


@pytest.fixture
async def database(direct_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """The test's own way in, around the pooler, to sign users in and read rows."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=direct_url,
        data_dir=tmp_path,
        auth_secret=TEST_SECRET,
    )
    db = Database.from_url(direct_url, settings)
    yield db
    await db.engine.dispose()


def _available_output(server: Server) -> str:
    """What the process has printed so far, without waiting for more."""
    assert server.process.stdout is not None
    descriptor = server.process.stdout.fileno()
    os.set_blocking(descriptor, False)
    chunks = []
    try:
        while chunk := os.read(descriptor, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    return b"".join(chunks).decode(errors="replace")


async def _rows(database: Database, sql: str, **params: Any) -> list[Any]:
    async with database.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


def test_migrations_run_twice_and_check_and_current_answer_through_the_pooler(
    migrations: list[subprocess.CompletedProcess[str]],
) -> None:
    for done in migrations:
        assert done.returncode == 0, (done.args, done.stdout, done.stderr)
        assert "prepared statement" not in done.stderr
    for current in (migrations[2].stdout.split(), migrations[-1].stdout.split()):
        assert current[1] == current[3] != "none"  # "current: X  head: X"
    assert migrations[3].stdout.startswith("the database matches"), migrations[3].stdout


def test_serve_says_what_it_falls_back_to_without_a_direct_url(
    pair: list[Server], direct_pair: list[Server]
) -> None:
    output = _available_output(pair[0])
    assert output.count("no DATABASE_DIRECT_URL") == 1 and "saved row" in output
    assert "DATABASE_DIRECT_URL" not in _available_output(direct_pair[0])


async def test_health_shows_the_listen_line_only_with_a_direct_url(
    pair: list[Server], direct_pair: list[Server]
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        without = (await client.get(f"{pair[1].url}/api/health")).json()
        with_line = (await client.get(f"{direct_pair[1].url}/api/health")).json()
    assert without["checks"]["database"]["ok"] and with_line["checks"]["database"]["ok"]
    assert "relay" not in without["checks"]
    assert with_line["checks"]["relay"]["ok"] is True


async def test_chat_in_both_formats_through_the_pooler(
    pair: list[Server], database: Database, groq: FakeLLM
) -> None:
    headers = {"authorization": f"Bearer {await signed_in(database, 'formats')}"}
    a, b = pair
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        groq.next(Scenario(chunks=["Hello, ", "pooler"]))
        async with client.stream(
            "POST", f"{a.url}/api/chat", json=ui_body("formatsChat00001", "Hi")
        ) as response:
            chunks = await read_ui_stream(response)
        groq.next(Scenario(chunks=["Plain ", "JSON"]))
        plain = await client.post(
            f"{b.url}/api/chat", json={"message": "Hi again", "conversationId": "formatsChat00001"}
        )
        groq.next(Scenario(chunks=["Server-sent ", "events"]))
        events = await client.post(f"{a.url}/api/chat", json={"message": "SSE", "stream": True})
    assert response.status_code == 200 and text_of(chunks) == "Hello, pooler"
    assert plain.status_code == 200, plain.text
    assert plain.json()["aiMessage"]["content"] == "Plain JSON"
    assert events.status_code == 200 and "event: delta" in events.text
    stored = await _rows(
        database,
        "SELECT content FROM messages WHERE \"userId\" = 'u-formats' AND role = 'assistant' "
        "AND status = 'complete' ORDER BY \"createdAt\"",
    )
    assert [r.content for r in stored] == ["Hello, pooler", "Plain JSON", "Server-sent events"]


async def test_another_process_re_attaches_to_an_answer_in_flight(
    servers: list[Server], direct_pair: list[Server], database: Database, groq: FakeLLM
) -> None:
    groq.next(Scenario(chunks=ANSWER, gap=0.05))
    live = servers is direct_pair
    name = f"resume{int(live)}"
    chat_id = f"resumeChat00000{int(live)}"
    headers = {"authorization": f"Bearer {await signed_in(database, name)}"}
    a, b = servers
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        first, started = answering(client, a.url, chat_id, "Tell me")
        await asyncio.wait_for(started.wait(), 10)
        async with client.stream("GET", f"{b.url}/api/chat/{chat_id}/stream") as resumed:
            chunks = await read_ui_stream(resumed)
        original = await first
    assert resumed.status_code == 200
    assert chunks[0]["messageId"] == original[0]["messageId"]
    assert chunks[-2]["type"] == "finish"
    assert text_of(chunks) == text_of(original) == "".join(ANSWER)
    if live:
        # Through the LISTEN line on the direct URL the text comes as it is generated;
        # reading the saved row once a second would give about 3 deltas for this answer.
        assert sum(c["type"] == "text-delta" for c in chunks) >= 15, chunks


async def test_a_stop_sent_to_the_other_process_stops_the_answer(
    servers: list[Server], direct_pair: list[Server], database: Database, groq: FakeLLM
) -> None:
    groq.next(Scenario(chunks=ANSWER * 3, gap=0.05))
    live = servers is direct_pair
    chat_id = f"stopChat0000000{int(live)}"
    headers = {"authorization": f"Bearer {await signed_in(database, f'stop{int(live)}')}"}
    a, b = servers
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        first, started = answering(client, a.url, chat_id, "Go on")
        await asyncio.wait_for(started.wait(), 10)
        stopped = await client.post(f"{b.url}/api/chat/{chat_id}/stop")
        original = await asyncio.wait_for(first, 15)
    assert stopped.status_code == 200, stopped.text
    assert original[-2]["type"] == "abort"
    kept = text_of(original)
    assert kept and kept != "".join(ANSWER * 3)
    (stored,) = await _rows(
        database, "SELECT status, content FROM messages WHERE id = :i", i=original[0]["messageId"]
    )
    assert (stored.status, stored.content) == ("cancelled", kept)


async def _conversation(client: httpx.AsyncClient, url: str, groq: FakeLLM, turns: int) -> str:
    conversation_id = None
    for turn in range(turns):
        groq.next(Scenario(chunks=[f"pooled answer {turn}"]))
        body: dict[str, Any] = {"message": f"pooled question {turn}"}
        if conversation_id:
            body["conversationId"] = conversation_id
        response = await client.post(f"{url}/api/chat", json=body)
        assert response.status_code == 200, response.text
        conversation_id = response.json()["conversationId"]
    assert conversation_id is not None
    return conversation_id


async def test_lists_pages_search_and_stats_through_the_pooler(
    pair: list[Server], database: Database, groq: FakeLLM
) -> None:
    headers = {"authorization": f"Bearer {await signed_in(database, 'reads')}"}
    a, b = pair
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        conversation_id = await _conversation(client, a.url, groq, 3)
        for server in (a, b):
            listed = await client.get(f"{server.url}/api/conversations")
            first = await client.get(
                f"{server.url}/api/conversations/{conversation_id}/messages",
                params={"limit": 4},
            )
            older = await client.get(
                f"{server.url}/api/conversations/{conversation_id}/messages",
                params={"limit": 4, "before": first.json()["nextCursor"]},
            )
            found = await client.get(
                f"{server.url}/api/conversations/search", params={"q": "pooled"}
            )
            stats = await client.get(f"{server.url}/api/users/me/stats")
            for response in (listed, first, older, found, stats):
                assert response.status_code == 200, (response.url, response.text)
            assert [c["id"] for c in listed.json()["conversations"]] == [conversation_id]
            assert len(first.json()["messages"]) + len(older.json()["messages"]) == 6
            assert found.json()["results"]


async def test_fifty_requests_at_once_and_a_reconnect_in_the_middle_lose_nothing(
    pair: list[Server],
    direct_pair: list[Server],  # up too: its LISTEN lines are counted below
    database: Database,
    groq: FakeLLM,
    bouncer: PgBouncer,
    direct_url: str,
) -> None:
    headers = {"authorization": f"Bearer {await signed_in(database, 'load')}"}
    a, b = pair
    async with httpx.AsyncClient(
        timeout=60, headers=headers, limits=httpx.Limits(max_connections=100)
    ) as client:
        conversation_id = await _conversation(client, a.url, groq, 2)
        # Warm the processes' pools a few connections at a time, as a running server's are:
        # a cold process opening 20 connections at once through a pool of 10 that is busy
        # waits on pgbouncer's logins past DB_CONNECT_TIMEOUT (503s with Retry-After).
        for width in (2, 4, 8, 12, 16):
            warm = [
                client.get(f"{server.url}/api/conversations/{conversation_id}/messages")
                for server in (a, b)
                for _ in range(width)
            ]
            assert all(r.status_code == 200 for r in await asyncio.gather(*warm))
        for _ in range(20):
            groq.next(Scenario(chunks=["parallel ", "answer"], gap=0.02))

        def requests(round_: int) -> list[Any]:
            calls: list[Any] = []
            for i in range(50):
                server = (a, b)[i % 2].url
                kind = i % 5
                if kind == 0 and round_ == 0:
                    calls.append(
                        client.post(f"{server}/api/chat", json={"message": f"parallel {i}"})
                    )
                elif kind in (0, 1):
                    calls.append(client.get(f"{server}/api/conversations"))
                elif kind == 2:
                    calls.append(
                        client.get(f"{server}/api/conversations/{conversation_id}/messages")
                    )
                elif kind == 3:
                    calls.append(
                        client.get(f"{server}/api/conversations/search", params={"q": "pooled"})
                    )
                else:
                    calls.append(client.get(f"{server}/api/users/me/stats"))
            return calls

        first = asyncio.gather(*requests(0))
        await asyncio.sleep(0.05)
        await bouncer.admin("RECONNECT")  # every server connection is closed once released
        responses = await first
        await bouncer.admin("RECONNECT")
        responses += await asyncio.gather(*requests(1))
    failures = [(r.url, r.status_code, r.text[:200]) for r in responses if r.status_code >= 400]
    assert not failures, (failures, [_available_output(server)[-3000:] for server in pair])
    answers = await _rows(
        database,
        "SELECT content FROM messages WHERE \"userId\" = 'u-load' AND role = 'assistant' "
        "AND status = 'complete'",
    )
    assert len(answers) == 2 + 10  # the two turns, then the ten chats of the first round
    (unfinished,) = await _rows(
        database,
        "SELECT (SELECT count(*) FROM messages WHERE \"userId\" = 'u-load' AND status <> "
        "'complete') + (SELECT count(*) FROM conversations WHERE \"userId\" = 'u-load' AND "
        '"generatingUntil" IS NOT NULL) AS n',
    )
    assert unfinished.n == 0  # no answer left streaming, no conversation left locked
    # However many clients the four processes open, PostgreSQL sees pgbouncer's pool and the
    # direct pair's LISTEN lines only.
    await database.engine.dispose()  # this test's own connections, around the pooler
    connection = await asyncpg.connect(to_libpq(direct_url))
    try:
        for _ in range(50):  # a backend pgbouncer has just closed may take a moment to go
            rows = await connection.fetch(
                "SELECT application_name = 'chatwithme-listen' AS listening, count(*) AS n "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() GROUP BY 1"
            )
            counts = {row["listening"]: row["n"] for row in rows}
            if counts.get(False, 0) <= POOL_SIZE:
                break
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    assert counts.get(True) == LISTEN_LINES
    assert counts.get(False, 0) <= POOL_SIZE
