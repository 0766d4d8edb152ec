"""Share links in Chromium (issue 24, item 2): the owner shares a conversation, a signed-out
browser reads it at /s/{token}, signs in from there, comes back to it and continues it as its
own, and the owner's revocation in Settings ends the link at once. Same server and browser
set-up as test_browser.py (uvicorn on loopback, Debian's Chromium through Playwright)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Browser, expect

from tests.web.test_browser import (  # noqa: F401 (fixtures, registered by import)
    Watched,
    answered,
    browser,
    live_url,
    page,
    pytestmark,
    send,
    shot,
    sign_in,
)


@pytest_asyncio.fixture(loop_scope="session")
async def reader(browser: Browser, live_url: str) -> AsyncIterator[Watched]:  # noqa: F811
    """A second browser, signed out, with no cookies of the owner's."""
    context = await browser.new_context(base_url=live_url, viewport={"width": 900, "height": 700})
    watched = Watched(await context.new_page())
    yield watched
    await shot(watched.page, "last-share-reader")
    await context.close()
    assert not [e for e in watched.errors if "Content Security Policy" in e]


async def test_a_shared_conversation_is_read_signed_out_copied_and_revoked(
    page: Watched,  # noqa: F811
    reader: Watched,
    live_url: str,  # noqa: F811
) -> None:
    owner = page.page
    await owner.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await sign_in(owner, "Share Owner")
    await send(owner, "Shared **question** <img src=x onerror=alert(1)>")
    await answered(owner)
    await owner.get_by_role("button", name="Share…").click()
    dialog = owner.locator("#share-dialog")
    await expect(dialog).to_be_visible()
    link = await owner.locator("#share-link").input_value()
    assert re.fullmatch(re.escape(live_url) + r"/s/[A-Za-z0-9_-]{43}", link), link
    await dialog.get_by_role("button", name="Copy link").click()
    await expect(owner.locator("#share-status")).to_have_text("Link copied.")
    assert await owner.evaluate("navigator.clipboard.readText()") == link
    await shot(owner, "share-dialog")
    await dialog.get_by_role("button", name="Close").click()
    await send(owner, "A later question, not in the snapshot")
    await answered(owner)

    # Signed out: the snapshot, read-only, and a way to sign in.
    r = reader.page
    response = await r.goto(link)
    assert response is not None and response.status == 200
    assert response.headers["x-robots-tag"] == "noindex, nofollow"
    assert response.headers["referrer-policy"] == "no-referrer"
    view = r.locator("#shared-view")
    await expect(view).to_be_visible()
    await expect(r.locator("#shared-title")).to_have_text(re.compile("Shared"))
    await expect(view.locator("article.user")).to_have_count(1)
    await expect(view.locator("article.user")).to_contain_text("<img src=x onerror=alert(1)>")
    await expect(view.locator("article.assistant")).to_contain_text("You said")
    await expect(view).not_to_contain_text("A later question")
    await expect(r.locator("#shared-signin")).to_be_visible()
    await expect(r.locator("#shared-copy")).to_be_hidden()
    await expect(r.locator("#app")).to_be_hidden()
    assert reader.dialogs == []  # the markup in the message ran nothing
    await shot(r, "shared-signed-out")
    await r.set_viewport_size({"width": 380, "height": 700})  # a phone: nothing off the side
    assert await r.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(r, "shared-phone")
    await r.set_viewport_size({"width": 900, "height": 700})

    # Signing in from the link comes back to it; then it continues as the reader's own.
    await r.get_by_role("link", name="Sign in to continue it").click()
    await r.locator("#dev-email").fill("share-reader@browser.example.com")
    await r.get_by_role("button", name="Sign in", exact=True).click()
    await expect(r).to_have_url(re.compile(r"/s/[A-Za-z0-9_-]{43}$"))
    await r.get_by_role("button", name="Continue this conversation").click()
    await expect(r).to_have_url(re.compile(r"/#/c/[A-Za-z0-9_-]+$"))
    await expect(r.locator("#message-list article.user")).to_have_count(1)
    await expect(r.locator("#conversation-list")).to_contain_text("Shared")
    await send(r, "Going on with it")
    await answered(r)
    await expect(r.locator("#message-list article.user")).to_have_count(2)
    await shot(r, "shared-continued")

    # The owner revokes it in Settings: the link is dead at once.
    await owner.get_by_role("button", name="Settings").click()
    shares = owner.locator("#share-list li")
    await expect(shares).to_have_count(1)
    await expect(shares).to_contain_text("2 messages")
    await shot(owner, "share-settings")
    await shares.get_by_role("button", name=re.compile("^Revoke the link")).click()
    await expect(shares).to_have_count(0)
    await expect(owner.locator("#shares-empty")).to_be_visible()

    response = await r.goto(link)
    assert response is not None and response.status == 404
    await expect(r.locator("#shared-missing")).to_be_visible()
    await expect(r.locator("#shared-view article")).to_have_count(0)
