"""The chat endpoint's stream: the durable path's cost, T3 at the endpoint, rows per answer.

    uv run python -m bench.chat_bench [--rounds 5] [--ref HEAD] [--baseline-ref 36fd28b]

- Durable vs. before: time to first token and total time of `POST /api/chat` (this API's
  events) of `--ref` versus the code before durable answers (`--baseline-ref`); each is checked
  out into a git worktree of its own and run with its own environment, on the same database
  (migrated by this checkout), the same fake
  upstream (a subprocess; 50 ms to the first token, 50 tokens 1 ms apart), interleaved A B A B,
  1 and 50 concurrent streams. The AI SDK's UI message stream is measured too.
- T3 at the endpoint: the same streams against the router alone (in process, no HTTP).
- Rows written per answer, from pg_stat_user_tables, for a fast answer and for a 3-second one
  (whose partial text is saved about every second).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from app.cli import database_url_for
from app.db.url import to_libpq
from app.settings import load_settings
from bench.common import median, percentile, write
from bench.generate import bench_database_url
from bench.router_bench import Upstream, _free_port, clients, routed

DATABASE = "chatwithme_chatbench"
TOKEN = "chat-bench-token"
ROOT = Path(__file__).resolve().parent.parent
Sample = tuple[float, float]  # (time to first token, total), seconds


class App:
    """`chatwithme serve` from a checkout, on core 0, against the bench database."""

    def __init__(self, checkout: Path, database_url: str, upstream: str) -> None:
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
        env |= {
            "DATABASE_URL": database_url, "GROQ_API_KEY": "bench", "GROQ_BASE_URL": upstream,
            "GEMINI_API_KEY": "", "GOOGLE_API_KEY": "", "LLM_FALLBACK": "none",
            "CHAT_RATE_LIMIT": "1000000", "LOG_LEVEL": "warning", "REDIS_URL": "",
            "AUTH_SECRET": "b" * 40, "DATA_DIR": tempfile.mkdtemp(prefix="chatbench-"),
        }  # fmt: skip
        # Each checkout migrates its own database to its own head.
        subprocess.run(["uv", "run", "--project", str(checkout), "chatwithme", "db", "upgrade"],
                       cwd=checkout, env=env, check=True, capture_output=True)  # fmt: skip
        command = ["uv", "run", "--project", str(checkout), "chatwithme", "serve", "--port",
                   str(self.port)]  # fmt: skip
        if shutil.which("taskset"):
            command = ["taskset", "-c", "0", *command]
        self.process = subprocess.Popen(command, cwd=checkout, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the app in {checkout} did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Refused(Exception):
    """The app answered with an error status (a full pool: 503)."""


async def events_stream(client: httpx.AsyncClient, url: str) -> Sample:
    started = time.perf_counter()
    first = 0.0
    body = {"message": "Benchmark prompt", "stream": True}
    async with client.stream("POST", f"{url}/api/chat", json=body) as response:
        if response.status_code != 200:
            raise Refused(response.status_code)
        async for line in response.aiter_lines():
            if not first and line.startswith("event: delta"):
                first = time.perf_counter() - started
    return first, time.perf_counter() - started


async def ui_stream(client: httpx.AsyncClient, url: str) -> Sample:
    started = time.perf_counter()
    first = 0.0
    chat_id = f"bench{time.perf_counter_ns()}"
    body = {"id": chat_id, "message": {"id": chat_id, "role": "user",
            "parts": [{"type": "text", "text": "Benchmark prompt"}]}}  # fmt: skip
    async with client.stream("POST", f"{url}/api/chat", json=body) as response:
        if response.status_code != 200:
            raise Refused(response.status_code)
        async for line in response.aiter_lines():
            chunk = line.startswith("data: ") and line != "data: [DONE]"
            if not first and chunk and msgspec.json.decode(line[6:])["type"] == "text-delta":
                first = time.perf_counter() - started
    return first, time.perf_counter() - started


async def batch(
    run: Callable[[], Awaitable[Sample]], streams: int, concurrency: int
) -> list[Sample]:
    """The samples of the streams answered to their end; the others are counted in FAILED."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Sample | None:
        async with gate:
            try:
                return await run()
            except (Refused, httpx.HTTPError):  # refused, or the stream broke off
                return None

    done = await asyncio.gather(*(one() for _ in range(streams)))
    FAILED[run] = FAILED.get(run, 0) + sum(d is None for d in done)
    return [d for d in done if d is not None]


FAILED: dict[Any, int] = {}


def _summary(series: dict[str, list[list[Sample]]], base: str) -> dict[str, Any]:
    """Per series: median over rounds of p50/p95 TTFT and total, and the added TTFT vs. base."""
    out: dict[str, Any] = {}
    for name, rounds in series.items():
        ttft50 = [percentile([s[0] for s in r], 50) * 1000 for r in rounds]
        ttft95 = [percentile([s[0] for s in r], 95) * 1000 for r in rounds]
        total50 = [percentile([s[1] for s in r], 50) * 1000 for r in rounds]
        out[name] = {
            "ttft_p50_ms": round(median(ttft50), 2),
            "ttft_p95_ms": round(median(ttft95), 2),
            "total_p50_ms": round(median(total50), 2),
        }
    for name in series:
        if name != base:
            added = [
                (percentile([s[0] for s in a], 50) - percentile([s[0] for s in b], 50)) * 1000
                for a, b in zip(series[name], series[base], strict=True)
            ]
            out[name][f"added_ttft_p50_ms_vs_{base}"] = round(median(added), 2)
    return out


