"""T12 of BENCHMARKS.md (issue 22): how many streamed answers one `chatwithme serve` holds.

    uv run python -m bench.capacity [--levels 50,200,500,1000,2000] [--database-url URL]
    uv run python -m bench.capacity --cpu          # CPU per token and fixed CPU per answer

One real `chatwithme serve` process with its default settings (on core 0 where `taskset`
exists), on PostgreSQL (the embedded server, started here, or `--database-url`), against an
asyncio fake Groq upstream in its own process (raw asyncio streams, Groq's chat-completions
SSE chunks with `x_groq.usage` and `data: [DONE]`): 400 ms to the first token, then 60 tokens
at 25 a second, about 2.8 s an answer. It holds thousands of streams: one timer per stream for
the first token, then one ticker writes the next token to every stream. The title the app asks
for beside a new conversation's first answer is answered in 8 tokens, as a model names a
conversation (and `max_tokens` is honoured).

Per level, N streamed chats (`POST /api/chat`, `stream: true`, this API's events), each by a
user of its own, are started evenly within one second from a raw asyncio client, and:

- `answered`: 200 and the stream ended with `event: done`; `refused`: by status (503 ...);
- app-added time before the first token, p50/p95: the client's first `delta` minus the
  upstream's 400 ms; and the time from the request to the upstream call, seen at the fake;
- app CPU per answer: user + system time of the app's process tree (/proc/<pid>/stat) over
  the level, divided by the answers;
- stored rows exact: every answered question stored once, its answer `complete` with exactly
  the text the upstream sent; nothing stored for a refused one;
- the most streams the upstream had open at once, and the load average (`uptime`) before the
  level (the machine is shared).

`--cpu` runs 100 answers of 10 tokens and 100 of 110 (`--long`) tokens (same pace), A B A B:
the difference over the `--long` - 10 tokens is the CPU per token, and what 10 tokens leave is
the fixed CPU per answer. `--profile FILE` runs the app under cProfile (its stats are written when it stops).
Figures go to bench/results/capacity.json (or `--out NAME`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from app.db.url import to_libpq
from bench.common import percentile, write

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "chatwithme_capacity"
TTFT = 0.4
TOKENS = 60
RATE = 25.0
USERS = 2000
# A title is a few words: the fake answers a title request (its system prompt begins so) in
# this many tokens.
TITLE_PROMPT = "You name conversations."
TITLE_TOKENS = 8
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _token(i: int) -> str:
    return f"t{i:03d} "


def expected_text(tokens: int) -> str:
    return "".join(_token(i) for i in range(tokens))


# The fake upstream.


class FakeGroq:
    """Groq's `POST /openai/v1/chat/completions` with `stream: true`, on raw asyncio streams.

    `GET /stats` answers what it saw: per request marker (the last user message) the
    monotonic time the request arrived, and the most streams open at once; `POST /reset`
    clears them."""

    def __init__(self, ttft: float, tokens: int, rate: float) -> None:
        self.ttft, self.tokens, self.gap = ttft, tokens, 1 / rate
        self.arrivals: dict[str, float] = {}
        self.open = 0
        self.max_open = 0
        self.streams: list[list[Any]] = []  # [writer, next token index, model, done future]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if path == "/stats":
                    payload = json.dumps(
                        {"arrivals": self.arrivals, "max_open": self.max_open, "open": self.open}
                    ).encode()
                    writer.write(_plain(payload))
                elif path == "/reset":
                    self.arrivals.clear()
                    self.max_open = self.open
                    writer.write(_plain(b"{}"))
                elif method == "POST" and path.endswith("/chat/completions"):
                    await self._answer(json.loads(body), writer)
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        arrived = time.monotonic()
        marker = str(body["messages"][-1]["content"])
        system = str(body["messages"][0]["content"]) if body["messages"] else ""
        # The title of a new conversation is asked beside its answer (its system prompt says
        # so) and answered in a few tokens, as a model does; it is not the answer measured.
        titling = system.startswith(TITLE_PROMPT)
        if not titling:
            self.arrivals[marker] = arrived
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asked = re.search(r"tokens=(\d+)", marker)  # the runner asks for the length it wants
        length = TITLE_TOKENS if titling else int(asked.group(1)) if asked else self.tokens
        length = min(length, int(body.get("max_tokens") or length))  # as Groq stops there
        stream = [writer, 0, body.get("model", "?"), done, length]
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + self.ttft, self._first, stream)
        try:
            await done
        finally:
            self.open -= 1

    def _chunk(self, stream: list[Any], delta: dict[str, Any], finish: str | None,
               extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        event = {
            "id": "chatcmpl-capacity", "object": "chat.completion.chunk", "created": 1,
            "model": stream[2], "system_fingerprint": "fp_capacity",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **(extra or {}),
        }  # fmt: skip
        _send(stream[0], b"data: " + json.dumps(event).encode() + b"\n\n")

    def _first(self, stream: list[Any]) -> None:
        if stream[0].is_closing():
            stream[3].set_result(None)
            return
        self._chunk(stream, {"role": "assistant", "content": ""}, None,
                    {"x_groq": {"id": "req_capacity"}})  # fmt: skip
        self._next(stream)
        self.streams.append(stream)

    def _next(self, stream: list[Any]) -> bool:
        """Send the next token (or the end); False once the stream is over."""
        writer = stream[0]
        if writer.is_closing():
            stream[3].set_result(None)
            return False
        index = stream[1]
        if index < stream[4]:
            self._chunk(stream, {"content": _token(index)}, None)
            stream[1] = index + 1
            return True
        usage = {"prompt_tokens": 12, "completion_tokens": stream[4],
                 "total_tokens": 12 + stream[4]}  # fmt: skip
        self._chunk(stream, {}, "stop", {"x_groq": {"id": "req_capacity", "usage": usage}})
        _send(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        stream[3].set_result(None)
        return False

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(self.gap)
            self.streams = [s for s in self.streams if self._next(s)]


def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))


def _plain(payload: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(payload),
        payload,
    )


async def serve_fake(port: int, ttft: float, tokens: int, rate: float) -> None:
    fake = FakeGroq(ttft, tokens, rate)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", port, backlog=4096)
    print(f"fake groq on {port}", flush=True)
    ticker = asyncio.create_task(fake.tick())
    async with server:
        await server.serve_forever()
    ticker.cancel()


# The client: a raw asyncio protocol per chat, cheap enough for thousands at once.


class ChatClient(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.status = 0
        self.first = 0.0
        self.ended = b""
        self.tail = b""
        self.head = b""

    def data_received(self, data: bytes) -> None:
        if not self.status:
            self.head += data
            if b"\r\n" not in self.head:
                return
            self.status = int(self.head.split(b" ", 2)[1])
            data = self.head
        if not self.first and b"event: delta" in data:
            self.first = time.monotonic()
        window = self.tail + data
        if b"event: done" in window:
            self.ended = b"done"
        elif b"event: error" in window:
            self.ended = b"error"
        self.tail = data[-32:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def one_chat(port: int, token: str, marker: str, delay: float) -> dict[str, Any]:
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    body = json.dumps({"message": marker, "stream": True}).encode()
    request = (
        b"POST /api/chat HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"accept: text/event-stream\r\nconnection: close\r\n"
        b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s"
        % (token.encode(), len(body), body)
    )
    done: asyncio.Future[None] = loop.create_future()
    started = time.monotonic()
    try:
        transport, protocol = await loop.create_connection(
            lambda: ChatClient(done), "127.0.0.1", port
        )
    except OSError as exc:
        return {"marker": marker, "status": -1, "error": repr(exc), "started": started}
    transport.write(request)
    try:
        await asyncio.wait_for(done, 180)
    except TimeoutError:
        transport.close()
    return {
        "marker": marker,
        "status": protocol.status,
        "started": started,
        "first": protocol.first - started if protocol.first else None,
        "ended": protocol.ended.decode(),
        "total": time.monotonic() - started,
    }


# The app.


def tree_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) of `pid` and its descendants, alive now."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        children.setdefault(ppid, []).append(int(entry))
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


class App:
    def __init__(self, database_url: str, upstream_port: int, port: int, workers: int,
                 profile: str | None, log: Path) -> None:  # fmt: skip
        self.port = port
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
        env |= {
            "DATABASE_URL": database_url, "GROQ_API_KEY": "capacity",
            "GROQ_BASE_URL": f"http://127.0.0.1:{upstream_port}", "GEMINI_API_KEY": "",
            "GOOGLE_API_KEY": "", "REDIS_URL": "", "AUTH_SECRET": "c" * 40,
            "DATA_DIR": tempfile.mkdtemp(prefix="capacity-"),
        }  # fmt: skip
        for name in ("OPENAI_COMPAT_BASE_URL", "LOG_LEVEL", "WEB_CONCURRENCY"):
            env.pop(name, None)
        executable = str(Path(sys.executable).parent / "chatwithme")
        command = [executable, "serve", "--port", str(port)]
        if workers != 1:
            command += ["--workers", str(workers)]
        if profile:
            command = [sys.executable, "-m", "cProfile", "-o", profile, *command]
        if shutil.which("taskset"):
            command = ["taskset", "-c", "0" if workers == 1 else "0,1", *command]
        self.log = log.open("wb")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)  # fmt: skip
        self.pid = self.process.pid

    async def ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"GET /api/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                status = (await reader.readline()).split(b" ")[1]
                writer.close()
                if status == b"200":
                    return
            except (OSError, IndexError):
                pass
            await asyncio.sleep(0.3)
        raise RuntimeError("the app did not start")

    def stop(self) -> None:
        self.process.send_signal(2)  # SIGINT: cProfile writes its stats
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def _fake_request(port: int, path: str) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    method = "GET" if path == "/stats" else "POST"
    writer.write(f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n"
                 "connection: close\r\n\r\n".encode())  # fmt: skip
    data = await reader.read()
    writer.close()
    return dict(json.loads(data.split(b"\r\n\r\n", 1)[1]))


async def _users(database_url: str) -> list[str]:
    connection = await asyncpg.connect(to_libpq(database_url))
    try:
        ids = [f"capacity{i:05d}" for i in range(USERS)]
        await connection.execute(
            "INSERT INTO users (id, email, \"updatedAt\") SELECT id, id || '@bench.example', "
            "now() FROM unnest($1::text[]) AS id ON CONFLICT DO NOTHING",
            ids,
        )
        await connection.execute(
            'INSERT INTO sessions (id, "sessionToken", "userId", expires) SELECT id, '
            "'token-' || id, id, now() + interval '7 days' FROM unnest($1::text[]) AS id "
            "ON CONFLICT (id) DO UPDATE SET expires = EXCLUDED.expires",
            ids,
        )
        return [f"token-{i}" for i in ids]
    finally:
        await connection.close()


async def _stored(database_url: str, prefix: str, tokens: int) -> dict[str, int]:
    """What the level stored, once no answer of it is `streaming` any more."""
    connection = await asyncpg.connect(to_libpq(database_url))
    try:
        for _ in range(600):
            streaming = await connection.fetchval(
                "SELECT count(*) FROM messages q JOIN messages a ON a.\"replyToId\" = q.id "
                "WHERE q.content LIKE $1 AND a.status = 'streaming'", prefix + "%")  # fmt: skip
            if not streaming:
                break
            await asyncio.sleep(0.2)
        row = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE q.role = 'user') AS questions, "
            "(SELECT count(*) FROM messages a JOIN messages q2 ON a.\"replyToId\" = q2.id "
            " WHERE q2.content LIKE $1 AND a.role = 'assistant') AS answers, "
            "(SELECT count(*) FROM messages a JOIN messages q2 ON a.\"replyToId\" = q2.id "
            " WHERE q2.content LIKE $1 AND a.status = 'complete' AND a.content = $2) AS exact, "
            "count(DISTINCT q.content) AS distinct_questions "
            "FROM messages q WHERE q.content LIKE $1",
            prefix + "%", expected_text(tokens),
        )  # fmt: skip
        return dict(row)
    finally:
        await connection.close()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def level(app: App, fake_port: int, database_url: str, tokens: list[str], n: int,
                tag: str, answer_tokens: int) -> dict[str, Any]:  # fmt: skip
    await _fake_request(fake_port, "/reset")
    load = _load()
    cpu_before = tree_cpu(app.pid)
    prefix = f"capacity {tag} tokens={answer_tokens} "
    results = await asyncio.gather(*(
        one_chat(app.port, tokens[i % len(tokens)], f"{prefix}#{i}", i / n) for i in range(n)
    ))  # fmt: skip
    stored = await _stored(database_url, prefix, answer_tokens)
    cpu = tree_cpu(app.pid) - cpu_before
    seen = await _fake_request(fake_port, "/stats")
    answered = [r for r in results if r["status"] == 200 and r["ended"] == "done"]
    statuses: dict[str, int] = {}
    for r in results:
        key = str(r["status"]) + ("" if r["status"] != 200 or r["ended"] == "done" else "-broken")
        statuses[key] = statuses.get(key, 0) + 1
    added = [(r["first"] - TTFT) * 1000 for r in answered if r["first"] is not None]
    arrivals = seen["arrivals"]
    to_upstream = [(arrivals[r["marker"]] - r["started"]) * 1000
                   for r in answered if r["marker"] in arrivals]  # fmt: skip
    total = [r["total"] * 1000 for r in answered]
    figures = {
        "n": n,
        "answered": len(answered),
        "refused_503": statuses.get("503", 0),
        "statuses": statuses,
        "added_ttft_p50_ms": round(percentile(added, 50), 1),
        "added_ttft_p95_ms": round(percentile(added, 95), 1),
        "added_ttft_max_ms": round(max(added, default=float("nan")), 1),
        "to_upstream_p50_ms": round(percentile(to_upstream, 50), 1),
        "to_upstream_p95_ms": round(percentile(to_upstream, 95), 1),
        "total_p50_ms": round(percentile(total, 50), 1),
        "cpu_s": round(cpu, 2),
        "cpu_per_answer_ms": round(cpu / max(len(answered), 1) * 1000, 2),
        "upstream_max_open": seen["max_open"],
        "stored": stored,
        "stored_exact": stored["questions"]
        == len(answered)
        == stored["exact"]
        == stored["answers"],
        "load_before": load,
    }
    print(json.dumps(figures), flush=True)
    return figures


async def measure(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    tokens = await _users(database_url)
    fake_port, app_port = args.port_base, args.port_base + 1
    figures: dict[str, Any] = {"levels": [], "cpu": []}
    fake_command = [sys.executable, "-m", "bench.capacity", "--fake-upstream",
                    "--port-base", str(fake_port)]  # fmt: skip
    if shutil.which("taskset"):
        fake_command = ["taskset", "-c", "1", *fake_command]
    fake = subprocess.Popen(fake_command, cwd=ROOT, stdout=subprocess.PIPE)  # noqa: ASYNC220
    assert fake.stdout is not None
    fake.stdout.readline()
    log = ROOT / "bench" / "results" / f"{args.out}-app.log"
    app = App(database_url, fake_port, app_port, args.workers, args.profile, log)
    spy: subprocess.Popen[bytes] | None = None
    try:
        await app.ready()
        await level(app, fake_port, database_url, tokens, 20, f"warm{time.time_ns()}", TOKENS)
        spy = py_spy_record(app.pid, args.py_spy) if args.py_spy else None
        for round_ in range(args.rounds):
            if args.cpu:  # A B A B: 10 and --long tokens an answer, 100 answers each
                for answer_tokens in (10, args.long):
                    got = await level(app, fake_port, database_url, tokens, 100,
                                      f"cpu{answer_tokens}r{round_}t{time.time_ns()}",
                                      answer_tokens)  # fmt: skip
                    figures["cpu"].append({"tokens": answer_tokens, **got})
                    await asyncio.sleep(2)
                continue
            for n in args.levels:
                got = await level(app, fake_port, database_url, tokens, n,
                                  f"L{n}r{round_}t{time.time_ns()}", TOKENS)  # fmt: skip
                figures["levels"].append(got)
                await asyncio.sleep(2)
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
        app.stop()
        fake.terminate()
        fake.wait()
    warnings = [line for line in log.read_text(errors="replace").splitlines()
                if "ERROR" in line or "WARNING" in line]  # fmt: skip
    figures["log_warnings"] = len(warnings)
    figures["log_sample"] = warnings[:5]
    if args.cpu:
        by = {t: [c["cpu_per_answer_ms"] for c in figures["cpu"] if c["tokens"] == t]
              for t in (10, args.long)}  # fmt: skip
        short, long_ = statistics.median(by[10]), statistics.median(by[args.long])
        per_token_us = (long_ - short) / (args.long - 10) * 1000
        figures["cpu_per_token_us"] = round(per_token_us, 1)
        figures["cpu_fixed_per_answer_ms"] = round(short - 10 * per_token_us / 1000, 2)
        print(f"CPU per token {per_token_us:.1f} us, fixed per answer "
              f"{figures['cpu_fixed_per_answer_ms']} ms (medians of {args.rounds} rounds)",
              flush=True)  # fmt: skip
    return figures


def py_spy_record(pid: int, path: str) -> subprocess.Popen[bytes]:
    """py-spy (`uvx py-spy`, from PyPI) sampling the app, as collapsed stacks (idle frames
    left out); summarise with `python -m bench.capacity --summarise FILE`."""
    command = ["uvx", "py-spy", "record", "-p", str(pid), "-F", "-f", "raw", "-r", "200",
               "-o", path]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(path: str, top: int = 30) -> str:
    """Self and inclusive share of the samples per function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    lines = [f"{total} samples; self %, inclusive %, function (file:line)"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / total:5.1f} {100 * inclusive[frame] / total:5.1f}  {frame}")
    lines.append("-- inclusive --")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * own.get(frame, 0) / total:5.1f} {100 * n / total:5.1f}  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="50,200,500,1000,2000")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database-url")
    parser.add_argument("--port-base", type=int, default=7200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--long", type=int, default=110, help="--cpu: tokens of the long answers")
    parser.add_argument("--profile", help="run the app under cProfile, stats to this file")
    parser.add_argument("--py-spy", help="sample the app with py-spy into this file (.txt)")
    parser.add_argument("--summarise", help="print the top functions of a py-spy file")
    parser.add_argument("--out", default="capacity")
    parser.add_argument("--fake-upstream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, default=TOKENS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.summarise:
        print(summarise(args.summarise))
        return
    if args.fake_upstream:
        asyncio.run(serve_fake(args.port_base, TTFT, args.tokens, RATE))
        return
    args.levels = [int(n) for n in args.levels.split(",")]
    if args.cpu and args.rounds == 1:
        args.rounds = 3
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    from app.cli import database_url_for
    from app.settings import load_settings
    from bench.generate import bench_database_url

    if args.database_url:
        database_url = args.database_url
        figures = asyncio.run(measure(args, database_url))
    else:
        with database_url_for(load_settings()) as server_url:
            database_url = bench_database_url(server_url, DATABASE)
            figures = asyncio.run(measure(args, database_url))
    figures["ref"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip()  # fmt: skip
    figures["upstream"] = {"ttft_ms": TTFT * 1000, "tokens": TOKENS, "tokens_per_s": RATE}
    print(f"figures written to {write(args.out, figures)}")


if __name__ == "__main__":
    main()
