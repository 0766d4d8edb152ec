"""T4 (search), T5 (inserts with the search index) and T6 (stats) of BENCHMARKS.md.

    uv run python -m bench.sql_bench [--rounds 5] [--runs 20] [--insert-seconds 600] [--only T6]

Needs the data set of `bench.generate`. Each target runs its baseline in the same run,
interleaved A B A B; figures go to bench/results/sql.json, query plans to
bench/results/explain.txt.

T4's baseline is what Prisma's `contains` + `mode: 'insensitive'` produces (an ILIKE '%q%'
under EXISTS), run without the help of the trigram index that this project adds (bitmap scans
off for that statement), as the original app's database had no such index.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.cli import database_url_for
from app.db.url import to_async_url
from app.search.services import Filters, SearchService
from app.settings import load_settings
from app.stats.services import user_stats
from bench.common import median, percentile, pin_to, write
from bench.generate import HEAVY_USER, TYPICAL_USER, bench_database_url
from prisma_compat import cuid

PRISMA_CONTAINS = text("""
    SELECT c.id, c.title, c."userId", c."createdAt", c."updatedAt" FROM conversations c
    WHERE c."userId" = :uid AND EXISTS (
        SELECT 1 FROM messages m WHERE m."conversationId" = c.id AND m.content ILIKE :pattern)
    ORDER BY c."updatedAt" DESC LIMIT 20
""")


async def timed(run: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def user_id(maker: async_sessionmaker[AsyncSession], email: str) -> str:
    async with maker() as db:
        return str(await db.scalar(text("SELECT id FROM users WHERE email = :e"), {"e": email}))


async def t4(maker: async_sessionmaker[AsyncSession], rounds: int, runs: int) -> dict[str, Any]:
    users = {
        "typical": await user_id(maker, TYPICAL_USER),
        "heavy": await user_id(maker, HEAVY_USER),
    }
    async with maker() as db:
        rare = await db.scalar(text(
            "SELECT substring(content from 'zq[0-9]{4}x') FROM messages "
            "WHERE \"userId\" = :u AND content ~ 'zq[0-9]{4}x' LIMIT 1"), {"u": users["typical"]})  # fmt: skip
    queries = {"rare": rare or "zq0001x", "common": "python", "two_letter": "go",
               "phrase": '"postgres index"'}  # fmt: skip
    figures: dict[str, Any] = {"queries": queries}
    for who, uid in users.items():
        for kind, q in queries.items():
            plain = q.strip('"')

            async def candidate(uid: str = uid, q: str = q) -> None:
                async with maker() as db:
                    await SearchService(db, uid).search(q, Filters(), 20, None)

            async def baseline(uid: str = uid, plain: str = plain) -> None:
                async with maker() as db, db.begin():
                    await db.execute(text("SET LOCAL enable_bitmapscan = off"))
                    await db.execute(PRISMA_CONTAINS, {"uid": uid, "pattern": f"%{plain}%"})

            await candidate()
            await baseline()
            a_p95, b_p95 = [], []
            for _ in range(rounds):
                a_p95.append(percentile(await timed(baseline, max(3, runs // 4)), 95))
                b_p95.append(percentile(await timed(candidate, runs), 95))
            figures[f"{who}/{kind}"] = {
                "search_p95_ms": round(median(b_p95), 2),
                "ilike_p95_ms": round(median(a_p95), 2),
                "ratio": round(median(b_p95) / median(a_p95), 4),
            }
            print(who, kind, figures[f"{who}/{kind}"], flush=True)
    return figures


# T6's baseline: the statement stats ran before the rollups (revision 0007), which reads every
# message of the user.
STATS_FROM_MESSAGES = text("""
    WITH mine AS (
        SELECT role, model, status, "promptTokens" AS prompt, "completionTokens" AS completion,
               "timeToFirstTokenMs" AS ttft, "createdAt" AS created
        FROM messages WHERE "userId" = :uid
    )
    SELECT
      (SELECT count(*) FROM conversations WHERE "userId" = :uid) AS conversations,
      (SELECT "createdAt" FROM users WHERE id = :uid) AS joined,
      (SELECT count(*) FROM mine) AS messages,
      (SELECT count(*) FROM mine WHERE role = 'user') AS user_messages,
      (SELECT count(*) FROM mine WHERE role = 'assistant') AS assistant_messages,
      (SELECT coalesce(sum(prompt), 0) FROM mine) AS prompt,
      (SELECT coalesce(sum(completion), 0) FROM mine) AS completion,
      (SELECT min(created) FROM mine) AS first_at,
      (SELECT max(created) FROM mine) AS last_at,
      (SELECT coalesce(json_agg(m ORDER BY m.messages DESC, m.model), '[]') FROM (
          SELECT model, count(*) AS messages, coalesce(sum(prompt), 0) AS prompt,
                 coalesce(sum(completion), 0) AS completion, avg(ttft) AS ttft,
                 avg(CASE WHEN status IN ('error', 'incomplete') THEN 1.0 ELSE 0.0 END) AS errors
          FROM mine WHERE role = 'assistant' GROUP BY model) m) AS models,
      (SELECT coalesce(json_agg(d ORDER BY d.day), '[]') FROM (
          SELECT (created AT TIME ZONE 'UTC' AT TIME ZONE :tz)::date AS day, count(*) AS messages,
                 coalesce(sum(coalesce(prompt, 0) + coalesce(completion, 0)), 0) AS tokens
          FROM mine GROUP BY 1) d) AS days
