"""One id per HTTP request: taken from a sane `X-Request-ID` or made here, sent back on the
response, and kept in a context variable so every log line of the request can carry it."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from typing import Any

HEADER = "x-request-id"
# Ids from a proxy or client are kept only when they cannot break a log line or a header.
SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    return secrets.token_hex(16)


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The incoming `X-Request-ID` when it is sane, else a new one."""
    for name, value in headers:
        if name.lower() == HEADER.encode():
            try:
                candidate = value.decode("ascii")
            except UnicodeDecodeError:
                break
            if SANE_ID.match(candidate):
                return candidate
            break
    return new_request_id()


class RequestIdMiddleware:
    """Plain ASGI, outermost, so 404s, 500s and streamed responses get the header too."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers", []))
        scope.setdefault("state", {})["request_id"] = request_id
        token = current_request_id.set(request_id)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != HEADER.encode()
                ]
                headers.append((HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)
