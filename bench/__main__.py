"""Run every benchmark: `uv run python -m bench` (after `uv run python -m bench.generate`)."""

from __future__ import annotations

import asyncio

from bench import http_bench, router_bench, sql_bench


def main() -> None:
    asyncio.run(router_bench.run(5))
    sql_bench.run(5, 20, 600)
    http_bench.run(5, 8)


if __name__ == "__main__":
    main()
