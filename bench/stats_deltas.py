"""T5 with the stats rollups upserted by the triggers (the revision before 0015) against appended deltas
(revision 0015), and the plain table, interleaved in one run on one bench database: each
round inserts for `--phase-seconds` into the plain table, into messages with deltas, then
(after a downgrade to the revision before 0015) into messages with upserts, and upgrades again. Four writers, one
user's conversation, single-row inserts each committed: BENCHMARKS.md's T5 workload. Then T6
on the same database once the deltas are folded (issue 22, item 5).

    DATA_DIR=... uv run python -m bench.generate --messages 100000
    DATA_DIR=... uv run python -m bench.stats_deltas [--rounds 6] [--phase-seconds 10]

Figures go to bench/results/stats_deltas.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.cli import database_url_for
from app.db import migrate
from app.db.url import to_async_url
from app.settings import load_settings
from bench.common import median, percentile, write
from bench.generate import bench_database_url
from bench.sql_bench import measure, t5_phase, t5_target

DELTAS = "0015_stats_deltas"


def _before_deltas(url: str) -> str:
    """The revision before 0015: the rollups upserted by the triggers."""
    from alembic.script import ScriptDirectory

    down = ScriptDirectory.from_config(migrate.alembic_config(url)).get_revision(DELTAS)
    assert down is not None and isinstance(down.down_revision, str)
    return down.down_revision


async def _prepare(url: str) -> tuple[str, str]:
    engine = create_async_engine(to_async_url(url))
    try:
        return await t5_target(async_sessionmaker(engine, expire_on_commit=False))
    finally:
        await engine.dispose()


async def _run_phase(url: str, table: str, uid: str, cid: str, seconds: float) -> Any:
    engine = create_async_engine(to_async_url(url), pool_size=4)
    try:
        rows, latencies = await t5_phase(async_sessionmaker(engine), table, uid, cid, seconds)
        return rows / seconds, latencies
    finally:
        await engine.dispose()


def _summary(rates: list[float], latencies: list[float]) -> dict[str, Any]:
    return {
        "inserts_per_s": round(median(rates), 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "p99_over_p50": round(percentile(latencies, 99) / percentile(latencies, 50), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--phase-seconds", type=float, default=10.0)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"plain": [], "deltas": [], "upserts": []}
    latencies: dict[str, list[float]] = {name: [] for name in rates}
    loads = [os.getloadavg()[0]]
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url)  # at head: deltas
        uid, cid = asyncio.run(_prepare(url))
        for _ in range(args.rounds):
            for name in ("plain", "deltas", "upserts"):
                if name == "upserts":
                    migrate.downgrade(url, _before_deltas(url))
                table = "bench_plain_messages" if name == "plain" else "messages"
                rate, lat = asyncio.run(_run_phase(url, table, uid, cid, args.phase_seconds))
                rates[name].append(rate)
                latencies[name] += lat
                if name == "upserts":
                    migrate.upgrade(url)
            loads.append(os.getloadavg()[0])
        figures: dict[str, Any] = {
            "command": "uv run python -m bench.stats_deltas "
            f"--rounds {args.rounds} --phase-seconds {args.phase_seconds}",
            "load_average_1m": [round(x, 1) for x in loads],
            **{name: _summary(rates[name], latencies[name]) for name in rates},
        }
        plain = figures["plain"]["inserts_per_s"]
        figures["ratio_deltas"] = round(figures["deltas"]["inserts_per_s"] / plain, 3)
        figures["ratio_upserts"] = round(figures["upserts"]["inserts_per_s"] / plain, 3)
        figures["per_round_ratio"] = {
            name: [round(r / p, 3) for r, p in zip(rates[name], rates["plain"], strict=True)]
            for name in ("deltas", "upserts")
        }
        print("T5", figures, flush=True)
        # T6 after a fold, as a serve process would have done within STATS_FOLD_SECONDS.
        asyncio.run(_fold(url))
        figures["T6_folded"] = asyncio.run(measure(url, 5, 20, 0, ("T6",)))["T6_stats"]
    print(f"wrote {write('stats_deltas', figures)}")


async def _fold(url: str) -> None:
    engine = create_async_engine(to_async_url(url))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("SELECT fold_stats_deltas(2147483647)"))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
