"""T8 of BENCHMARKS.md: start-up.

    uv run python -m bench.startup_bench [--runs 5]

- `chatwithme --help` against bare `python -c pass`, interleaved, medians of the differences.
- `chatwithme serve` to its first healthy answer on `GET /api/health`, warm: the data folder is
  made by an untimed first run (initdb, migrations), then each run starts the embedded
  PostgreSQL, imports the app, and serves.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, write
from bench.router_bench import _free_port

BIN = Path(sys.executable).parent


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def _serve_to_healthy(data_dir: str) -> float:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AUTH_URL")}
    env |= {"DATA_DIR": data_dir, "LOG_LEVEL": "warning"}
    started = time.perf_counter()
    process = subprocess.Popen([str(BIN / "chatwithme"), "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = started + 120
        while time.perf_counter() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code < 500:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise RuntimeError("serve did not answer within 120 s")
    finally:
        process.terminate()
        process.wait(timeout=60)


def run(runs: int) -> dict[str, Any]:
    python = [sys.executable, "-c", "pass"]
    helps = [str(BIN / "chatwithme"), "--help"]
    _seconds(python), _seconds(helps)  # warm the file cache
    bare, cli = [], []
    for _ in range(runs):
        bare.append(_seconds(python))
        cli.append(_seconds(helps))
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as data_dir:
        _serve_to_healthy(data_dir)  # initdb and migrations, not timed
        serve = [_serve_to_healthy(data_dir) for _ in range(runs)]
    figures = {
        "help_s": round(median(cli), 3),
        "python_pass_s": round(median(bare), 3),
        "help_over_python_s": round(median([c - b for c, b in zip(cli, bare, strict=True)]), 3),
        "serve_to_healthy_s": round(median(serve), 3),
        "serve_to_healthy_max_s": round(max(serve), 3),
    }
    print(f"wrote {write('startup', figures)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import json

    print(json.dumps(run(args.runs), indent=2))


if __name__ == "__main__":
    main()
