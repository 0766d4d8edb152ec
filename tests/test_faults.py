"""Database faults, through real HTTP against a real PostgreSQL that these tests stop, kill and
start again: the app answers 503 with Retry-After meanwhile, never a 500, and recovers by
itself once the database is back."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from sqlalchemy import text

from app.asgi import create_app
from app.db import migrate
from app.db.embedded import EmbeddedPostgres, running_postgres_pids
from app.db.engine import Database
from app.db.url import to_libpq
from app.lib.time import utc_now
from app.settings import Settings
from prisma_compat import cuid
from tests.conftest import TEST_SECRET, http_client, in_thread


@dataclass
class Server:
    """An embedded PostgreSQL of these tests' own: the shared test server is never touched."""

    postgres: EmbeddedPostgres

    @property
    def url(self) -> str:
        return self.postgres.url()

    @property
    def socket_file(self) -> Path:
        return Path(self.url.split("host=", 1)[1]) / ".s.PGSQL.5432"

    def ensure_running(self) -> None:
        if not running_postgres_pids(self.postgres.pgdata):
            self.postgres.stop()  # lets go of the dead one
            self.postgres.start()

    def stop_immediately(self) -> None:
        """`pg_ctl stop -m immediate`: no shutdown checkpoint, the socket file removed."""
        self.postgres.stop(mode="immediate")

    def kill(self) -> None:
        """SIGKILL to the postmaster; its backends exit as they notice."""
        (pid,) = running_postgres_pids(self.postgres.pgdata)
        children = psutil.Process(pid).children()
        os.kill(pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(pid), *children], timeout=30)
        self.postgres.stop()  # nothing left to stop; lets go of it


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    folder = Path(tempfile.mkdtemp(prefix="chatwithme-faults-"))
    postgres = EmbeddedPostgres(folder / "postgres")
    postgres.start()
    try:
        in_thread(asyncio.run, _execute(postgres.url("postgres"), "CREATE DATABASE chatwithme"))
        in_thread(migrate.upgrade, postgres.url())
        yield Server(postgres)
    finally:
        postgres.stop()
        for pid in running_postgres_pids(postgres.pgdata):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


async def _execute(url: str, statement: str, *args: object) -> None:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        await connection.execute(statement, *args)
    finally:
        await connection.close()


async def signed_in(url: str) -> str:
    """A new user with a session, committed; returns the session token."""
    user_id, token = cuid(), cuid() + cuid()
    now = utc_now()
    await _execute(
        url,
        'INSERT INTO users (id, email, "updatedAt") VALUES ($1, $2, $3)',
        user_id,
        f"{user_id}@example.com",
        now,
    )
    await _execute(
        url,
        'INSERT INTO sessions (id, "sessionToken", "userId", expires) VALUES ($1, $2, $3, $4)',
        cuid(),
        token,
        user_id,
        now.replace(year=now.year + 1),
    )
    return token


def settings_for(url: str, folder: Path, **changes: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=url,
        data_dir=folder,
        auth_secret=TEST_SECRET,
        groq_api_key=None,
        gemini_api_key=None,
        openai_compat_base_url=None,
        db_connect_timeout=2,
        **changes,
    )


