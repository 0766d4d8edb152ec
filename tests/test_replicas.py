"""Read replicas (DATABASE_REPLICA_URLS) with a real streaming replica (`pg_basebackup -R`) of a
primary made from the same binaries as the server under test (tests/replication.py), and real
`chatwithme serve` processes:

- reads go to the replica (a row written on the primary while replay is paused is not seen by
  another user's list, search or stats), while the user who wrote through the app reads their
  own write on the other process;
- a replica stopped mid-run: reads go to the primary with no error, and come back to it;
- a replica further behind than DB_REPLICA_MAX_LAG is skipped, then used again; a caught-up
  replica with nothing to replay is not "behind" (lag is measured by WAL position);
- a primary listed as a replica takes no reads; health shows each replica;
- a replica reached through pgbouncer in transaction mode (`?pgbouncer=true`) takes reads,
  also after pgbouncer recycles its server connections.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.db.replicas import PrimaryClock
from app.db.routing import replica_lost
from app.db.url import to_libpq
from app.lib.errors import DatabaseUnavailable
from prisma_compat import cuid
from tests.chat.conftest import answering, text_of
from tests.chat.test_answers_across_processes import Server, serving
from tests.fakes.llm import FakeLLM, Scenario
from tests.pgbouncer import running_pgbouncer
from tests.replication import ReplicatedPostgres, binaries_for
from tests.test_faults import api_for, settings_for, signed_in

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*")

# What a process logs when a replica goes down (once per change of state).
REPLICA_DOWN = "is down"


@pytest.fixture(scope="module")
def postgres() -> Iterator[ReplicatedPostgres]:
    bindir, why = binaries_for(os.environ.get("TEST_DATABASE_URL"))
    if bindir is None:
        pytest.skip(why)
    pair = ReplicatedPostgres(bindir).start()
    try:
        yield pair
    finally:
        pair.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLM]:
    fake = FakeLLM().start()
    yield fake
    fake.stop()


@pytest.fixture
async def replay_running(postgres: ReplicatedPostgres) -> AsyncIterator[None]:
    """Each test starts and ends with the replica up and replaying."""
    yield
    if not (postgres.replica_data / "postmaster.pid").exists():
        await asyncio.to_thread(postgres.start_replica)
    await postgres.on_replica("SELECT pg_wal_replay_resume()")


async def _user(postgres: ReplicatedPostgres) -> tuple[str, dict[str, str]]:
    """A user with a session, written on the primary; (user id, bearer header). The session
    is new (30 days to run), so no request of the test extends it: that would be a write of
    the user's, and send their reads to the primary until the replica replays it."""
    user_id, token = cuid(), cuid() + cuid()
    await postgres.on_primary(
        'INSERT INTO users (id, email, "updatedAt") VALUES ($1, $2, now())',
        user_id, f"{user_id}@example.com",
    )  # fmt: skip
    await postgres.on_primary(
        'INSERT INTO sessions (id, "sessionToken", "userId", expires) '
        "VALUES ($1, $2, $3, now() + interval '30 days')",
        cuid(), token, user_id,
    )  # fmt: skip
    return user_id, {"authorization": f"Bearer {token}"}


async def _conversation_behind_the_apps_back(
    postgres: ReplicatedPostgres, user_id: str, word: str
) -> str:
    """A conversation and one message written on the primary directly: no write position is
    recorded for it, as for a write the app never saw."""
    conversation_id = cuid()
    await postgres.on_primary(
        'INSERT INTO conversations (id, title, "userId", "updatedAt") VALUES ($1, $2, $3, now())',
        conversation_id, f"direct {word}", user_id,
    )  # fmt: skip
    await postgres.on_primary(
        'INSERT INTO messages (id, "conversationId", "userId", role, content) '
        "VALUES ($1, $2, $3, 'user', $4)",
        cuid(), conversation_id, user_id, f"a question about {word}",
    )  # fmt: skip
    return conversation_id


async def _titles(client: httpx.AsyncClient, url: str) -> list[str]:
    response = await client.get(f"{url}/api/conversations")
    assert response.status_code == 200, response.text
    return [c["title"] for c in response.json()["conversations"]]


