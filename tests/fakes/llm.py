"""Fake model vendors: one real HTTP server on 127.0.0.1 that speaks three wire formats.

- Groq: `POST /openai/v1/chat/completions` (JSON, or SSE chunks ending `data: [DONE]`, usage in
  the last chunk's `x_groq.usage`);
- OpenAI-compatible: `POST /v1/chat/completions` (usage in a final chunk when asked);
- Gemini: `POST /v1beta/models/{model}:generateContent` and
  `:streamGenerateContent?alt=sse` (`usageMetadata` on the last chunk).

A scenario's `reasoning` is sent before the answer, as each vendor sends it: Groq's gpt-oss
as `delta.reasoning` (only when the request has `include_reasoning`), OpenAI-compatible
servers (vLLM, llama.cpp) as `delta.reasoning_content`, Gemini 2.5 as parts with
`"thought": true` (only when `generationConfig.thinkingConfig.includeThoughts` is set).

Each request takes the next queued Scenario (or the default one), which can inject failures:
an error status, stalls before the first byte or mid-stream, a malformed chunk, a dropped
connection. Every request is recorded, and whether the client went away before the end.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 refuses connections at 50 concurrent streams.
    request_queue_size = 128


@dataclass
class Scenario:
    chunks: list[str] = field(default_factory=lambda: ["Hello", ", ", "world", "!"])
    status: int | None = None  # answer with this error status instead
    retry_after: str | None = None
    first_byte_delay: float = 0.0  # before the response starts (a stall when long)
    gap: float = 0.0  # between chunks
    stall_after: int | None = None  # after this many chunks, stall for `stall_seconds`
    stall_seconds: float = 5.0
    malformed_after: int | None = None  # after this many chunks, send a broken chunk
    disconnect_after: int | None = None  # after this many chunks, drop the connection
    usage: tuple[int, int] | None = (11, 7)
    finish: str | None = None  # default: "stop" / "STOP"
    reasoning: list[str] = field(default_factory=list)  # thoughts sent before the chunks


_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|webp|gif));base64,([A-Za-z0-9+/=]+)$")


def proto_bytes(data: str) -> bytes:
    """A `bytes` field of proto JSON: standard or URL-safe base64, padded or not (Google's
    parsers take all four; google-genai sends URL-safe)."""
    data = data.replace("-", "+").replace("_", "/")
    return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)


def _base64_ok(data: object, *, proto: bool = False) -> bool:
    try:
        if not isinstance(data, str):
            return False
        return bool(proto_bytes(data) if proto else base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return False


def inline_data(part: dict[str, Any]) -> tuple[str, bytes] | None:
    """A Gemini part's inline file as (media type, bytes), whichever spelling was sent."""
    inline = part.get("inlineData")
    if inline is None:
        return None
    return inline.get("mimeType", inline.get("mime_type")), proto_bytes(inline["data"])


