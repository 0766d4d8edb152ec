"""GET /api/health reports the database, and answers quickly when it is gone."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app import __version__
from app.asgi import create_app
from app.db.engine import Database
from app.settings import Settings
from tests.conftest import TEST_SECRET, http_client


async def test_health_is_healthy_with_the_database_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["latencyMs"] >= 0
    assert body["version"] == __version__
    assert body["timestamp"].endswith("Z")


def _settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=url,
        data_dir=tmp_path,
        auth_secret=TEST_SECRET,
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _unhealthy_answer(url: str, tmp_path: Path) -> tuple[int, dict[str, object], float]:
    app = create_app(_settings_for(url, tmp_path))
    async with http_client(app) as test_client:
        started = time.monotonic()
        response = await test_client.get("/api/health")
        return response.status_code, response.json(), time.monotonic() - started


async def test_health_is_unhealthy_when_the_database_refuses(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nothing"
    status, body, elapsed = await _unhealthy_answer(url, tmp_path)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["ok"] is False  # type: ignore[index]
    assert elapsed < 2.0


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word (a hung database)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_health_answers_within_two_seconds_when_the_database_hangs(
    silent_server: int, tmp_path: Path
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/nothing"
    status, body, elapsed = await _unhealthy_answer(url, tmp_path)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert "1.5" in body["checks"]["database"]["error"]  # type: ignore[index]
    assert elapsed < 2.0


@pytest.mark.parametrize(
    "credentials",
    [{"authorization": "Bearer some-session-token"}, {"cookie": "authjs.session-token=some-token"}],
    ids=["bearer", "cookie"],
)
async def test_health_with_a_session_during_an_outage_is_the_health_body(
    tmp_path: Path, credentials: dict[str, str]
) -> None:
    """Health never looks the caller's session up, so it answers even when that would fail."""
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nothing"
    app = create_app(_settings_for(url, tmp_path))
    async with http_client(app) as test_client:
        response = await test_client.get("/api/health", headers=credentials)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == "unhealthy"


async def test_health_is_degraded_not_unhealthy_when_the_pool_is_busy(
    database_url: str, tmp_path: Path
) -> None:
    settings = _settings_for(database_url, tmp_path).model_copy(
        update={"db_pool_size": 1, "db_pool_timeout": 0.2}
    )
    database = Database.from_url(database_url, settings)
    app = create_app(settings, database=database)
    async with http_client(app) as test_client:
        async with database.engine.connect() as held:  # the pool's only connection
            await held.execute(text("SELECT 1"))
            busy = await test_client.get("/api/health")
        idle = await test_client.get("/api/health")
    await database.engine.dispose()
    assert busy.status_code == 200
    assert busy.json()["status"] == "degraded"
    assert busy.json()["checks"]["database"]["saturated"] is True
    assert idle.json()["status"] == "healthy"
