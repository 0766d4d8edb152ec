"""Share links (issue 24, item 2): what a link costs to make and to read, against the owner's
own reads of the same conversation in the same run.

    uv run python -m bench.share_bench [--messages 2500] [--chars 400] [--rounds 30]

A conversation of `--messages` messages of `--chars` characters (2,500 is the longest
conversation `bench.generate` makes) in a database of its own (`chatwithme_bench_shares`).
The app is served by uvicorn in this process on 127.0.0.1:7501. Interleaved rounds of:
the owner's JSON export of the conversation (every message, the baseline for a whole read),
a page of 200 messages, `GET /api/shared/{token}` (the whole snapshot, signed out), and
`POST .../shares` (taking a snapshot). Medians and p95 in milliseconds, and the bytes sent.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import uvicorn

from app.asgi import create_app
from app.cli import database_url_for
from app.db.url import to_libpq
from app.lib.time import utc_now
from app.settings import load_settings
from bench.common import median, percentile, write
from bench.generate import bench_database_url
from prisma_compat import cuid

DATABASE = "chatwithme_bench_shares"
EMAIL = "shares@bench.example"
PORT = 7501


async def seed(url: str, user_id: str, messages: int, chars: int) -> str:
    """A conversation of `messages` alternating questions and answers, by COPY."""
    connection = await asyncpg.connect(to_libpq(url))
    try:
        conversation = cuid()
        now = utc_now()
        await connection.execute(
            'INSERT INTO conversations (id, "userId", title, "updatedAt") VALUES ($1, $2, $3, $4)',
            conversation, user_id, "A long conversation", now,
        )  # fmt: skip
        word = "lorem ipsum dolor sit amet "
        text = (word * (chars // len(word) + 1))[:chars]
        rows = []
        question = None
        for n in range(messages):
            row_id = cuid()
            role = "user" if n % 2 == 0 else "assistant"
            rows.append(
                (row_id, f"{n} {text}", role, None if role == "user" else "bench-model",
                 conversation, user_id, now.replace(microsecond=0) - timedelta(seconds=messages - n),
                 "complete", question if role == "assistant" else None)
            )  # fmt: skip
            question = row_id if role == "user" else question
        await connection.copy_records_to_table(
            "messages",
            records=rows,
            columns=["id", "content", "role", "model", "conversationId", "userId",
                     "createdAt", "status", "replyToId"],
        )  # fmt: skip
        return conversation
    finally:
        await connection.close()


async def measure(url: str, messages: int, chars: int, rounds: int) -> dict[str, Any]:
    settings = load_settings(
        database_url=url,
        auth_dev_login=True,
        app_env="development",
        share_rate_limit=1_000_000,
        auth_url=f"http://127.0.0.1:{PORT}",
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=PORT, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.02)
    times: dict[str, list[float]] = {"export": [], "page200": [], "shared": [], "share": []}
    sizes: dict[str, int] = {}
    try:
        base = f"http://127.0.0.1:{PORT}"
        async with (
            httpx.AsyncClient(base_url=base, timeout=300) as owner,
            httpx.AsyncClient(base_url=base, timeout=300) as reader,
        ):
            signed = await owner.post("/api/auth/dev-login", json={"email": EMAIL})
            owner.cookies.clear()
            owner.headers["authorization"] = f"Bearer {signed.json()['sessionToken']}"
            user_id = signed.json()["user"]["id"]
            conversation = await seed(url, user_id, messages, chars)
            made = await owner.post(f"/api/conversations/{conversation}/shares")
            assert made.status_code == 201, made.text
            token = made.json()["token"]
            requests = {
                "export": lambda: owner.get(f"/api/conversations/{conversation}/export"),
                "page200": lambda: owner.get(
                    f"/api/conversations/{conversation}/messages", params={"limit": 200}
                ),
                "shared": lambda: reader.get(f"/api/shared/{token}"),
                "share": lambda: owner.post(f"/api/conversations/{conversation}/shares"),
            }
            for name, send in requests.items():  # warm
                response = await send()
                assert response.status_code in (200, 201), (name, response.status_code)
                sizes[name] = len(response.content)
            for _ in range(rounds):
                for name, send in requests.items():
                    started = time.perf_counter()
                    response = await send()
                    times[name].append((time.perf_counter() - started) * 1000)
                    assert response.status_code in (200, 201)
    finally:
        server.should_exit = True
        await serving
    return {
        "messages": messages,
        "chars": chars,
        "rounds": rounds,
        **{
            name: {
                "median_ms": round(median(values), 1),
                "p95_ms": round(percentile(values, 95), 1),
                "bytes": sizes[name],
            }
            for name, values in times.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2_500)
    parser.add_argument("--chars", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url, DATABASE)
        found = asyncio.run(measure(url, args.messages, args.chars, args.rounds))
    print(found, flush=True)
    print("wrote", write("shares", found))


if __name__ == "__main__":
    main()