""")


async def t6(maker: async_sessionmaker[AsyncSession], rounds: int, runs: int) -> dict[str, Any]:
    """The stats endpoint's service (rollups) vs the statement over every message, A B A B."""
    uid = await user_id(maker, HEAVY_USER)
    async with maker() as db:
        count = await db.scalar(
            text('SELECT count(*) FROM messages WHERE "userId" = :u'), {"u": uid}
        )

    async def stats() -> None:
        async with maker() as db:
            await user_stats(db, uid, 30, "Europe/Berlin")

    async def baseline() -> None:
        async with maker() as db:
            await db.execute(STATS_FROM_MESSAGES, {"uid": uid, "tz": "Europe/Berlin"})

    await stats()
    await baseline()
    a_p95, b_p95 = [], []
    for _ in range(rounds):
        a_p95.append(percentile(await timed(baseline, runs), 95))
        b_p95.append(percentile(await timed(stats, runs), 95))
    result = {
        "user_messages": count,
        "stats_p95_ms": round(median(b_p95), 2),
        "scan_p95_ms": round(median(a_p95), 2),
    }
    print("T6", result, flush=True)
    return result


T5_BODY = (
    "Inserted while measuring: postgres index latency python kubernetes token stream " * 3
).strip()


async def t5_target(maker: async_sessionmaker[AsyncSession]) -> tuple[str, str]:
    """The typical user and one of their conversations, and `bench_plain_messages` made anew:
    messages' columns without the search vector, its triggers and indexes but one."""
    uid = await user_id(maker, TYPICAL_USER)
    async with maker() as db, db.begin():
        cid = await db.scalar(
            text('SELECT id FROM conversations WHERE "userId" = :u LIMIT 1'), {"u": uid}
        )
        await db.execute(text("DROP TABLE IF EXISTS bench_plain_messages"))
        await db.execute(text(
            "CREATE TABLE bench_plain_messages (LIKE messages INCLUDING DEFAULTS)"))  # fmt: skip
        await db.execute(text('ALTER TABLE bench_plain_messages DROP COLUMN "searchVector"'))
        await db.execute(text(
            'CREATE INDEX ON bench_plain_messages ("conversationId", "createdAt")'))  # fmt: skip
    return uid, str(cid)


async def t5_phase(
    maker: async_sessionmaker[AsyncSession], table: str, uid: str, cid: str, duration: float
) -> tuple[int, list[float]]:
    """Four writers inserting single rows into `table`, each committed, for `duration` s:
    the rows written and each insert's milliseconds."""
    latencies: list[float] = []
    stop = time.monotonic() + duration

    async def worker() -> None:
        async with maker() as db:
            while time.monotonic() < stop:
                started = time.perf_counter()
                await db.execute(text(
                    f'INSERT INTO {table} (id, content, role, "conversationId", "userId", "createdAt") '
                    "VALUES (:id, :c, 'user', :cid, :uid, now())"),
                    {"id": cuid(), "c": T5_BODY, "cid": cid, "uid": uid})  # fmt: skip
                await db.commit()
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(4)))
    return len(latencies), latencies


