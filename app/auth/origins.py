"""Which browser origins may call the API: its own (AUTH_URL's) and CORS_ALLOWED_ORIGINS.

Preflights and the CORS response headers are Litestar's own (`CORSConfig`, whose middleware
answers an `OPTIONS` with an `Origin` before routing, so before the session guard). Litestar
adds some of its headers (credentials, exposed headers) to every response that carries an
`Origin`; `drop_foreign_cors_headers` takes them off again for origins not on the list, so
another origin sees no CORS header at all.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.types import BeforeMessageSendHookHandler, Message, Method, Scope

from app.settings import Settings

METHODS: list[Method | Literal["*"]] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# What a frontend sends: JSON bodies, the CSRF header, bearer tokens; request ids pass through.
REQUEST_HEADERS = ["content-type", "x-csrf-token", "authorization", "x-request-id"]
# What a client reads: the request id, back-off, the AI SDK's stream marker, export file names.
EXPOSED_HEADERS = [
    "x-request-id",
    "retry-after",
    "x-vercel-ai-ui-message-stream",
    "content-disposition",
]
PREFLIGHT_MAX_AGE = 600


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lowercased, as browsers send it in `Origin`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(settings: Settings) -> frozenset[str]:
    """The API's own origin and the configured ones: those a cookie request may come from."""
    return _origins(settings.base_url, settings.cors_origins)


@lru_cache(maxsize=8)
def _origins(base_url: str, configured: tuple[str, ...]) -> frozenset[str]:
    return frozenset({origin_of(base_url), *configured})


def cors_config(settings: Settings) -> CORSConfig | None:
    """Litestar's CORS for the configured origins (exact, with credentials); None when none."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        allow_credentials=True,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
    )


def drop_foreign_cors_headers(settings: Settings) -> BeforeMessageSendHookHandler:
    """A before-send hook: responses to origins not on the list carry no CORS header, and
    every response says it varies by `Origin` (caches must not serve one origin's to another)."""
    listed = frozenset(settings.cors_origins)

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        origin = _request_origin(scope)
        if origin is None or origin not in listed:
            for name in [k for k in headers if k.lower().startswith("access-control-")]:
                del headers[name]
        vary = headers.get("vary")
        if vary is None:
            headers["vary"] = "Origin"
        elif "origin" not in vary.lower():
            headers["vary"] = f"{vary}, Origin"

    return hook


def _request_origin(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            return value.decode("latin-1")
    return None
