"""T11 of BENCHMARKS.md: the T9 mix on 3 app processes through pgbouncer in transaction mode
(a pool of 20 server connections), against the same mix on 1 process straight to PostgreSQL.

    uv run python -m bench.pooler_bench [--rounds 3] [--seconds 15] [--app-cores 0]

Rounds interleave the two (direct, pooled, direct, pooled, ...). The pooled app is
`uvicorn --workers 3` with `DATABASE_URL=...?pgbouncer=true` and `DATABASE_DIRECT_URL` for
its LISTEN lines; pgbouncer is Debian's (`/usr/sbin/pgbouncer`, the tests' helper). During the
pooled runs the server connections to the bench database are sampled from
`pg_stat_activity` every 0.2 s: their most must stay within the pool plus one LISTEN line a
process. Both apps run on the same cores (`--app-cores`, default core 0, as T9), so the
throughput ratio shows what the pooler costs or saves for the same CPU; with a core to spare
for the three processes, pass `--app-cores 0,1`. Needs `wrk` and `bench.generate`'s data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import asyncpg

from app.cli import database_url_for
from app.db.url import to_libpq
from app.settings import load_settings
from bench.common import pin_to, write
from bench.generate import bench_database_url
from bench.http_bench import Server, targets
from bench.mixed_bench import BENCH_CONNECTION, _rare_word, app_env, measure, read_mix
from bench.router_bench import Upstream
from tests.pgbouncer import PgBouncer, pgbouncer_binary

POOL_SIZE = 20
PROCESSES = 3


class ConnectionCounter:
    """The most server connections to one database seen while it runs (the bench's own left
    out)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._sample()), daemon=True)

    async def _sample(self) -> None:
        connection = await asyncpg.connect(to_libpq(self.url), server_settings=BENCH_CONNECTION)
        try:
            while not self._stop.is_set():
                count = await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name <> $1",
                    BENCH_CONNECTION["application_name"],
                )
                self.most = max(self.most, int(count))
                await asyncio.sleep(0.2)
        finally:
            await connection.close()

    def __enter__(self) -> ConnectionCounter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def _drain(bouncer: PgBouncer, url: str) -> None:
    """Close pgbouncer's server connections and wait until they are gone (a loaded machine
    can keep its console from answering at once: tried again, then waited out)."""
    for _ in range(3):
        try:
            async with asyncio.timeout(15):
                await bouncer.admin("RECONNECT")
            break
        except (TimeoutError, OSError, asyncpg.PostgresError):
            await asyncio.sleep(1)
    await _until_at_most(url, 0)


async def _until_at_most(url: str, count: int, seconds: float = 30) -> None:
    """Wait until the database has at most `count` other connections."""
    connection = await asyncpg.connect(to_libpq(url))
    try:
        for _ in range(int(seconds / 0.2)):
            others = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            if others <= count:
                return
            await asyncio.sleep(0.2)
    finally:
        await connection.close()


def run(rounds: int, seconds: int, app_cores: str) -> dict[str, Any]:
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    binary = pgbouncer_binary()
    if binary is None:
        sys.exit("pgbouncer is needed: apt-get install pgbouncer")
    pin_to(1)
    runs: dict[str, list[dict[str, Any]]] = {"direct": [], "pooled": []}
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url)
        mix = read_mix(asyncio.run(targets(url)), asyncio.run(_rare_word(url)))
        upstream = Upstream(ttft=0.05, gap=0.002, tokens=20)
        folder = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-"))
        bouncer = PgBouncer(binary, server_url, folder, POOL_SIZE).start()
        try:
            pooled_env = app_env(bouncer.url(url), upstream) | {"DATABASE_DIRECT_URL": url}
            for round_ in range(rounds):
                for name in ("direct", "pooled"):
                    if name == "direct":
                        target = ["app.asgi:create_app", "--factory"]
                        app = Server(target, app_env(url, upstream), app_cores)
                    else:
                        workers = ["--workers", str(PROCESSES)]
                        target = ["app.asgi:create_app", "--factory", *workers]
                        app = Server(target, pooled_env, app_cores)
                    try:
                        with ConnectionCounter(url) as counter:
                            figures = measure(f"http://127.0.0.1:{app.port}", url, mix, seconds)
                    finally:
                        app.stop()
                        if name == "pooled":
                            # pgbouncer keeps its idle server connections (server_idle_timeout):
                            # closed here, so the direct rounds count their own only.
                            asyncio.run(_drain(bouncer, url))
                    figures["most_server_connections"] = counter.most
                    runs[name].append(figures)
                    print(f"round {round_ + 1} {name}: {figures['requests_per_second']} req/s, "
                          f"p95 {figures['worst_p95_ms']} ms, {figures['errors']} errors "
                          f"(reads {figures['reads']['errors']:.0f}, chat "
                          f"{figures['chat']['statuses']}), {counter.most} server "
                          "connections", flush=True)  # fmt: skip
        finally:
            bouncer.stop()
            shutil.rmtree(folder, ignore_errors=True)
            upstream.stop()
    ratios = [
        p["requests_per_second"] / d["requests_per_second"]
        for d, p in zip(runs["direct"], runs["pooled"], strict=True)
    ]
    pooled = runs["pooled"]
    figures = {
        "rounds": rounds,
        "seconds": seconds,
        "app_cores": app_cores,
        "pool_size": POOL_SIZE,
        "processes": PROCESSES,
        "throughput_ratio_median": round(statistics.median(ratios), 3),
        "throughput_ratios": [round(r, 3) for r in ratios],
        "direct_rps_median": statistics.median(r["requests_per_second"] for r in runs["direct"]),
        "pooled_rps_median": statistics.median(r["requests_per_second"] for r in pooled),
        "direct_p95_median": statistics.median(r["worst_p95_ms"] for r in runs["direct"]),
        "pooled_p95_median": statistics.median(r["worst_p95_ms"] for r in pooled),
        "errors": {name: sum(r["errors"] for r in rs) for name, rs in runs.items()},
        "stored_rows_exact": all(
            r["stored_equals_2x_answered"] for rs in runs.values() for r in rs
        ),
        # pgbouncer's pool, and one LISTEN line per process on the direct URL.
        "pooled_most_server_connections": max(r["most_server_connections"] for r in pooled),
        "pooled_connection_bound": POOL_SIZE + PROCESSES,
        "direct_most_server_connections": max(r["most_server_connections"] for r in runs["direct"]),
        "runs": runs,
    }
    print(f"wrote {write('pooler', figures)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--app-cores", default="0")
    args = parser.parse_args()
    figures = run(args.rounds, args.seconds, args.app_cores)
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