async def _replicas(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    response = await client.get(f"{url}/api/health")
    assert response.status_code == 200, response.text
    replicas: list[dict[str, Any]] = response.json()["checks"]["replicas"]
    return replicas


async def _until_replica(client: httpx.AsyncClient, url: str, ok: bool, within: float) -> Any:
    """The health of the (one) replica once its `ok` is `ok`; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        [replica] = await _replicas(client, url)
        if replica["ok"] is ok:
            return replica
        assert time.monotonic() < deadline, replica
        await asyncio.sleep(0.1)


async def _routed(client: httpx.AsyncClient, url: str, target: str) -> float:
    text = (await client.get(f"{url}/metrics")).text
    found = re.search(
        rf'^chatwithme_db_routed_reads_total{{target="{target}"}} (\S+)$', text, re.MULTILINE
    )
    return float(found.group(1)) if found else 0.0


def _serving(
    postgres: ReplicatedPostgres, upstream: FakeLLM, folder: Path, count: int, **env: str
) -> AbstractContextManager[list[Server]]:
    return serving(
        postgres.primary_url, upstream, folder, count=count,
        DATABASE_REPLICA_URLS=postgres.replica_url, METRICS_ENABLED="true",
        DB_REPLICA_POLL="0.1", SEARCH_RATE_LIMIT="100000", **env,
    )  # fmt: skip


def _outputs(servers: list[Server]) -> list[str]:
    return [server.process.stdout.read() if server.process.stdout else "" for server in servers]


async def test_reads_go_to_the_replica_and_a_writer_reads_their_own_writes_on_another_process(
    postgres: ReplicatedPostgres, upstream: FakeLLM, tmp_path: Path, replay_running: None
) -> None:
    _, writer = await _user(postgres)
    other_id, other = await _user(postgres)
    with _serving(postgres, upstream, tmp_path, 2, DB_REPLICA_MAX_LAG="60") as (a, b):
        async with httpx.AsyncClient(timeout=30) as client:
            for server in (a, b):
                await _until_replica(client, server.url, ok=True, within=10)
            await postgres.on_replica("SELECT pg_wal_replay_pause()")

            # Written on the primary behind the app's back while replay is paused.
            await _conversation_behind_the_apps_back(postgres, other_id, "zeppelins")
            # Written through process A by the writer.
            created = await client.post(
                f"{a.url}/api/conversations", json={"title": "mine"}, headers=writer
            )
            assert created.status_code == 201, created.text
            conversation_id = created.json()["id"]

            # The other user reads on the replica, which has not replayed their row...
            client.headers.update(other)
            before = await _routed(client, b.url, "replica")
            assert await _titles(client, b.url) == []
            search = await client.get(
                f"{b.url}/api/conversations/search", params={"q": "zeppelins"}
            )
            assert search.status_code == 200 and search.json()["results"] == [], search.text
            stats = await client.get(f"{b.url}/api/users/me/stats")
            assert stats.status_code == 200 and stats.json()["messageCount"] == 0
            assert await _routed(client, b.url, "replica") == before + 3

            # ...while the writer reads their own write on process B, from the primary.
            client.headers.update(writer)
            on_primary = await _routed(client, b.url, "primary")
            assert await _titles(client, b.url) == ["mine"]
            detail = await client.get(f"{b.url}/api/conversations/{conversation_id}")
            assert detail.status_code == 200 and detail.json()["title"] == "mine", detail.text
            assert await _routed(client, b.url, "primary") == on_primary + 2

            # Replay again: the other user's row arrives, and the writer's reads go back to
            # the replica once it has their write.
            await postgres.on_replica("SELECT pg_wal_replay_resume()")
            await postgres.wait_replayed()
            client.headers.update(other)
            assert await _titles(client, b.url) == ["direct zeppelins"]
            client.headers.update(writer)
            await asyncio.sleep(0.3)  # a poll or two of the replica's position
            before = await _routed(client, a.url, "replica")
            assert await _titles(client, a.url) == ["mine"]
            assert await _routed(client, a.url, "replica") == before + 1
    for output in _outputs([a, b]):
        assert "Traceback" not in output, output


async def test_an_answer_is_read_back_by_its_asker_on_another_process_while_replay_is_paused(
    postgres: ReplicatedPostgres, upstream: FakeLLM, tmp_path: Path, replay_running: None
) -> None:
    _, headers = await _user(postgres)
    words = [f"word{i} " for i in range(12)]
    upstream.next(Scenario(chunks=words, gap=0.2))
    with _serving(postgres, upstream, tmp_path, 2, DB_REPLICA_MAX_LAG="60") as (a, b):
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            for server in (a, b):
                await _until_replica(client, server.url, ok=True, within=10)
            asking, started = answering(client, a.url, "pausedChat000001", "Hello there")
            await asyncio.wait_for(started.wait(), 10)
            # The replica has the question (written by the request); replay stops before
            # the answer's last write (by the background writer, after the request).
            await postgres.wait_replayed()
            await asyncio.sleep(0.3)  # a poll of the replica's position
            await postgres.on_replica("SELECT pg_wal_replay_pause()")
            assert text_of(await asking) == "".join(words)

            on_primary = await _routed(client, b.url, "primary")
            page = await client.get(f"{b.url}/api/conversations/pausedChat000001/messages")
            assert page.status_code == 200, page.text
            messages = page.json()["messages"]
            assert [(m["role"], m["content"]) for m in messages] == [
                ("user", "Hello there"), ("assistant", "".join(words))
            ]  # fmt: skip
            assert messages[-1]["status"] == "complete"
            assert await _routed(client, b.url, "primary") == on_primary + 1


async def test_without_replicas_no_write_position_is_recorded(
    own_database_url: str, tmp_path: Path
) -> None:
    token = await signed_in(own_database_url)
    async with api_for(settings_for(own_database_url, tmp_path)) as api:
        api.headers["authorization"] = f"Bearer {token}"
        created = await api.post("/api/conversations", json={"title": "no replicas"})
        assert created.status_code == 201, created.text
        assert (await api.get("/api/conversations")).status_code == 200
    connection = await asyncpg.connect(to_libpq(own_database_url))
    try:
        owner = await connection.fetchval(
            'SELECT "userId" FROM conversations WHERE id = $1', created.json()["id"]
        )
        recorded = await connection.fetchval(
            'SELECT count(*) FROM write_positions WHERE "userId" = $1', owner
        )
    finally:
        await connection.close()
    assert recorded == 0


async def test_a_stopped_replica_sends_reads_to_the_primary_without_errors(
    postgres: ReplicatedPostgres, upstream: FakeLLM, tmp_path: Path, replay_running: None
) -> None:
    user_id, headers = await _user(postgres)
    await _conversation_behind_the_apps_back(postgres, user_id, "lighthouses")
    await postgres.wait_replayed()
    statuses: list[int] = []
    with _serving(postgres, upstream, tmp_path, 1) as [server]:
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            await _until_replica(client, server.url, ok=True, within=10)
            paths = [
                "/api/conversations",
                "/api/conversations/search?q=lighthouses",
                "/api/users/me/stats",
            ]

            async def read_for(seconds: float) -> None:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    answers = await asyncio.gather(
                        *(client.get(f"{server.url}{path}") for path in paths * 3)
                    )
                    statuses.extend(answer.status_code for answer in answers)

            on_replica = await _routed(client, server.url, "replica")
            reading = asyncio.create_task(read_for(4))
            await asyncio.sleep(1)
            await asyncio.to_thread(postgres.stop_replica)
            await reading
            down = await _until_replica(client, server.url, ok=False, within=2)
            assert await _titles(client, server.url) == ["direct lighthouses"]

            await asyncio.to_thread(postgres.start_replica)
            back = await _until_replica(client, server.url, ok=True, within=15)
            on_primary = await _routed(client, server.url, "primary")
            assert await _titles(client, server.url) == ["direct lighthouses"]
            assert await _routed(client, server.url, "primary") == on_primary  # the replica's
            assert await _routed(client, server.url, "replica") > on_replica + 1
    [output] = _outputs([server])
    print(f"\nreplica stopped: {len(statuses)} reads; health down: {down}; back: {back}")
    assert set(statuses) == {200}, output
    assert down["error"]
    assert "Traceback" not in output, output
    # Logged once per change of state, not once per failed try or read.
    assert 1 <= output.count(REPLICA_DOWN) <= 3, output


async def test_a_lagging_replica_is_skipped_and_used_again_once_it_catches_up(
    postgres: ReplicatedPostgres, upstream: FakeLLM, tmp_path: Path, replay_running: None
) -> None:
    user_id, headers = await _user(postgres)
    with _serving(postgres, upstream, tmp_path, 1, DB_REPLICA_MAX_LAG="1") as [server]:
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            await _until_replica(client, server.url, ok=True, within=10)
            # Nothing written for 2 s: a caught-up replica is not behind (by WAL position).
            await asyncio.sleep(2)
            [idle] = await _replicas(client, server.url)
            assert idle["ok"] is True and idle["lagSeconds"] == 0, idle

            await postgres.on_replica("SELECT pg_wal_replay_pause()")
            await _conversation_behind_the_apps_back(postgres, user_id, "glaciers")
            lagging = await _until_replica(client, server.url, ok=False, within=5)
            assert lagging["lagSeconds"] > 1, lagging
            # Skipped: the user's list is read on the primary, which has the row.
            assert await _titles(client, server.url) == ["direct glaciers"]

            await postgres.on_replica("SELECT pg_wal_replay_resume()")
            caught_up = await _until_replica(client, server.url, ok=True, within=5)
            before = await _routed(client, server.url, "replica")
            assert await _titles(client, server.url) == ["direct glaciers"]
            assert await _routed(client, server.url, "replica") == before + 1
    print(f"\nlagging replica: {lagging}; caught up: {caught_up}")


async def test_a_primary_listed_as_a_replica_takes_no_reads(
    postgres: ReplicatedPostgres, upstream: FakeLLM, tmp_path: Path
) -> None:
    user_id, headers = await _user(postgres)
    await _conversation_behind_the_apps_back(postgres, user_id, "orchards")
    with serving(
        postgres.primary_url, upstream, tmp_path, count=1, METRICS_ENABLED="true",
        DATABASE_REPLICA_URLS=postgres.primary_url,
    ) as [server]:  # fmt: skip
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            await asyncio.sleep(1)
            [replica] = await _replicas(client, server.url)
            assert await _titles(client, server.url) == ["direct orchards"]
            assert await _routed(client, server.url, "replica") == 0
    [output] = _outputs([server])
    assert replica["ok"] is False and "not in recovery" in replica["error"], replica
    assert output.count("is not a replica") == 1, output


async def test_a_replica_behind_a_transaction_pooler_takes_reads_across_a_reconnect(
    postgres: ReplicatedPostgres, upstream: FakeLLM, tmp_path: Path, replay_running: None
) -> None:
    user_id, headers = await _user(postgres)
    conversation_id = await _conversation_behind_the_apps_back(postgres, user_id, "harbours")
    await postgres.wait_replayed()
    paths = [
        "/api/conversations",
        f"/api/conversations/{conversation_id}",
        f"/api/conversations/{conversation_id}/messages",
        "/api/conversations/search?q=harbours",
        "/api/users/me/stats",
    ]
    with (
        running_pgbouncer(postgres.replica_url, pool_size=2) as bouncer,
        serving(
            postgres.primary_url, upstream, tmp_path, count=1, METRICS_ENABLED="true",
            DATABASE_REPLICA_URLS=bouncer.url(postgres.replica_url), DB_REPLICA_POLL="0.1",
            SEARCH_RATE_LIMIT="100000",
        ) as [server],
    ):  # fmt: skip
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            await _until_replica(client, server.url, ok=True, within=10)
            before = await _routed(client, server.url, "replica")
            for round_ in range(2):
                answers = await asyncio.gather(
                    *(client.get(f"{server.url}{path}") for path in paths * 6)
                )
                for answer in answers:
                    assert answer.status_code == 200, answer.text
                if round_ == 0:
                    # Every server connection pgbouncer holds is closed once idle: a
                    # statement kept prepared on one would now fail.
                    await bouncer.admin("RECONNECT")
            routed = await _routed(client, server.url, "replica") - before
    [output] = _outputs([server])
    assert routed == 2 * len(paths) * 6, output
    assert "Traceback" not in output, output


def test_lag_is_how_long_ago_the_primary_first_had_wal_the_replica_has_not_replayed() -> None:
    clock = PrimaryClock(keep_seconds=10)
    assert clock.lag(0, now=0) is None  # nothing sampled yet: unknown
    clock.add(100, at=0)
    clock.add(100, at=1)
    assert clock.lag(100, now=5) == 0  # nothing new written: caught up, however long idle
    clock.add(250, at=2)
    clock.add(400, at=3)
    assert clock.lag(100, now=3.5) == 1.5  # the primary had WAL past 100 from t=2 on
    assert clock.lag(300, now=3.5) == 0.5
    clock.add(400, at=12)  # samples older than 10 s are dropped: (0, 100) and (1, 100)
    assert clock.lag(100, now=14) == 12
    assert clock.lag(50, now=14) == 12  # at least as long ago as the oldest sample kept


def test_a_read_is_tried_again_on_the_primary_only_when_the_replica_failed() -> None:
    lost = [
        asyncpg.exceptions.InternalClientError("cannot switch to state 12"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.SerializationError("canceling statement: conflict with recovery"),
        DatabaseUnavailable("cannot connect to the database"),
        ConnectionResetError(),
    ]
    kept = [
        asyncpg.exceptions.PostgresSyntaxError("syntax error"),
        asyncpg.exceptions.QueryCanceledError("statement timeout"),
        ValueError("a bug"),
    ]
    assert [replica_lost(exc) for exc in lost] == [True] * len(lost)
    assert [replica_lost(exc) for exc in kept] == [False] * len(kept)
