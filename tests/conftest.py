"""Fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL/DATABASE_URL), fresh databases
migrated with Alembic, and per-test transactions that the app under test shares."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from litestar import Litestar
from sqlalchemy import pool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.asgi import create_app
from app.db import migrate
from app.db.embedded import EmbeddedPostgres
from app.db.engine import Database
from app.db.url import to_async_url, to_libpq
from app.settings import Settings
from tests.fakes.llm import FakeLLM

T = TypeVar("T")
FIXTURES = Path(__file__).parent / "fixtures"
CHATWITHME_BIN = str(Path(sys.executable).parent / "chatwithme")
TEST_SECRET = "test-secret-" + "x" * 40


def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking code that starts its own event loop (Alembic's env.py) off the test loop."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(function, *args).result()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL of a PostgreSQL server on which the tests may create databases."""
    given = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="chatwithme-test-"))
    server = EmbeddedPostgres(folder / "postgres")
    server.start()
    try:
        yield server.url("postgres")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _admin(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(to_libpq(server_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


class DatabaseFactory:
    """Makes fresh, empty databases on the test server and drops them at the end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.created: list[str] = []

    def create(self) -> str:
        name = f"chatwithme_test_{uuid.uuid4().hex[:10]}"
        in_thread(asyncio.run, _admin(self.server_url, f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for name in self.created:
            in_thread(
                asyncio.run,
                _admin(self.server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'),
            )


@pytest.fixture(scope="session")
def databases(server_url: str) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(server_url)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def database_url(databases: DatabaseFactory) -> str:
    """A database migrated to head, shared by the tests (each runs in a rolled-back transaction)."""
    url = databases.create()
    in_thread(migrate.upgrade, url)
    return url


@pytest.fixture(scope="session")
def own_database_url(databases: DatabaseFactory) -> str:
    """A migrated database for tests whose requests really commit (shared by them; each
    works with users of its own)."""
    url = databases.create()
    in_thread(migrate.upgrade, url)
    return url


@pytest.fixture
async def engine(own_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Connections to `own_database_url` that really commit."""
    engine = create_async_engine(to_async_url(own_database_url), poolclass=pool.NullPool)
    yield engine
    await engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=database_url,
        data_dir=tmp_path,
        auth_secret=TEST_SECRET,
        # Whatever this machine's environment holds, tests start with no model provider.
        groq_api_key=None,
        gemini_api_key=None,
        openai_compat_base_url=None,
        dev_echo_delay_ms=0,
        # No title model unless a test asks for one: its calls would mix with the answers'.
        title_model="none",
    )


@pytest.fixture
async def connection(database_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back when the test ends."""
    engine = create_async_engine(to_async_url(database_url), poolclass=pool.NullPool)
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            await transaction.rollback()
    await engine.dispose()


@asynccontextmanager
async def lifespan_of(app: Litestar) -> AsyncIterator[None]:
    """Run the app's start-up and shutdown in one task of its own (anyio's cancel scopes must
    be left in the task that entered them; pytest-asyncio tears fixtures down in another)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # start-up failed: raise its error
    try:
        yield
    finally:
        stop.set()
        await task


@asynccontextmanager
async def http_client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `app`, run in the test's own event loop."""
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan_of(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as test_client,
    ):
        yield test_client


@pytest.fixture
async def client(
    settings: Settings, connection: AsyncConnection
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app, its sessions joined to the test's transaction."""
    async with http_client(create_app(settings, database=Database.bound_to(connection))) as c:
        yield c


# The fake model vendors, one loopback server each (see tests/fakes/llm.py).


@pytest.fixture
def groq_fake() -> Iterator[FakeLLM]:
    fake = FakeLLM().start()
    yield fake
    fake.stop()


@pytest.fixture
def gemini_fake() -> Iterator[FakeLLM]:
    fake = FakeLLM().start()
    yield fake
    fake.stop()


@pytest.fixture
def local_fake() -> Iterator[FakeLLM]:
    fake = FakeLLM().start()
    yield fake
    fake.stop()
