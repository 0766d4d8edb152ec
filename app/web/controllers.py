"""`/` and `/static/{version}/...`: the built-in web page, served from `app/web/static`.

The files are read once when the app is built. Their combined hash is the version in every
asset URL, so assets can be cached for a year (a changed file means a new URL, and relative
module imports inherit it); the page itself is revalidated on every load with its ETag.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.params import FromPath

from app.lib.deps import DbSession
from app.shares.controllers import limit_share_reads
from app.shares.services import SharedLinks

STATIC_DIR = Path(__file__).parent / "static"
VERSION_MARK = b"__VERSION__"

# No inline script or style, nothing from other origins, and DOM sinks such as innerHTML
# refused outright (Trusted Types with no policy): text from messages can never become markup.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _asset(body: bytes, suffix: str) -> Asset:
    # Litestar adds `; charset=utf-8` to text/* types itself.
    media_type = MEDIA_TYPES.get(suffix) or mimetypes.types_map.get(
        suffix, "application/octet-stream"
    )
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')


class WebAssets:
    """The page's files, held in memory (they are a few tens of kilobytes)."""

    def __init__(self, folder: Path) -> None:
        files = {
            path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
        digest = hashlib.sha256()
        for name, body in files.items():
            digest.update(name.encode() + b"\0" + body)
        self.version = digest.hexdigest()[:12]
        index = files.pop("index.html").replace(VERSION_MARK, self.version.encode())
        self.index = _asset(index, ".html")
        self.files = {name: _asset(body, Path(name).suffix) for name, body in files.items()}


def _send(request: Request[Any, Any, Any], asset: Asset, cache_control: str) -> Response[bytes]:
    headers = {"ETag": asset.etag, "Cache-Control": cache_control}
    if asset.media_type.startswith("text/html"):
        headers.update(PAGE_HEADERS)
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def web_router(folder: Path = STATIC_DIR) -> Router:
    """Public routes for the page: `/` and its versioned assets."""
    assets = WebAssets(folder)

    @get("/", cache=False)
    async def page(request: Request[Any, Any, Any]) -> Response[bytes]:
        """The web app's single page."""
        return _send(request, assets.index, REVALIDATE)

    @get("/static/{version:str}/{name:path}", cache=False)
    async def static_file(
        request: Request[Any, Any, Any], version: FromPath[str], name: FromPath[str]
    ) -> Response[bytes]:
        """A file of the page; cached for good when its URL carries the current version."""
        asset = assets.files.get(name.lstrip("/"))
        if asset is None:
            return Response(b"Not Found", status_code=404, media_type="text/plain")
        return _send(request, asset, IMMUTABLE if version == assets.version else REVALIDATE)

    @get("/s/{token:str}", cache=False)
    async def shared_page(
        request: Request[Any, Any, Any], db_session: DbSession, token: FromPath[str]
    ) -> Response[bytes]:
        """The page's read-only view of a shared conversation (no sign-in; the snapshot comes
        from `/api/shared/{token}`). 404, with the same page saying so, when the link is
        revoked or unknown or its conversation is gone."""
        await limit_share_reads(request)
        found = await SharedLinks(db_session).exists(token)
        return Response(
            assets.index.body,
            status_code=200 if found else 404,
            media_type=assets.index.media_type,
            headers=PAGE_HEADERS,  # caching, robots and referrer: app/lib/headers.py
        )

    return Router(
        "/",
        route_handlers=[page, static_file, shared_page],
        include_in_schema=False,
        opt={"public": True},
    )
