"""The process's memory while it serves whole-account exports (issue 20, item 11).

    uv run python -m bench.export_memory [--concurrent 1] [--concurrent 4]

Needs the account of `bench.search_worst --load` (91 MB of messages). The app is served by
uvicorn in this process (EXPORT_CONCURRENCY raised to the number of exports at once); the
client reads each export to its end and keeps none of it. Reports the resident set before
and its peak while the exports run, sampled every 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.asgi import create_app
from app.cli import database_url_for
from app.settings import load_settings
from bench.common import write
from bench.generate import bench_database_url
from bench.search_worst import DATABASE, EMAIL


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(url: str, concurrent: int) -> dict[str, Any]:
    settings = load_settings(
        database_url=url, auth_dev_login=True, app_env="development", export_concurrency=concurrent
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=8765, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url="http://127.0.0.1:8765", timeout=300) as client:
            signed = await client.post("/api/auth/dev-login", json={"email": EMAIL})
            client.cookies.clear()
            client.headers["authorization"] = f"Bearer {signed.json()['sessionToken']}"
            await client.get("/api/users/me")  # warm: imports, pools
            before, peak, sizes = rss_mb(), 0.0, []

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, rss_mb())
                    await asyncio.sleep(0.01)

            async def export() -> None:
                size = 0
                async with client.stream("GET", "/api/users/me/export") as response:
                    assert response.status_code == 200, response.status_code
                    async for chunk in response.aiter_raw():
                        size += len(chunk)
                sizes.append(size)

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            await asyncio.gather(*(export() for _ in range(concurrent)))
            seconds = time.perf_counter() - started
            sampler.cancel()
    finally:
        server.should_exit = True
        await serving
    return {
        "concurrent": concurrent,
        "export_mb": round(sizes[0] / 1e6, 1),
        "rss_before_mb": round(before),
        "rss_peak_mb": round(peak),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrent", type=int, action="append")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url, DATABASE)
        for concurrent in args.concurrent or [1, 4]:
            figures[f"x{concurrent}"] = found = asyncio.run(measure(url, concurrent))
            print(found, flush=True)
    print("wrote", write("export_memory", figures))


if __name__ == "__main__":
    main()
