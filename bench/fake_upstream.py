"""Serve the test suite's fake vendor (Groq/OpenAI SSE, Gemini SSE) as its own process.

    python -m bench.fake_upstream --port 9100 --ttft 0.05 --gap 0 --tokens 1000

The time to first token, the gap between tokens and their number are fixed per run.
"""

from __future__ import annotations

import argparse
import signal
import threading

from tests.fakes.llm import FakeLLM, Scenario


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft", type=float, default=0.05)
    parser.add_argument("--gap", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    fake = FakeLLM(
        default=Scenario(chunks=["tok "] * args.tokens, first_byte_delay=args.ttft, gap=args.gap)
    )
    fake.start(port=args.port)
    print(f"fake upstream on {fake.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    fake.stop()


if __name__ == "__main__":
    main()
