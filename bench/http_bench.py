"""T1 (conversation list) and T2 (message pages) of BENCHMARKS.md, loaded with `wrk`.

    uv run python -m bench.http_bench [--rounds 5] [--seconds 8]

The app (one uvicorn worker, pinned to core 0) against the bare ASGI baseline (bench/bare_app.py,
same SQL, same server, same core), interleaved A B A B; wrk on core 1 with 32 connections.
Needs `wrk` (Debian: apt-get install wrk) and the data set of `bench.generate`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.cli import database_url_for
from app.db.url import to_libpq
from app.settings import load_settings
from bench.common import median, write
from bench.generate import HEAVY_USER, SESSION_PREFIX, TYPICAL_USER, bench_database_url

LUA = str(Path(__file__).with_name("p95.lua"))


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pinned(core: int | str, command: list[str]) -> list[str]:
    """`command` on `core` (or a list such as "0,1") when taskset is there."""
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


class Server:
    def __init__(self, target: list[str], env: dict[str, str], cores: str = "0") -> None:
        self.port = _port()
        command = [sys.executable, "-m", "uvicorn", *target, "--port", str(self.port),
                   "--log-level", "warning", "--no-access-log"]  # fmt: skip
        # A session of its own: `--workers` children are stopped with their parent.
        self.process = subprocess.Popen(
            _pinned(cores, command), env={**os.environ, **env}, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"{target} did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def wrk(url: str, token: str, seconds: float, connections: int = 32) -> dict[str, float]:
    command = _pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", LUA,
                          "-H", f"Authorization: Bearer {token}", url])  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"FIGURES (.*)", output)
    assert found, output
    return {k: float(v) for k, v in (pair.split("=") for pair in found.group(1).split())}


async def targets(url: str) -> dict[str, str]:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        heavy = await connection.fetchval("SELECT id FROM users WHERE email = $1", HEAVY_USER)
        rows = await connection.fetch(
            'SELECT c.id, count(m.id) AS n FROM conversations c JOIN messages m ON m."conversationId" = c.id '
            'WHERE c."userId" = $1 GROUP BY c.id HAVING count(m.id) IN (50, 2500)', heavy)  # fmt: skip
        by_size = {r["n"]: r["id"] for r in rows}
        return {"long": by_size[2500], "short": by_size[50]}
    finally:
        await connection.close()


def run(rounds: int, seconds: float) -> dict[str, Any]:
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url)
        conversations = asyncio.run(targets(url))
        env = {"DATABASE_URL": url, "LOG_LEVEL": "warning", "BENCH_DATABASE_URL": to_libpq(url)}
        app = Server(["app.asgi:create_app", "--factory"], env)
        bare = Server(["bench.bare_app:app"], env)
        heavy, typical = SESSION_PREFIX + HEAVY_USER, SESSION_PREFIX + TYPICAL_USER
        paths = {
            "T1_list": "/api/conversations?limit=20",
            "T2_long": f"/api/conversations/{conversations['long']}/messages?limit=50",
            "T2_short": f"/api/conversations/{conversations['short']}/messages?limit=50",
        }
        figures: dict[str, Any] = {}
        try:
            for server in (app, bare):  # warm-up
                for path in paths.values():
                    wrk(f"http://127.0.0.1:{server.port}{path}", heavy, 2)
            samples: dict[str, list[dict[str, float]]] = {}
            for _ in range(rounds):
                for name, path in paths.items():
                    for label, server in (("bare", bare), ("app", app)):
                        samples.setdefault(f"{name}/{label}", []).append(
                            wrk(f"http://127.0.0.1:{server.port}{path}", heavy, seconds)
                        )
                samples.setdefault("T1_list_typical/app", []).append(
                    wrk(f"http://127.0.0.1:{app.port}{paths['T1_list']}", typical, seconds))  # fmt: skip
        finally:
            app.stop()
            bare.stop()

    def med(key: str, field: str) -> float:
        return round(median([s[field] for s in samples[key]]), 2)

    def ratio(a: str, b: str, field: str) -> float:
        return round(
            median([x[field] / y[field] for x, y in zip(samples[a], samples[b], strict=True)]), 3
        )

    for key in samples:
        figures[key] = {f: med(key, f) for f in ("rps", "p50", "p95", "p99", "errors")}
    figures["T1_throughput_vs_bare"] = ratio("T1_list/app", "T1_list/bare", "rps")
    figures["T1_p95_heavy_over_typical"] = ratio("T1_list/app", "T1_list_typical/app", "p95")
    figures["T2_throughput_vs_bare"] = ratio("T2_long/app", "T2_long/bare", "rps")
    figures["T2_p95_long_over_short"] = ratio("T2_long/app", "T2_short/app", "p95")
    print(f"wrote {write('http', figures)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    import json

    print(json.dumps(run(args.rounds, args.seconds), indent=2))


if __name__ == "__main__":
    main()
