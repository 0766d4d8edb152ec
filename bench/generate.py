"""Load a realistic data set with COPY into its own database, `chatwithme_bench`.

    uv run python -m bench.generate [--messages 1000000] [--users 2000]

Users get a Zipf spread of conversations, conversations get a Zipf spread of messages (up to
2,500), and one heavy user has 100,000 messages in 5,000 conversations, including one
conversation of 2,500 messages and one of 50. Text comes from a fixed vocabulary with a Zipf
distribution of words, so some words are everywhere and some are rare. Messages are stored
as the app writes them: each follows the one before it (`parentId`), and the conversation
shows that branch (`currentLeafId`, its newest message). Re-running replaces the data. Runs on the embedded server, or on the server of DATABASE_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import asyncpg

from app.cli import database_url_for
from app.db import migrate
from app.db.url import to_libpq
from app.settings import load_settings
from prisma_compat import cuid

BENCH_DATABASE = "chatwithme_bench"
HEAVY_USER = "heavy@bench.example"
TYPICAL_USER = "typical@bench.example"
SESSION_PREFIX = "bench-session-"
COMMON = [
    "the",
    "be",
    "to",
    "of",
    "and",
    "a",
    "in",
    "that",
    "have",
    "it",
    "for",
    "not",
    "on",
    "with",
    "he",
    "as",
    "you",
    "do",
    "at",
    "this",
    "but",
    "his",
    "by",
    "from",
    "they",
    "we",
    "say",
    "her",
    "she",
    "or",
    "an",
    "will",
    "my",
    "one",
    "all",
    "would",
    "there",
    "their",
    "what",
    "so",
    "up",
    "out",
    "if",
    "about",
    "who",
    "get",
    "which",
    "go",
    "me",
    "when",
    "make",
    "can",
    "like",
    "time",
    "no",
    "just",
    "him",
    "know",
    "take",
    "people",
    "into",
    "year",
    "your",
    "good",
    "some",
    "could",
    "them",
    "see",
    "other",
    "than",
    "then",
    "now",
    "look",
    "only",
    "come",
    "its",
    "over",
    "think",
    "also",
    "back",
    "after",
    "use",
    "two",
    "how",
    "our",
    "work",
    "first",
    "well",
    "way",
    "even",
    "new",
    "want",
    "because",
    "any",
    "these",
    "give",
    "day",
    "most",
    "us",
    "is",
    "was",
    "are",
    "were",
    "been",
]
TOPICS = [
    "python",
    "postgres",
    "database",
    "index",
    "query",
    "kubernetes",
    "docker",
    "deploy",
    "server",
    "cache",
    "latency",
    "api",
    "frontend",
    "react",
    "component",
    "state",
    "hook",
    "router",
    "model",
    "token",
    "prompt",
    "stream",
    "answer",
    "question",
    "error",
    "function",
    "class",
    "test",
    "debug",
    "log",
    "metric",
    "trace",
    "queue",
    "worker",
    "thread",
    "async",
    "await",
    "session",
    "cookie",
    "login",
    "password",
    "email",
    "recipe",
    "bread",
    "flour",
    "oven",
    "travel",
    "lisbon",
    "flight",
    "hotel",
    "museum",
    "coffee",
    "café",
    "running",
    "marathon",
    "training",
    "knee",
    "garden",
    "tomato",
    "basil",
    "pizza",
    "pineapple",
    "guitar",
    "chord",
    "melody",
    "invoice",
    "budget",
    "mortgage",
    "salary",
    "receive",
    "schedule",
    "meeting",
    "calendar",
    "vacation",
    "weather",
    "forecast",
]
RARE = [f"zq{n:04d}x" for n in range(3000)]  # ids, codes, names: words seen a handful of times


def _zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (rank**s) for rank in range(1, n + 1)]


class Text:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = COMMON + TOPICS
        self.weights = _zipf_weights(len(self.words))

    def sentence(self, words: int) -> str:
        chosen = self.rng.choices(self.words, self.weights, k=words)
        if self.rng.random() < 0.05:
            chosen[self.rng.randrange(words)] = self.rng.choice(RARE)
        return " ".join(chosen).capitalize() + "."

    def message(self, role: str) -> str:
        count = self.rng.randint(1, 3) if role == "user" else self.rng.randint(2, 7)
        return " ".join(self.sentence(self.rng.randint(5, 14)) for _ in range(count))


def _plan(messages: int, users: int, rng: random.Random) -> list[tuple[str, list[int]]]:
    """(email, message counts of each conversation) per user."""
    plan: list[tuple[str, list[int]]] = []
    heavy = [2500, 50] + [min(2500, max(2, int(rng.paretovariate(1.2) * 8))) for _ in range(4998)]
    scale = (100_000 - 2550) / sum(heavy[2:])
    heavy = [2500, 50] + [max(2, round(c * scale)) for c in heavy[2:]]
    plan.append((HEAVY_USER, heavy))
    plan.append((TYPICAL_USER, [rng.randint(4, 30) for _ in range(50)]))
    left = messages - sum(heavy) - sum(plan[1][1])
    weights = _zipf_weights(users - 2, 1.0)
    total = sum(weights)
    for index, weight in enumerate(weights):
        budget = max(4, int(left * weight / total))
        counts: list[int] = []
        while budget > 0:
            take = min(budget, min(2500, max(2, int(rng.paretovariate(1.3) * 6))))
            counts.append(take)
            budget -= take
        plan.append((f"user{index:05d}@bench.example", counts))
    return plan


def _rows(plan: list[tuple[str, list[int]]], rng: random.Random) -> Iterator[tuple[str, tuple]]:  # type: ignore[type-arg]
    text = Text(7)
    now = datetime(2026, 11, 1)
    for email, conversations in plan:
        user_id = cuid()
        joined = now - timedelta(days=rng.randint(30, 700))
        yield "users", (user_id, email.split("@")[0], email, joined, joined)
        yield "sessions", (cuid(), SESSION_PREFIX + email, user_id, now + timedelta(days=3650), now)
        for count in conversations:
            conversation_id = cuid()
            start = joined + timedelta(minutes=rng.randint(0, 600_000))
            end = start + timedelta(seconds=30 * count)
            yield "conversations", (conversation_id, text.sentence(4)[:60], user_id, start, end)
            parent = None
            for position in range(count):
                role = "user" if position % 2 == 0 else "assistant"
                model = (
                    None
                    if role == "user"
                    else rng.choice(["groq/llama-3.3-70b-versatile", "gemini/gemini-2.5-flash"])
                )
                at = start + timedelta(seconds=30 * position)
                content = text.message(role)
                tokens = (
                    (len(content) // 4, len(content) // 4) if role == "assistant" else (None, None)
                )
                message_id = cuid()
                yield "messages", (message_id, content, role, model, conversation_id, user_id, at,
                                   tokens[0], tokens[1], rng.randint(80, 900) if model else None,
                                   parent)  # fmt: skip
                parent = message_id


COLUMNS = {
    "users": ["id", "name", "email", "createdAt", "updatedAt"],
    "sessions": ["id", "sessionToken", "userId", "expires", "createdAt"],
    "conversations": ["id", "title", "userId", "createdAt", "updatedAt"],
    "messages": ["id", "content", "role", "model", "conversationId", "userId", "createdAt",
                 "promptTokens", "completionTokens", "timeToFirstTokenMs", "parentId"],
}  # fmt: skip
# Each conversation shows the branch the app would have written: its newest message is its leaf.
LEAVES = """
UPDATE conversations c SET "currentLeafId" = last.id
FROM (SELECT DISTINCT ON ("conversationId") "conversationId", id FROM messages
      ORDER BY "conversationId", "createdAt" DESC, id DESC) last