async def _signed_in(database_url: str) -> None:
    connection = await asyncpg.connect(to_libpq(database_url))
    try:
        await connection.execute(
            "INSERT INTO users (id, email, \"updatedAt\") VALUES ('chatbench', "
            "'chatbench@example.com', now()) ON CONFLICT DO NOTHING"
        )
        await connection.execute(
            'INSERT INTO sessions (id, "sessionToken", "userId", expires) VALUES '
            "('chatbench', $1, 'chatbench', now() + interval '1 day') ON CONFLICT DO NOTHING",
            TOKEN,
        )
    finally:
        await connection.close()


async def _rows_written(database_url: str) -> int:
    connection = await asyncpg.connect(to_libpq(database_url))
    try:
        # Idle backends publish their statistics after 10 s (PostgreSQL 15+: PGSTAT_IDLE_INTERVAL).
        await asyncio.sleep(11)
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        return int(
            await connection.fetchval(
                "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables "
                "WHERE relname IN ('messages', 'conversations')"
            )
        )
    finally:
        await connection.close()


async def rows_per_answer(database_url: str, url: str, answers: int) -> float:
    before = await _rows_written(database_url)
    async with httpx.AsyncClient(timeout=120, headers={"authorization": f"Bearer {TOKEN}"}) as c:
        await batch(lambda: events_stream(c, url), answers, 5)
    return round((await _rows_written(database_url) - before) / answers, 2)


def _checkout(ref: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="chatbench-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["uv", "sync", "--project", str(folder), "--quiet"], check=True)
    return folder


async def measure(
    database_url: str, baseline_url: str, current: Path, baseline: Path, rounds: int
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    upstream = Upstream(ttft=0.05, gap=0.001, tokens=50)
    durable = App(current, database_url, upstream.url)
    before = App(baseline, baseline_url, upstream.url)
    await _signed_in(database_url)
    await _signed_in(baseline_url)
    _, router = clients(upstream.url)
    headers = {"authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(timeout=120, headers=headers) as client:
            runs: dict[str, Callable[[], Awaitable[Sample]]] = {
                "router_alone": lambda: routed(router),
                "before_events": lambda: events_stream(client, before.url),
                "durable_events": lambda: events_stream(client, durable.url),
                "durable_ui_stream": lambda: ui_stream(client, durable.url),
            }
            for concurrency in (1, 50):
                streams = 20 if concurrency == 1 else 100
                for run in runs.values():  # warm-up
                    await batch(run, 10, min(concurrency, 10))
                series: dict[str, list[list[Sample]]] = {name: [] for name in runs}
                for _ in range(rounds):  # A B C D A B C D ...
                    for name, run in runs.items():
                        series[name].append(await batch(run, streams, concurrency))
                figures[f"concurrency_{concurrency}"] = _summary(series, "before_events")
                figures[f"concurrency_{concurrency}"]["failed_streams"] = {
                    name: FAILED.pop(run, 0) for name, run in runs.items()
                }
                figures[f"concurrency_{concurrency}"]["vs_router_alone"] = _summary(
                    {k: series[k] for k in ("router_alone", "durable_events")}, "router_alone"
                )["durable_events"]
        figures["upstream"] = {"ttft_ms": 50, "gap_ms": 1, "tokens": 50}
        figures["rows_per_answer"] = {
            "before_fast": await rows_per_answer(baseline_url, before.url, 20),
            "durable_fast": await rows_per_answer(database_url, durable.url, 20),
        }
    finally:
        durable.stop()
        before.stop()
        await router.aclose()
        upstream.stop()
    slow = Upstream(ttft=0.05, gap=0.03, tokens=100)  # about 3 s
    durable = App(current, database_url, slow.url)
    before = App(baseline, baseline_url, slow.url)
    try:
        figures["rows_per_answer"] |= {
            "before_3s": await rows_per_answer(baseline_url, before.url, 10),
            "durable_3s": await rows_per_answer(database_url, durable.url, 10),
        }
    finally:
        durable.stop()
        before.stop()
        slow.stop()
    return figures


def run(rounds: int, ref: str, baseline_ref: str) -> dict[str, Any]:
    current, baseline = _checkout(ref), _checkout(baseline_ref)
    try:
        with database_url_for(load_settings()) as server_url:
            # One database each: every checkout migrates its own to its own head.
            database_url = bench_database_url(server_url, DATABASE, migrated=False)
            baseline_url = bench_database_url(server_url, f"{DATABASE}_before", migrated=False)
            figures = asyncio.run(measure(database_url, baseline_url, current, baseline, rounds))
    finally:
        for folder in (current, baseline):
            subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT,
                           check=False, capture_output=True)  # fmt: skip
    figures["ref"] = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip()  # fmt: skip
    figures["baseline_ref"] = baseline_ref
    path = write("chat", figures)
    print(f"chat stream figures written to {path}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ref", default="HEAD", help="the code measured")
    parser.add_argument("--baseline-ref", default="36fd28b", help="the code before durable answers")
    args = parser.parse_args()
    run(args.rounds, args.ref, args.baseline_ref)


if __name__ == "__main__":
    main()
