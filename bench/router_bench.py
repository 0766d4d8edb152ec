"""T3 (the router's share) and T7 (token counting) of BENCHMARKS.md.

Time to first token and total stream time through the ModelRouter versus the same `groq` SDK
called directly, against the fake upstream in its own process, at 1 and 10 concurrent streams;
then 1,000 versus 10,000 deltas; then the CPU cost of the token estimate.

    uv run python -m bench.router_bench [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import groq
import httpx

from app.llm.router import ModelRouter
from app.llm.types import ChatMessage, estimate_message_tokens
from app.settings import Settings
from bench.common import median, percentile, pin_to, spawn_pinned, write

PROMPT = [ChatMessage("user", "Benchmark prompt")]
Sample = tuple[float, float]  # (time to first token, total), seconds


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Upstream:
    """The fake vendor in a subprocess on core 1."""

    def __init__(self, ttft: float, gap: float, tokens: int) -> None:
        self.port = _free_port()
        self.process = spawn_pinned(
            1, "-m", "bench.fake_upstream", "--port", str(self.port),
            "--ttft", str(ttft), "--gap", str(gap), "--tokens", str(tokens),
        )  # fmt: skip
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "fake upstream on ..."
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def direct(client: groq.AsyncGroq) -> Sample:
    started = time.perf_counter()
    first = 0.0
    stream = await client.chat.completions.create(
        model="llama-3.3-70b-versatile",
        messages=[{"role": "user", "content": "Benchmark prompt"}],
        stream=True,
    )
    async for chunk in stream:
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first, time.perf_counter() - started


async def routed(router: ModelRouter) -> Sample:
    started = time.perf_counter()
    first = 0.0
    async for _ in router.stream(router.resolve("groq"), PROMPT):
        if not first:
            first = time.perf_counter() - started
    return first, time.perf_counter() - started


async def batch(
    run: Callable[[], Awaitable[Sample]], streams: int, concurrency: int
) -> list[Sample]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Sample:
        async with gate:
            return await run()

    return list(await asyncio.gather(*(one() for _ in range(streams))))


def clients(url: str) -> tuple[groq.AsyncGroq, ModelRouter]:
    timeout = httpx.Timeout(60.0, connect=5.0)
    sdk = groq.AsyncGroq(api_key="bench", base_url=url, max_retries=0, timeout=timeout)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        groq_api_key="bench", groq_base_url=url, gemini_api_key=None,
        openai_compat_base_url=None, llm_fallback="none", auth_secret="b" * 40,
    )  # fmt: skip
    return sdk, ModelRouter.from_settings(settings)


async def ttft_and_total(rounds: int) -> dict[str, Any]:
    upstream = Upstream(ttft=0.05, gap=0.001, tokens=50)
    sdk, router = clients(upstream.url)
    figures: dict[str, Any] = {"upstream": {"ttft_ms": 50, "gap_ms": 1, "tokens": 50}}
    try:
        for concurrency in (1, 10):
            streams = 20 if concurrency == 1 else 50
            await batch(lambda: direct(sdk), 10, concurrency)  # warm-up
            await batch(lambda: routed(router), 10, concurrency)
            added_p50, added_p95, ratios = [], [], []
            for _ in range(rounds):  # A B A B ...
                a = await batch(lambda: direct(sdk), streams, concurrency)
                b = await batch(lambda: routed(router), streams, concurrency)
                ta, tb = [s[0] for s in a], [s[0] for s in b]
                added_p50.append((percentile(tb, 50) - percentile(ta, 50)) * 1000)
                added_p95.append((percentile(tb, 95) - percentile(ta, 95)) * 1000)
                ratios.append(median([s[1] for s in b]) / median([s[1] for s in a]))
            figures[f"concurrency_{concurrency}"] = {
                "added_ttft_p50_ms": round(median(added_p50), 2),
                "added_ttft_p95_ms": round(median(added_p95), 2),
                "total_time_ratio": round(median(ratios), 3),
            }
    finally:
        await sdk.close()
        await router.aclose()
        upstream.stop()
    return figures


async def delta_scaling(rounds: int) -> dict[str, Any]:
    timings: dict[int, dict[str, list[float]]] = {}
    for tokens in (1_000, 10_000):
        upstream = Upstream(ttft=0.0, gap=0.0, tokens=tokens)
        sdk, router = clients(upstream.url)
        try:
            await routed(router)
            await direct(sdk)
            found: dict[str, list[float]] = {"router": [], "direct": []}
            for _ in range(rounds):
                found["direct"].append((await direct(sdk))[1])
                found["router"].append((await routed(router))[1])
            timings[tokens] = found
        finally:
            await sdk.close()
            await router.aclose()
            upstream.stop()
    router_ratio = median(timings[10_000]["router"]) / median(timings[1_000]["router"])
    direct_ratio = median(timings[10_000]["direct"]) / median(timings[1_000]["direct"])
    return {
        "router_1k_ms": round(median(timings[1_000]["router"]) * 1000, 1),
        "router_10k_ms": round(median(timings[10_000]["router"]) * 1000, 1),
        "direct_1k_ms": round(median(timings[1_000]["direct"]) * 1000, 1),
        "direct_10k_ms": round(median(timings[10_000]["direct"]) * 1000, 1),
        "router_10k_over_1k": round(router_ratio, 2),
        "direct_10k_over_1k": round(direct_ratio, 2),
    }


def token_counting() -> dict[str, Any]:
    """T7's share: estimating tokens for a 300-message history, in CPU time."""
    words = "the quick brown fox jumps over a lazy dog while streaming tokens".split()  # noqa: SIM905
    rng = random.Random(7)
    history = [" ".join(rng.choices(words, k=rng.randint(5, 400))) for _ in range(300)]
    repeats = 200
    started = time.process_time()
    for _ in range(repeats):
        sum(estimate_message_tokens(text) for text in history)
    per_window_us = (time.process_time() - started) / repeats * 1e6
    return {"messages": 300, "estimate_cpu_us_per_window": round(per_window_us, 1)}


async def run(rounds: int) -> dict[str, Any]:
    pin_to(0)
    figures = {
        "T3_router": await ttft_and_total(rounds),
        "T3_delta_scaling": await delta_scaling(rounds),
        "T7_token_estimate": token_counting(),
    }
    print(f"wrote {write('router', figures)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    import json

    print(json.dumps(asyncio.run(run(parser.parse_args().rounds)), indent=2))


if __name__ == "__main__":
    main()
