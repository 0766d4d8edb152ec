"""T9 of BENCHMARKS.md: a mixed load of 64 connections on one app process.

    uv run python -m bench.mixed_bench [--seconds 20]

At once, for `--seconds`: reads on 56 connections with `wrk`, in turn four conversation lists
and four message pages of the heavy user (a 2,500-message and a 50-message conversation) for
each search (T4's rare, common, two-letter and phrase queries, for the typical and the heavy
user in turn); and chat on 8 connections from this process (`POST /api/chat`, a new
conversation each, JSON answers) against the fake upstream (50 ms to the first token, 20 tokens
2 ms apart). Reports p50/p95/p99
and errors per part, and checks that every answered chat stored exactly its two messages (the
question and the answer), once the answers in flight have ended.

The app runs on core 0 (with `--workers N`, its N processes on both cores); wrk, the fake
upstream and this process on core 1.
Needs `wrk` and the data set of `bench.generate`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.cli import database_url_for
from app.db.url import to_libpq
from app.settings import load_settings
from bench.capacity import py_spy_record
from bench.common import percentile, pin_to, write
from bench.generate import HEAVY_USER, SESSION_PREFIX, TYPICAL_USER, bench_database_url
from bench.http_bench import LUA, Server, _pinned, targets
from bench.router_bench import Upstream

CHAT_USER = "user00500@bench.example"  # an ordinary user of the data set; chats add to theirs


def _rotating_lua(requests: list[tuple[str, str]]) -> Path:
    """A wrk script that sends `requests` ((path, session token) pairs) in turn, with
    p95.lua's reporter."""
    script = Path(tempfile.mkstemp(prefix="mixed-", suffix=".lua")[1])
    listed = ",\n".join(f'  {{"{path}", "Bearer {token}"}}' for path, token in requests)
    script.write_text(
        f"local requests = {{\n{listed}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i % #requests + 1\n"
        '  return wrk.format("GET", requests[i][1], {["Authorization"] = requests[i][2]})\n'
        "end\n" + Path(LUA).read_text()
    )
    return script


def _wrk(url: str, script: Path, seconds: int, connections: int) -> subprocess.Popen[str]:
    command = _pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                          url])  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _figures(process: subprocess.Popen[str], script: Path) -> dict[str, float]:
    output, _ = process.communicate(timeout=300)
    script.unlink(missing_ok=True)
    found = re.search(r"FIGURES (.*)", output)
    assert found, output
    return {k: float(v) for k, v in (pair.split("=") for pair in found.group(1).split())}


async def _chats(url: str, token: str, seconds: float, connections: int) -> dict[str, Any]:
    """Chat on `connections` connections until `seconds` have passed; in-flight ones finish."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    headers = {"authorization": f"Bearer {token}"}

    async def loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = await client.post(
                f"{url}/api/chat", json={"message": "Mixed load prompt", "stream": False}
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(timeout=60, headers=headers, limits=limits) as client:
        await asyncio.gather(*(loop(client) for _ in range(connections)))
    return {
        "answered": statuses.get(200, 0),
        "errors": sum(n for status, n in statuses.items() if status != 200),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50": round(percentile(latencies, 50), 2),
        "p95": round(percentile(latencies, 95), 2),
        "p99": round(percentile(latencies, 99), 2),
        "rps": round(len(latencies) / seconds, 1),
    }


# The name of the bench's own connections (T11 counts the app's without them).
BENCH_CONNECTION = {"application_name": "bench"}


async def _messages_of(database_url: str, email: str) -> int:
    """The user's stored messages, once none of them is still being generated."""
    connection = await asyncpg.connect(to_libpq(database_url), server_settings=BENCH_CONNECTION)
    try:
        for _ in range(300):
            streaming = await connection.fetchval(
                'SELECT count(*) FROM messages m JOIN users u ON u.id = m."userId" '
                "WHERE u.email = $1 AND m.status = 'streaming'", email)  # fmt: skip
            if not streaming:
                break
            await asyncio.sleep(0.1)
        return int(await connection.fetchval(
            'SELECT count(*) FROM messages m JOIN users u ON u.id = m."userId" WHERE u.email = $1',
            email))  # fmt: skip
    finally:
        await connection.close()


