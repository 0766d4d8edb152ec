"""The web page as HTTP sees it: served at `/`, strict CSP, versioned and cached assets."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from app.asgi import create_app
from app.db.engine import Database
from app.settings import Settings
from app.web.controllers import STATIC_DIR
from tests.conftest import http_client


async def _asset_urls(client: httpx.AsyncClient) -> list[str]:
    page = await client.get("/")
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)


async def test_the_page_is_public_and_served_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "require-trusted-types-for 'script'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-cache"
    assert '<div id="app"' in response.text


async def test_the_page_revalidates_with_its_etag(client: httpx.AsyncClient) -> None:
    first = await client.get("/")
    again = await client.get("/", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_versioned_assets_are_cached_for_good_and_others_revalidate(
    client: httpx.AsyncClient,
) -> None:
    urls = await _asset_urls(client)
    assert any(u.endswith("/js/app.js") for u in urls) and any(u.endswith(".css") for u in urls)
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    script = await client.get(next(u for u in urls if u.endswith("/js/app.js")))
    assert script.headers["content-type"].startswith("text/javascript")
    stale = await client.get("/static/0123456789ab/js/app.js")
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    assert (await client.get("/static/0123456789ab/nope.js")).status_code == 404
    assert (await client.get("/static/0123456789ab/../controllers.py")).status_code == 404


async def test_every_module_the_page_imports_is_served_under_the_version(
    client: httpx.AsyncClient,
) -> None:
    entry = next(u for u in await _asset_urls(client) if u.endswith("/js/app.js"))
    base = entry.removesuffix("app.js")
    seen: set[str] = set()
    waiting = ["app.js"]
    while waiting:
        name = waiting.pop()
        seen.add(name)
        response = await client.get(base + name)
        assert response.status_code == 200, name
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        imported = re.findall(r'from "\./([\w.-]+\.js)"', response.text)
        waiting += [module for module in imported if module not in seen]
    on_disk = {path.name for path in (STATIC_DIR / "js").glob("*.js")}
    assert seen == on_disk - {"boot.js"}


def test_the_files_hold_no_inline_script_style_or_other_origins() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)
    for path in STATIC_DIR.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text()
            assert not re.search(r"(src|href)=\"https?://", text), path
            assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path
            assert "eval(" not in text and "document.write" not in text, path


async def test_sign_in_methods_include_dev_login_only_when_enabled(
    settings: Settings, connection: AsyncConnection, client: httpx.AsyncClient
) -> None:
    assert "dev-login" not in (await client.get("/api/auth/providers")).json()
    enabled = settings.model_copy(update={"auth_dev_login": True})
    async with http_client(create_app(enabled, database=Database.bound_to(connection))) as other:
        offered = (await other.get("/api/auth/providers")).json()
    assert offered["dev-login"]["signinUrl"].endswith("/api/auth/dev-login")