@asynccontextmanager
async def api_for(
    settings: Settings, database: Database | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    database = database or Database.from_settings(settings)
    try:
        async with http_client(create_app(settings, database=database)) as client:
            yield client
    finally:
        await database.engine.dispose()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("fault", ["stop -m immediate", "SIGKILL"])
async def test_a_database_outage_is_503_with_retry_after_and_recovers_without_a_restart(
    server: Server, tmp_path: Path, fault: str
) -> None:
    server.ensure_running()
    token = await signed_in(server.url)
    bearer = {"authorization": f"Bearer {token}"}
    cookie = {"cookie": f"authjs.session-token={token}"}
    async with api_for(settings_for(server.url, tmp_path, db_pool_size=2)) as api:
        assert (await api.get("/api/conversations", headers=bearer)).status_code == 200

        if fault == "SIGKILL":
            await asyncio.to_thread(server.kill)
        else:
            await asyncio.to_thread(server.stop_immediately)
            assert not server.socket_file.exists()  # asyncpg: FileNotFoundError
        for _ in range(3):  # the pooled connections die first, then every new one fails
            assert_unavailable(await api.get("/api/conversations", headers=bearer))
            assert_unavailable(await api.get("/api/users/me", headers=cookie))
            assert_unavailable(await api.post("/api/conversations", headers=bearer, json={}))
        for credentials in (bearer, cookie, {}):
            health = await api.get("/api/health", headers=credentials)
            assert health.status_code == 503
            assert health.json()["status"] == "unhealthy"

        await asyncio.to_thread(server.postgres.start)
        assert (await api.get("/api/conversations", headers=bearer)).status_code == 200
        assert (await api.get("/api/users/me", headers=cookie)).status_code == 200
        # Healthy again by itself. The notification line reconnects on its backoff (at most
        # 5 s); until it has, an outage that lasted over 10 s (a loaded machine) is `degraded`.
        assert await _healthy_within(api, seconds=20)


async def _healthy_within(api: httpx.AsyncClient, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        if (await api.get("/api/health")).json()["status"] == "healthy":
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.25)


async def test_an_exhausted_pool_is_503_with_retry_after_and_recovers_at_once(
    server: Server, tmp_path: Path
) -> None:
    server.ensure_running()
    token = await signed_in(server.url)
    bearer = {"authorization": f"Bearer {token}"}
    settings = settings_for(server.url, tmp_path, db_pool_size=2, db_pool_timeout=0.5)
    database = Database.from_settings(settings)
    async with api_for(settings, database) as api:
        async with database.engine.connect() as first, database.engine.connect() as second:
            await first.execute(text("SELECT 1"))  # both pooled connections are in use
            await second.execute(text("SELECT 1"))
            answers = await asyncio.gather(
                *(api.get("/api/conversations", headers=bearer) for _ in range(50))
            )
            health = await api.get("/api/health")
        for answer in answers:
            assert_unavailable(answer)
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"

        assert (await api.get("/api/conversations", headers=bearer)).status_code == 200
        assert (await api.get("/api/health")).json()["status"] == "healthy"


async def test_a_busy_read_pool_is_503_with_retry_after_and_recovers_at_once(
    server: Server, tmp_path: Path
) -> None:
    """The conversation list runs on the read pool: its one connection waits on a lock, so the
    next lists wait for it past DB_POOL_TIMEOUT, and get 503 rather than hang or fail."""
    server.ensure_running()
    token = await signed_in(server.url)
    bearer = {"authorization": f"Bearer {token}"}
    settings = settings_for(server.url, tmp_path, db_read_pool_size=1, db_pool_timeout=0.5)
    async with api_for(settings) as api:
        assert (await api.get("/api/conversations", headers=bearer)).status_code == 200
        locker = await asyncpg.connect(to_libpq(server.url))
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE")
                blocked = asyncio.create_task(api.get("/api/conversations", headers=bearer))
                await asyncio.sleep(0.3)  # it holds the read pool's one connection
                answers = await asyncio.gather(
                    *(api.get("/api/conversations", headers=bearer) for _ in range(5))
                )
                assert not blocked.done()
        finally:
            await locker.close()
        for answer in answers:
            assert_unavailable(answer)
        assert (await blocked).status_code == 200
        assert (await api.get("/api/conversations", headers=bearer)).status_code == 200


async def test_a_read_after_a_write_in_one_request_sees_the_write(
    server: Server, tmp_path: Path
) -> None:
    """Restore writes and then reads the restored page in one transaction: that read must run
    on the session's connection, not on the read pool, which cannot see it yet."""
    server.ensure_running()
    token = await signed_in(server.url)
    bearer = {"authorization": f"Bearer {token}"}
    async with api_for(settings_for(server.url, tmp_path)) as api:
        created = await api.post("/api/conversations", headers=bearer, json={"title": "back"})
        conversation_id = created.json()["id"]
        trashed = await api.delete(f"/api/conversations/{conversation_id}", headers=bearer)
        assert trashed.is_success
        restored = await api.post(f"/api/conversations/{conversation_id}/restore", headers=bearer)
        assert restored.status_code == 200, restored.text
        listed = await api.get("/api/conversations", headers=bearer)
        assert conversation_id in [c["id"] for c in listed.json()["conversations"]]


async def test_fifty_requests_on_two_connections_get_200_or_503_with_retry_after(
    server: Server, tmp_path: Path
) -> None:
    server.ensure_running()
    token = await signed_in(server.url)
    bearer = {"authorization": f"Bearer {token}"}
    settings = settings_for(server.url, tmp_path, db_pool_size=2, db_pool_timeout=0.5)
    async with api_for(settings) as api:
        answers = await asyncio.gather(
            *(api.get("/api/conversations", headers=bearer) for _ in range(50))
        )
        for answer in answers:
            if answer.status_code != 200:
                assert_unavailable(answer)
        assert (await api.get("/api/conversations", headers=bearer)).status_code == 200