WHERE last."conversationId" = c.id
"""
HEAVY_INDEXES = {
    "messages_userId_searchVector_idx": 'CREATE INDEX "messages_userId_searchVector_idx" ON messages USING GIN ("userId", "searchVector")',
    "messages_userId_content_trgm_idx": 'CREATE INDEX "messages_userId_content_trgm_idx" ON messages USING GIN ("userId", content gin_trgm_ops)',
}


async def load(url: str, messages: int, users: int) -> None:
    rng = random.Random(42)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SET maintenance_work_mem = '512MB'")
        await connection.execute("TRUNCATE users, conversations, messages, sessions, accounts, "
                                 "message_reactions, user_preferences, verificationtokens CASCADE")  # fmt: skip
        for name in HEAVY_INDEXES:  # building them once after the load is much faster
            await connection.execute(f'DROP INDEX IF EXISTS "{name}"')
        buffers: dict[str, list[tuple]] = {t: [] for t in COLUMNS}  # type: ignore[type-arg]
        done = 0
        started = time.monotonic()

        async def flush(table: str) -> None:
            await connection.copy_records_to_table(
                table, records=buffers[table], columns=COLUMNS[table]
            )
            buffers[table].clear()

        for table, row in _rows(_plan(messages, users, rng), rng):
            buffers[table].append(row)
            if table == "messages":
                done += 1
                if len(buffers["messages"]) >= 20_000:
                    for name in ("users", "sessions", "conversations", "messages"):
                        await flush(name)
                    rate = done / (time.monotonic() - started)
                    print(f"\r{done:,} messages ({rate:,.0f}/s)", end="", flush=True)
        for name in ("users", "sessions", "conversations", "messages"):
            await flush(name)
        print(f"\r{done:,} messages loaded in {time.monotonic() - started:.0f} s")
        step = time.monotonic()
        await connection.execute(LEAVES)
        print(f"leaves: {time.monotonic() - step:.0f} s")
        for name, statement in HEAVY_INDEXES.items():
            step = time.monotonic()
            await connection.execute(statement)
            print(f"index {name}: {time.monotonic() - step:.0f} s")
        step = time.monotonic()
        await connection.execute("VACUUM ANALYZE")
        print(f"VACUUM ANALYZE: {time.monotonic() - step:.0f} s")
    finally:
        await connection.close()


def bench_database_url(
    server_url: str, name: str = BENCH_DATABASE, *, migrated: bool = True
) -> str:
    """A bench database on the same server as `server_url`, created (and migrated) if new."""
    from sqlalchemy.engine import make_url

    async def create() -> None:
        connection = await asyncpg.connect(to_libpq(server_url))
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if migrated:
        migrate.upgrade(url)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2_000)
    args = parser.parse_args()
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url)
        asyncio.run(load(to_libpq(url), args.messages, args.users))


if __name__ == "__main__":
    main()