async def _rare_word(database_url: str) -> str:
    """A word that occurs in a few of the typical user's messages (as T4's rare query)."""
    connection = await asyncpg.connect(to_libpq(database_url))
    try:
        found = await connection.fetchval(
            "SELECT substring(content from 'zq[0-9]{4}x') FROM messages m JOIN users u "
            "ON u.id = m.\"userId\" WHERE u.email = $1 AND content ~ 'zq[0-9]{4}x' LIMIT 1",
            TYPICAL_USER)  # fmt: skip
        return str(found or "zq0001x")
    finally:
        await connection.close()


def read_mix(conversations: dict[str, str], rare_word: str) -> list[tuple[str, str]]:
    """The reads wrk sends in turn: per search, four lists and four pages of the heavy user
    (about one request in nine is a search)."""
    heavy, typical = SESSION_PREFIX + HEAVY_USER, SESSION_PREFIX + TYPICAL_USER
    listing = ("/api/conversations?limit=20", heavy)
    pages = [(f"/api/conversations/{conversations[k]}/messages?limit=50", heavy)
             for k in ("long", "short")]  # fmt: skip
    # T4's query classes (rare, common, two-letter, phrase), for both users in turn.
    searches = [(f"/api/conversations/search?q={q}", token)
                for q in (rare_word, "python", "go", "%22postgres%20index%22")
                for token in (typical, heavy)]  # fmt: skip
    mix: list[tuple[str, str]] = []
    for search in searches:
        mix += [listing, pages[0], listing, pages[1], listing, pages[0], listing, pages[1]]
        mix.append(search)
    return mix


def measure(base: str, url: str, mix: list[tuple[str, str]], seconds: int) -> dict[str, Any]:
    """The T9 load on the app at `base` (its database at `url`): reads on 56 connections,
    chat on 8; the figures per part, the totals, and the stored rows against the answers."""
    before = asyncio.run(_messages_of(url, CHAT_USER))
    script = _rotating_lua(mix)
    reads = _wrk(base, script, seconds, 56)
    chat = asyncio.run(_chats(base, SESSION_PREFIX + CHAT_USER, seconds, 8))
    figures: dict[str, Any] = {"reads": _figures(reads, script), "chat": chat}
    stored = asyncio.run(_messages_of(url, CHAT_USER)) - before
    parts = [f for f in figures.values() if isinstance(f, dict)]
    figures["stored_messages"] = stored
    figures["stored_equals_2x_answered"] = stored == 2 * chat["answered"]
    figures["errors"] = int(sum(f["errors"] for f in parts))
    figures["worst_p95_ms"] = max(f["p95"] for f in parts)
    figures["requests_per_second"] = round(sum(f["rps"] for f in parts), 1)
    return figures


def app_env(database_url: str, upstream: Upstream) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "LOG_LEVEL": "warning", "GROQ_API_KEY": "bench",
            "GROQ_BASE_URL": upstream.url, "GEMINI_API_KEY": "", "GOOGLE_API_KEY": "",
            "LLM_FALLBACK": "none", "CHAT_RATE_LIMIT": "1000000", "REDIS_URL": "",
            # Search's own limit (30 a minute per user, per process) answered most of the
            # mix's searches 429 once it came in; the load is one user's.
            "SEARCH_RATE_LIMIT": "1000000"}  # fmt: skip


def run(seconds: int, workers: int = 1, py_spy: str | None = None) -> dict[str, Any]:
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    pin_to(1)
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url)
        mix = read_mix(asyncio.run(targets(url)), asyncio.run(_rare_word(url)))
        upstream = Upstream(ttft=0.05, gap=0.002, tokens=20)
        # More than one worker: uvicorn's processes on both cores (as `serve --workers N`).
        target = ["app.asgi:create_app", "--factory"]
        if workers > 1:
            target += ["--workers", str(workers)]
        app = Server(target, app_env(url, upstream), cores="0" if workers == 1 else "0,1")
        spy = py_spy_record(app.process.pid, py_spy) if py_spy else None
        try:
            figures = measure(f"http://127.0.0.1:{app.port}", url, mix, seconds)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            app.stop()
            upstream.stop()
    figures["workers"] = workers
    print(f"wrote {write('mixed' if workers == 1 else f'mixed-{workers}-workers', figures)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="app worker processes")
    parser.add_argument("--py-spy", help="sample the app (one worker) with py-spy into this file")
    args = parser.parse_args()
    import json

    print(json.dumps(run(args.seconds, args.workers, args.py_spy), indent=2))


if __name__ == "__main__":
    main()
