"""A search cannot take the pool from others (SECURITY.md item 43, issue 20 item 3): its
statements have a time bound, a search whose client leaves is cancelled in the database, and
searches are rate-limited per user. The app is served by uvicorn on loopback, against a
database of its own, with a small pool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote, urlsplit

import asyncpg
import httpx
import pytest

from app.asgi import create_app
from app.db import migrate
from app.db.url import to_libpq
from app.search.services import FUZZY_QUERY_CHARS
from app.settings import Settings
from tests.conftest import DatabaseFactory, in_thread
from tests.ops.conftest import served, sign_in

TYPO = "lorm ipsm"
# As long as fuzzy mode reads (FUZZY_QUERY_CHARS): the slowest search the data allows.
LONG = " ".join(["lorm ipsm dolr amt consectetr adipscing elt temor incdidunt labre"] * 2)[
    :FUZZY_QUERY_CHARS
]
RUNNING_FUZZY = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
      AND query LIKE '%word_similarity%'
"""


@pytest.fixture(scope="module")
def lorem_database_url(databases: DatabaseFactory) -> str:
    """A migrated database of this module's own (its requests commit)."""
    url = databases.create()
    in_thread(migrate.upgrade, url)
    return url


async def _lorem_account(database_url: str, email: str) -> None:
    """2,000 messages of 3.5 KB of lorem ipsum for `email`: fuzzy mode's whole scan."""
    connection = await asyncpg.connect(to_libpq(database_url))
    try:
        user_id = await connection.fetchval("SELECT id FROM users WHERE email = $1", email)
        if await connection.fetchval('SELECT count(*) FROM messages WHERE "userId" = $1', user_id):
            return
        await connection.execute(
            'INSERT INTO conversations (id, title, "userId", "createdAt", "updatedAt") '
            "VALUES ($1, 'Lorem', $2, now(), now())",
            f"c-{user_id}",
            user_id,
        )
        await connection.execute(
            'INSERT INTO messages (id, content, role, "conversationId", "userId", "createdAt") '
            "SELECT $1 || g, repeat(md5(g::text) || ' lorem ipsum dolor sit amet consectetur "
            "adipiscing elit ', 40), 'user', $2, $3, now() - g * interval '1 second' "
            "FROM generate_series(1, 2000) g",
            f"m-{user_id}-",
            f"c-{user_id}",
            user_id,
        )
    finally:
        await connection.close()


@asynccontextmanager
async def live(settings: Settings, database_url: str, **changes: object) -> AsyncIterator[str]:
    """The app served with `changes` to its settings, on `database_url`; its base URL."""
    changed = settings.model_copy(
        update={"database_url": database_url, "auth_dev_login": True, **changes}
    )
    async with served(create_app(changed)) as base_url:
        yield base_url


@asynccontextmanager
async def signed_in(base_url: str, email: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        client.headers["authorization"] = f"Bearer {await sign_in(client, email)}"
        yield client


async def _abandoned_search(base_url: str, token: str, q: str) -> asyncio.StreamWriter:
    """A search sent on a raw connection, whose answer nobody will read."""
    address = urlsplit(base_url)
    _, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(
        f"GET /api/conversations/search?q={quote(q)} HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    await writer.drain()
    return writer


async def _until(database_url: str, wanted: int, seconds: float) -> float:
    """Seconds until `wanted` fuzzy statements are running in the database."""
    connection = await asyncpg.connect(to_libpq(database_url))
    started = time.monotonic()
    try:
        while (found := await connection.fetchval(RUNNING_FUZZY)) != wanted:
            assert time.monotonic() - started < seconds, f"{found} fuzzy statements running"
            await asyncio.sleep(0.01)
        return time.monotonic() - started
    finally:
        await connection.close()


async def test_a_search_past_its_time_limit_is_503_and_its_connection_serves_the_next(
    settings: Settings, lorem_database_url: str
) -> None:
    async with (
        live(
            settings, lorem_database_url, db_pool_size=1, search_statement_timeout=0.05
        ) as base_url,
        signed_in(base_url, "slow@example.com") as client,
    ):
        await _lorem_account(lorem_database_url, "slow@example.com")
        search = await client.get("/api/conversations/search", params={"q": TYPO})
        assert search.status_code == 503
        assert search.headers["retry-after"] == "1"
        assert "0.05 s limit" in search.json()["detail"]
        # The pool's only connection came back healthy, with the ordinary time bound.
        created = await client.post("/api/conversations", json={"title": "after"})
        assert created.status_code == 201
        assert (await client.get("/api/conversations")).status_code == 200


async def test_searches_are_rate_limited_per_user(
    settings: Settings, lorem_database_url: str
) -> None:
    async with (
        live(settings, lorem_database_url, search_rate_limit=2) as base_url,
        signed_in(base_url, "eager@example.com") as eager,
        signed_in(base_url, "other@example.com") as other,
    ):
        for _ in range(2):
            found = await eager.get("/api/conversations/search", params={"q": "x"})
            assert found.status_code == 200
        refused = await eager.get("/api/conversations/search", params={"q": "x"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        found = await other.get("/api/conversations/search", params={"q": "x"})
        assert found.status_code == 200


async def test_abandoned_searches_are_cancelled_and_leave_the_pool_to_others(
    settings: Settings, lorem_database_url: str
) -> None:
    """Three searches whose clients leave, on a pool of three: the database stops their
    statements, and another user's write gets a connection within half a second."""
    async with (
        live(
            settings,
            lorem_database_url,
            db_pool_size=3,
            db_pool_timeout=0.5,
            search_statement_timeout=60,
        ) as base_url,
        signed_in(base_url, "leaver@example.com") as searcher,
        signed_in(base_url, "writer@example.com") as writer,
    ):
        await _lorem_account(lorem_database_url, "leaver@example.com")
        started = time.monotonic()
        whole = await searcher.get("/api/conversations/search", params={"q": LONG})
        uninterrupted = time.monotonic() - started
        assert (whole.status_code, whole.json()["mode"]) == (200, "fuzzy")
        token = searcher.headers["authorization"].split()[1]
        sockets = [await _abandoned_search(base_url, token, LONG) for _ in range(3)]
        await _until(lorem_database_url, 3, seconds=10)
        for socket in sockets:
            socket.close()
        stopped = await _until(lorem_database_url, 0, seconds=10)
        # Left to run, three at once on two cores would need at least 1.5 times one search's
        # time from their start (they ran well under half a second before the close):
        # stopped within one search's time, they were cancelled. (Half of it failed once
        # in CI under load: 1.58 s against 1.89.)
        assert stopped < uninterrupted, (stopped, uninterrupted)
        created = await writer.post("/api/conversations", json={"title": "mine"})
        assert created.status_code == 201
        again = await searcher.get("/api/conversations/search", params={"q": TYPO})
        assert again.status_code == 200
