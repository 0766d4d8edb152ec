"""Upload throughput and the server's memory (issue 24, item 1): 10 MB files sent as
multipart bodies over real HTTP to a real `chatwithme serve` (its own process, against the
database `chatwithme_bench_files`), one at a time and `--concurrent` at a time; MB/s, and the
server's RSS sampled every 20 ms, to show an upload is streamed to PostgreSQL in 1 MiB chunks
rather than held whole (4 uploads at once held whole would add at least 40 MB).

    uv run python -m bench.upload_rate [--files 20] [--concurrent 4]

Figures go to bench/results/upload_rate.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from app.cli import database_url_for
from app.settings import load_settings
from bench.common import write
from bench.generate import bench_database_url

FILE_BYTES = 10 * 1000 * 1000  # "10 MB", under FILE_MAX_BYTES' 10 MiB
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _body(seed: int) -> bytes:
    """A file the server takes as a PNG (its magic bytes), with random content: no two alike,
    so none is deduplicated."""
    return PNG_HEAD + seed.to_bytes(8, "big") + os.urandom(FILE_BYTES - 16)


class Sampler:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0.0
        self.task: asyncio.Task[None] | None = None

    def rss(self) -> float:
        return float(self.process.memory_info().rss) / 1024 / 1024

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.rss())
            await asyncio.sleep(0.02)

    def __enter__(self) -> Sampler:
        self.peak = self.rss()
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()


async def _measure(base: str, pid: int, files: int, concurrent: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        signed = await client.post("/api/auth/dev-login", json={"email": f"bench-{pid}@x.example"})
        signed.raise_for_status()
        auth = {"authorization": f"Bearer {signed.json()['sessionToken']}"}
        client.cookies.clear()

        async def upload(seed: int) -> None:
            sent = await client.post(
                "/api/files", files={"file": (f"{seed}.png", _body(seed), "image/png")},
                headers=auth,
            )  # fmt: skip
            assert sent.status_code == 201, sent.text

        await upload(0)  # warm-up: imports, pool connections
        sampler = Sampler(pid)
        baseline = sampler.rss()
        with sampler:
            started = time.perf_counter()
            for seed in range(1, files + 1):
                await upload(seed)
            serial = time.perf_counter() - started
        serial_peak = sampler.peak
        with sampler:
            started = time.perf_counter()
            for batch in range(files // concurrent):
                await asyncio.gather(
                    *(upload(1000 + batch * concurrent + n) for n in range(concurrent))
                )
            parallel = time.perf_counter() - started
        megabytes = files * FILE_BYTES / 1e6
        return {
            "file_mb": FILE_BYTES / 1e6,
            "files": files,
            "one_at_a_time_mb_per_s": round(megabytes / serial, 1),
            "concurrent": concurrent,
            "concurrent_mb_per_s": round(megabytes / parallel, 1),
            "server_rss_mb_after_warmup": round(baseline, 1),
            "server_rss_mb_peak_one_at_a_time": round(serial_peak, 1),
            "server_rss_mb_peak_concurrent": round(sampler.peak, 1),
            "server_rss_growth_mb": round(sampler.peak - baseline, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=4)
    args = parser.parse_args()
    with (
        database_url_for(load_settings()) as server_url,
        tempfile.TemporaryDirectory(prefix="wt-files-bench-") as folder,
    ):
        url = bench_database_url(server_url, "chatwithme_bench_files")
        port = _port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DATA_DIR": folder,
            "AUTH_DEV_LOGIN": "1",
            "FILE_QUOTA_BYTES": str(100 * 1024**3),
        }
        serve = Path(sys.executable).parent / "chatwithme"
        server = subprocess.Popen(
            [str(serve), "serve", "--port", str(port)], env=env, cwd=folder,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/api/health", timeout=1).status_code < 500:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            figures = asyncio.run(_measure(base, server.pid, args.files, args.concurrent))
        finally:
            server.terminate()
            server.wait(timeout=30)
    figures |= {
        "command": f"uv run python -m bench.upload_rate --files {args.files} "
        f"--concurrent {args.concurrent}",
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(figures)
    print(f"wrote {write('upload_rate', figures)}")


if __name__ == "__main__":
    main()
