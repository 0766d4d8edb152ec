"""Import rate and memory (issue 24, item 3): a generated ChatGPT `conversations.json` of
`--megabytes` (about 10 messages a conversation, two branches each) imported for one user
through the same code as `POST /api/imports`; conversations per second, messages per second
and the process's peak RSS before and after.

    uv run python -m bench.import_rate [--megabytes 100]

Figures go to bench/results/import_rate.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.cli import database_url_for
from app.db.engine import Database
from app.db.models import Import
from app.imports.service import run_import
from app.settings import load_settings
from bench.common import write
from bench.generate import bench_database_url
from prisma_compat import cuid

WORDS = [
    "the",
    "import",
    "reads",
    "one",
    "conversation",
    "at",
    "a",
    "time",
    "from",
    "a",
    "stream",
    "of",
    "json",
    "text",
]


def _text(seed: int, length: int) -> str:
    words = [WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(length // 6)]
    return " ".join(words)


def _conversation(index: int) -> dict[str, Any]:
    mapping: dict[str, Any] = {"root": {"id": "root", "message": None, "parent": None,
                                        "children": ["m0"]}}  # fmt: skip
    parent = "root"
    for step in range(10):
        node_id = f"m{step}"
        role = "user" if step % 2 == 0 else "assistant"
        mapping[node_id] = {
            "id": node_id,
            "parent": parent,
            "children": [f"m{step + 1}"] if step < 9 else [],
            "message": {
                "id": node_id,
                "author": {"role": role},
                "create_time": 1_700_000_000 + index * 100 + step,
                "content": {"content_type": "text", "parts": [_text(index + step, 480)]},
                "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {},
            },
        }
        parent = node_id
    return {"conversation_id": f"bench-{index}", "title": f"Conversation {index}",
            "create_time": 1_700_000_000 + index * 100, "mapping": mapping,
            "current_node": "m9"}  # fmt: skip


def _generate(path: Path, megabytes: float) -> int:
    written, count = 0, 0
    with path.open("w") as file:
        file.write("[")
        while written < megabytes * 1024 * 1024:
            chunk = ("," if count else "") + json.dumps(_conversation(count))
            file.write(chunk)
            written += len(chunk)
            count += 1
        file.write("]")
    return count


async def _measure(url: str, path: Path) -> dict[str, Any]:
    settings = load_settings()
    database = Database.from_url(url, settings)
    try:
        async with database.session_maker() as db:
            user_id = cuid()
            await db.execute(
                text('INSERT INTO users (id, email, "updatedAt") VALUES (:i, :e, now())'),
                {"i": user_id, "e": f"{user_id}@bench.example"},
            )
            row = Import(id=cuid(), user_id=user_id, source="chatgpt", status="running")
            db.add(row)
            await db.commit()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        tally = await run_import(database, row.id, user_id, path)
        seconds = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        await database.engine.dispose()
    return {
        "conversations": tally.done,
        "messages": tally.messages,
        "seconds": round(seconds, 1),
        "conversations_per_s": round(tally.done / seconds, 1),
        "messages_per_s": round(tally.messages / seconds, 1),
        "peak_rss_mb_before": round(rss_before),
        "peak_rss_mb_after": round(rss_after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=float, default=100.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "conversations.json"
        count = _generate(path, args.megabytes)
        size = path.stat().st_size / 1024 / 1024
        with database_url_for(load_settings()) as server_url:
            url = bench_database_url(server_url, "chatwithme_bench_import")
            figures = asyncio.run(_measure(url, path))
    figures |= {
        "command": f"uv run python -m bench.import_rate --megabytes {args.megabytes}",
        "file_mb": round(size, 1),
        "generated_conversations": count,
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(figures)
    print(f"wrote {write('import_rate', figures)}")


if __name__ == "__main__":
    main()