async def t5(
    maker: async_sessionmaker[AsyncSession], rounds: int, seconds: float
) -> dict[str, Any]:
    """Single-row inserts from 4 connections: with the search columns and indexes vs without."""
    uid, cid = await t5_target(maker)

    async def run(table: str, duration: float) -> tuple[int, list[float]]:
        return await t5_phase(maker, table, uid, cid, duration)

    per_phase = seconds / (2 * rounds)
    indexed_rate, plain_rate, indexed_lat, plain_lat = [], [], [], []
    for _ in range(rounds):
        n, lat = await run("bench_plain_messages", per_phase)
        plain_rate.append(n / per_phase)
        plain_lat += lat
        n, lat = await run("messages", per_phase)
        indexed_rate.append(n / per_phase)
        indexed_lat += lat
    async with maker() as db, db.begin():
        await db.execute(
            text("DELETE FROM messages WHERE content LIKE 'Inserted while measuring:%'")
        )
        await db.execute(text("DROP TABLE bench_plain_messages"))
    # Now, not later: autovacuum of the deleted rows (minutes, with the GIN indexes) would
    # otherwise run under the benchmarks that follow (it halved T1's figures once).
    async with maker.kw["bind"].connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM (ANALYZE) messages"))
    result = {
        "seconds": seconds,
        "indexed_inserts_per_s": round(median(indexed_rate), 1),
        "plain_inserts_per_s": round(median(plain_rate), 1),
        "throughput_ratio": round(median(indexed_rate) / median(plain_rate), 3),
        "indexed_p50_ms": round(percentile(indexed_lat, 50), 2),
        "indexed_p99_ms": round(percentile(indexed_lat, 99), 2),
        "indexed_p99_over_p50": round(percentile(indexed_lat, 99) / percentile(indexed_lat, 50), 2),
        "plain_p99_over_p50": round(percentile(plain_lat, 99) / percentile(plain_lat, 50), 2),
    }
    print("T5", result, flush=True)
    return result


async def explain(maker: async_sessionmaker[AsyncSession]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the search's ranking statement for the heavy user."""
    uid = await user_id(maker, HEAVY_USER)
    captured: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "websearch_to_tsquery" in statement and "g AS" in statement:
            captured.append((statement, parameters))

    async with maker() as db:
        engine = db.bind.sync_engine  # type: ignore[union-attr]
        event.listen(engine, "before_cursor_execute", record)
        try:
            await SearchService(db, uid).search("python", Filters(), 20, None)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        statement, parameters = captured[0]
        plan = await db.connection()
        rows = await plan.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        return "search 'python', heavy user:\n" + "\n".join(r[0] for r in rows)


TARGETS = ("T4", "T5", "T6")


async def measure(
    url: str, rounds: int, runs: int, insert_seconds: float, only: tuple[str, ...] = TARGETS
) -> dict[str, Any]:
    pin_to(0)
    engine = create_async_engine(to_async_url(url), pool_size=8)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    try:
        figures = {}
        if "T4" in only:
            figures["T4_search"] = await t4(maker, rounds, runs)
        if "T6" in only:
            figures["T6_stats"] = await t6(maker, rounds, runs)
        if "T5" in only:
            figures["T5_inserts"] = await t5(maker, rounds, insert_seconds)
        if "T4" in only:
            from bench.common import RESULTS

            RESULTS.mkdir(exist_ok=True)
            (RESULTS / "explain.txt").write_text(await explain(maker) + "\n")
    finally:
        await engine.dispose()
    name = "sql" if only == TARGETS else "sql-" + "-".join(only).lower()
    print(f"wrote {write(name, figures)}")
    return figures


def run(
    rounds: int, runs: int, insert_seconds: float, only: tuple[str, ...] = TARGETS
) -> dict[str, Any]:
    """Start the embedded server if needed, then measure on the bench database."""
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url)
        return asyncio.run(measure(url, rounds, runs, insert_seconds, only))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--insert-seconds", type=float, default=600.0)
    parser.add_argument("--only", default=",".join(TARGETS), help="for example T6 or T5,T6")
    args = parser.parse_args()
    only = tuple(t.strip().upper() for t in args.only.split(","))
    if not set(only) <= set(TARGETS):
        parser.error(f"--only: choose from {', '.join(TARGETS)}")
    run(args.rounds, args.runs, args.insert_seconds, only)


if __name__ == "__main__":
    main()
