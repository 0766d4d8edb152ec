"""Run every benchmark: `uv run python -m bench` (after `uv run python -m bench.generate`).

Each writes its figures to bench/results/<name>.json. `--quick` runs fewer, shorter rounds (and
a 60 s insert run for T5 instead of 600 s) for a look, not for the README's figures.
"""

from __future__ import annotations

import argparse
import asyncio

from bench import chat_bench, http_bench, mixed_bench, router_bench, sql_bench, startup_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    rounds = 2 if quick else 5
    startup_bench.run(rounds)
    asyncio.run(router_bench.run(rounds))
    sql_bench.run(rounds, 10 if quick else 20, 60 if quick else 600)
    http_bench.run(rounds, 5 if quick else 8)
    mixed_bench.run(10 if quick else 20)
    chat_bench.run(rounds, "HEAD", "36fd28b")


if __name__ == "__main__":
    main()
