"""The worst search of one large account (issue 20, item 3): a single user with ~91 MB of
lorem-ipsum messages, searched in fuzzy mode (`lorm ipsm`) and in full text.

    uv run python -m bench.search_worst [--megabytes 91] [--runs 3] [--load]

`--load` (re)builds the account in its own database, `chatwithme_bench_big`, on the server of
DATABASE_URL (or the embedded one). Each search runs through `SearchService` on a session
whose statement timeout is the app's search timeout raised to 10 minutes, so the figure is
the search's own cost, not where the timeout would cut it. Figures go to
bench/results/search_worst.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.cli import database_url_for
from app.db.url import to_async_url, to_libpq
from app.search.services import Filters, SearchService
from app.settings import load_settings
from bench.common import median, write
from bench.generate import bench_database_url
from prisma_compat import cuid

DATABASE = "chatwithme_bench_big"
EMAIL = "big@bench.example"
LOREM_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco "
    "laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate "
    "velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt "
    "culpa qui officia deserunt mollit anim id est laborum"
)
LOREM = LOREM_TEXT.split()
QUERIES = {"fuzzy_typo": "lorm ipsm", "fuzzy_partial": "volupt", "fulltext_common": "lorem"}


def _message(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(LOREM)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


async def load(url: str, megabytes: int) -> None:
    """One user, conversations of 20 messages of 1-4 KB, until `megabytes` of text."""
    rng = random.Random(20)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SET maintenance_work_mem = '512MB'")
        await connection.execute("TRUNCATE users, conversations, messages, sessions CASCADE")
        user_id = cuid()
        await connection.execute(
            'INSERT INTO users (id, name, email, "createdAt", "updatedAt") '
            "VALUES ($1, 'big', $2, now(), now())",
            user_id,
            EMAIL,
        )
        total, conversations, messages = 0, [], []
        started, now = time.monotonic(), datetime(2026, 11, 1)
        while total < megabytes * 1_000_000:
            conversation_id = cuid()
            conversations.append((conversation_id, "Lorem ipsum notes", user_id, now, now))
            for index in range(20):
                content = _message(rng, rng.randint(1000, 4000))
                total += len(content)
                role = "user" if index % 2 == 0 else "assistant"
                messages.append((cuid(), content, role, conversation_id, user_id, now))
        await connection.copy_records_to_table(
            "conversations",
            records=conversations,
            columns=["id", "title", "userId", "createdAt", "updatedAt"],
        )
        await connection.copy_records_to_table(
            "messages",
            records=messages,
            columns=["id", "content", "role", "conversationId", "userId", "createdAt"],
        )
        await connection.execute("VACUUM ANALYZE messages")
        await connection.execute("VACUUM ANALYZE conversations")
        print(
            f"{len(messages):,} messages, {total / 1e6:.0f} MB in {time.monotonic() - started:.0f} s"
        )
    finally:
        await connection.close()


async def measure(url: str, runs: int) -> dict[str, Any]:
    engine = create_async_engine(to_async_url(url), pool_size=1, max_overflow=0)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with maker() as db:
        user_id = str(await db.scalar(text("SELECT id FROM users WHERE email = :e"), {"e": EMAIL}))
        size = await db.scalar(
            text('SELECT sum(length(content)) FROM messages WHERE "userId" = :u'), {"u": user_id}
        )
    figures: dict[str, Any] = {"account_mb": round(int(size or 0) / 1e6, 1), "queries": QUERIES}
    for kind, query in QUERIES.items():
        times, mode = [], None
        for _ in range(runs):
            async with maker() as db, db.begin():
                started = time.perf_counter()
                page = await SearchService(db, user_id, timeout_seconds=600).search(
                    query, Filters(), 20, None
                )
                times.append((time.perf_counter() - started) * 1000)
                mode = page.mode
        figures[kind] = {
            "mode": mode,
            "median_ms": round(median(times)),
            "max_ms": round(max(times)),
        }
        print(kind, figures[kind], flush=True)
    await engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=91)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--load", action="store_true")
    args = parser.parse_args()
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url, DATABASE)
        if args.load:
            asyncio.run(load(to_libpq(url), args.megabytes))
        figures = asyncio.run(measure(url, args.runs))
    print("wrote", write("search_worst", figures))


if __name__ == "__main__":
    main()
