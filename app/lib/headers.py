"""Headers every response gets by rule rather than by handler: private answers are not cached,
the API docs are framed by no one, production asks browsers for HTTPS only."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

from app.settings import Settings

DOCS_PREFIX = "/schema"
# Swagger UI's own styles are inline; its scripts are files (app/lib/openapi.py).
DOCS_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
DOCS_HEADERS = {
    "content-security-policy": DOCS_POLICY,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
HSTS = "max-age=63072000; includeSubDomains"
# Share links (the page and the JSON, errors included): kept out of search engines, sent to no
# other site as a referrer, and never stored by a cache, so a revoked link is dead at once.
SHARE_PREFIXES = ("/s/", "/api/shared/")
SHARE_HEADERS = {
    "x-robots-tag": "noindex, nofollow",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def response_rules(settings: Settings) -> BeforeMessageSendHookHandler:
    """A before-send hook: `Cache-Control: no-store` on what a signed-in caller is answered
    (unless the handler said otherwise), the docs' headers, share links' headers, and HSTS in
    production."""
    production = settings.is_production

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        if "auth" in scope and "cache-control" not in headers:
            headers["cache-control"] = "no-store"
        if scope.get("path", "").startswith(DOCS_PREFIX):
            for name, value in DOCS_HEADERS.items():
                headers.setdefault(name, value)
        if scope.get("path", "").startswith(SHARE_PREFIXES):
            for name, value in SHARE_HEADERS.items():
                headers[name] = value
        if production:
            headers["strict-transport-security"] = HSTS

    return hook