def wire_error(path: str, body: dict[str, Any]) -> str | None:
    """What the real vendor would refuse in a request's messages (files especially), or None.

    OpenAI-compatible (Groq): `content` is a string or a list of `{"type": "text", "text"}` and
    `{"type": "image_url", "image_url": {"url": "data:image/...;base64,..."}}` parts. Gemini:
    each part holds one of `text` or `inlineData: {mimeType, data (base64)}`."""
    if path.startswith("/v1beta/models/"):
        for content in body.get("contents", []):
            for part in content.get("parts", []):
                if len(part.keys() & {"text", "inlineData", "fileData"}) != 1:
                    return "each part must hold exactly one kind of data"
                inline = part.get("inlineData")
                # Proto JSON: `mimeType`, or the field's own name `mime_type`, which
                # google-genai sends (both are read by the API).
                mime_type = inline.get("mimeType", inline.get("mime_type")) if inline else None
                if inline is not None and not (
                    isinstance(mime_type, str) and _base64_ok(inline.get("data"), proto=True)
                ):
                    return "inlineData needs mimeType and base64 data"
        return None
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or message.get("role") != "user":
            return "content must be a string (or a list of parts in a user message)"
        for part in content:
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                continue
            url = (part.get("image_url") or {}).get("url", "")
            found = _DATA_URL.match(url) if part.get("type") == "image_url" else None
            if found is None or not _base64_ok(found.group(2)):
                return f"unsupported content part: {str(part)[:80]}"
    return None


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeLLM:
    default: Scenario = field(default_factory=Scenario)
    queue: deque[Scenario] = field(default_factory=deque)
    # Scenarios for requests naming this model (the vendor's name for it), ahead of the queue:
    # for calls that race each other, such as an answer and its conversation's title.
    by_model: dict[str, Scenario] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    disconnects: int = 0
    completed: int = 0
    server: ThreadingHTTPServer | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def next(self, *scenarios: Scenario) -> None:
        self.queue.extend(scenarios)

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def start(self, port: int = 0) -> FakeLLM:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.received.append(
                    Received(
                        parts.path,
                        {k: v[0] for k, v in parse_qs(parts.query).items()},
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                model = (
                    body.get("model") or parts.path.removeprefix("/v1beta/models/").split(":")[0]
                )
                if model in fake.by_model:
                    scenario = fake.by_model[model]
                else:
                    scenario = fake.queue.popleft() if fake.queue else fake.default
                fake.sleep(scenario.first_byte_delay)
                refused = wire_error(parts.path, body)
                if refused is not None:  # as the vendor would: a 400 naming the bad field
                    self._json(400, {"error": {"message": refused, "code": 400}})
                    return
                if scenario.status is not None:
                    self._error(scenario)
                    return
                try:
                    if parts.path.startswith("/v1beta/models/"):
                        self._gemini(parts.path, body, scenario)
                    elif parts.path in ("/openai/v1/chat/completions", "/v1/chat/completions"):
                        self._openai(parts.path, body, scenario)
                    else:
                        self._json(404, {"error": {"message": "no such path"}})
                except (BrokenPipeError, ConnectionResetError):
                    fake.disconnects += 1

            def _json(
                self, status: int, payload: object, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, scenario: Scenario) -> None:
                headers = {"retry-after": scenario.retry_after} if scenario.retry_after else {}
                status = scenario.status or 500
                self._json(
                    status,
                    {"error": {"message": f"vendor secret detail {status}", "code": status,
                               "status": "ERROR", "type": "error"}},
                    headers,
                )  # fmt: skip

            def _start_stream(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()

            def _send(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _event(self, payload: object) -> None:
                self._send(f"data: {json.dumps(payload)}\n\n".encode())

            def _stream(
                self, scenario: Scenario, chunk_event: Any, final: Any, thought_event: Any = None
            ) -> None:
                """Send thoughts (when asked for), chunks with the scenario's pacing and faults,
                then the final events."""
                self._start_stream()
                for thought in scenario.reasoning if thought_event else []:
                    thought_event(thought)
                for index, text in enumerate(scenario.chunks):
                    if index and scenario.gap:
                        fake.sleep(scenario.gap)
                    if index == scenario.stall_after:
                        fake.sleep(scenario.stall_seconds)
                    if index == scenario.malformed_after:
                        self._send(b'data: {"choices": [{"delta": {"content": \n\n')
                        self._send(b"")
                        return
                    if index == scenario.disconnect_after:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    chunk_event(text)
                if scenario.malformed_after == len(scenario.chunks):
                    self._send(b"data: not json at all\n\n")
                    self._send(b"")
                    return
                final()
                self._send(b"")
                fake.completed += 1

            def _openai(self, path: str, body: dict[str, Any], scenario: Scenario) -> None:
                model = body.get("model", "?")
                groq = path.startswith("/openai/")
                usage = (
                    {"prompt_tokens": scenario.usage[0], "completion_tokens": scenario.usage[1],
                     "total_tokens": sum(scenario.usage)}
                    if scenario.usage else None
                )  # fmt: skip
                base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                        "created": int(time.time()), "model": model}  # fmt: skip
                if not body.get("stream"):
                    self._json(200, {
                        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                        "model": model,
                        "choices": [{"index": 0, "finish_reason": scenario.finish or "stop",
                                     "message": {"role": "assistant", "content": "".join(scenario.chunks)}}],
                        "usage": usage,
                    })  # fmt: skip
                    return

                def chunk(text: str) -> None:
                    self._event({**base, "choices": [
                        {"index": 0, "delta": {"content": text}, "finish_reason": None}]})  # fmt: skip

                def thought(text: str) -> None:
                    key = "reasoning" if groq else "reasoning_content"
                    self._event({**base, "choices": [
                        {"index": 0, "delta": {key: text}, "finish_reason": None}]})  # fmt: skip

                def final() -> None:
                    last: dict[str, Any] = {**base, "choices": [
                        {"index": 0, "delta": {}, "finish_reason": scenario.finish or "stop"}]}  # fmt: skip
                    if groq and usage:
                        last["x_groq"] = {"id": "req_fake", "usage": usage}
                    self._event(last)
                    if (
                        not groq
                        and usage
                        and (body.get("stream_options") or {}).get("include_usage")
                    ):
                        self._event({**base, "choices": [], "usage": usage})
                    self._send(b"data: [DONE]\n\n")

                # Groq sends gpt-oss's reasoning only with `include_reasoning` (its default
                # is true there; the fake asks for it to be explicit).
                asked = body.get("include_reasoning") if groq else True
                self._stream(scenario, chunk, final, thought if asked else None)

            def _gemini(self, path: str, body: dict[str, Any], scenario: Scenario) -> None:
                model, _, method = path.removeprefix("/v1beta/models/").partition(":")
                usage = (
                    {"promptTokenCount": scenario.usage[0], "candidatesTokenCount": scenario.usage[1],
                     "totalTokenCount": sum(scenario.usage)}
                    if scenario.usage else None
                )  # fmt: skip

                def candidate(text: str | None, finish: str | None) -> dict[str, Any]:
                    found: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text or ""}]},
                                             "index": 0}  # fmt: skip
                    if finish:
                        found["finishReason"] = finish
                    return found

                if method == "generateContent":
                    payload: dict[str, Any] = {
                        "candidates": [
                            candidate("".join(scenario.chunks), scenario.finish or "STOP")
                        ],
                        "modelVersion": model,
                    }
                    if usage:
                        payload["usageMetadata"] = usage
                    self._json(200, payload)
                    return

                def chunk(text: str) -> None:
                    self._event({"candidates": [candidate(text, None)], "modelVersion": model})

                def thought(text: str) -> None:
                    content = {"role": "model", "parts": [{"text": text, "thought": True}]}
                    self._event({"candidates": [{"content": content, "index": 0}],
                                 "modelVersion": model})  # fmt: skip

                def final() -> None:
                    payload = {
                        "candidates": [candidate("", scenario.finish or "STOP")],
                        "modelVersion": model,
                    }
                    if usage:
                        payload["usageMetadata"] = usage
                    self._event(payload)

                # google-genai sends `include_thoughts` as it is spelt in Python; the API reads
                # proto3 JSON, which takes both that and `includeThoughts`.
                thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
                asked = thinking.get("includeThoughts", thinking.get("include_thoughts"))
                self._stream(scenario, chunk, final, thought if asked else None)

        self.server = _Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
