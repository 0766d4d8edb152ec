"""The web page's tags, pins and archive (issue 23 item 4), in Chromium: make a tag with a
colour, put it on a conversation, filter the list by it, pin, archive and the archived view."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.web.test_browser import (  # noqa: F401 (fixtures, registered by import)
    Watched,
    answered,
    browser,
    live_url,
    send,
    shot,
    sign_in,
)
from tests.web.test_browser import page as page


async def _chat(p: object, text: str) -> None:
    await p.goto("/#/")  # type: ignore[attr-defined]
    await send(p, text)  # type: ignore[arg-type]
    await answered(p)  # type: ignore[arg-type]


async def test_tags_pins_and_the_archive_from_the_page(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await _chat(p, "Plan the garden")
    await _chat(p, "Fix the bike")
    items = p.locator("#conversation-list li")
    await expect(items.first).to_contain_text("Fix the bike")

    # A tag with a colour, made in the tag manager.
    await p.get_by_role("button", name="Tags…").click()
    await p.locator("#new-tag-name").fill("Home")
    await p.locator("#new-tag-color").fill("#16a34a")
    await p.get_by_role("button", name="Add", exact=True).click()
    await expect(p.get_by_label("Name of Home")).to_have_value("Home")
    await p.get_by_role("button", name="Close tags").click()

    # On the open conversation ("Fix the bike").
    await p.locator("#assign-tags").click()
    await p.locator("#assign-list input[type=checkbox]").first.check()
    await expect(p.locator("#chat-tags")).to_contain_text("Home")
    color = await p.locator("#chat-tags .tag-chip").first.evaluate(
        "el => getComputedStyle(el).borderTopColor"
    )
    assert color == "rgb(22, 163, 74)"
    await p.get_by_role("button", name="Close", exact=True).click()
    await expect(items.first.locator(".tag-chip")).to_have_text("Home")

    # The list filtered by the tag.
    await p.locator("#tag-filter").select_option(label="Home (1)")
    await expect(items).to_have_count(1)
    await expect(items.first).to_contain_text("Fix the bike")
    await p.locator("#tag-filter").select_option(value="")
    await expect(items).to_have_count(2)

    # Pin the older one: it comes first.
    await p.get_by_role("button", name="Pin Plan the garden").click()
    await expect(items.first).to_contain_text("Plan the garden")
    await expect(items.first).to_have_class(re.compile(r"\bpinned\b"))
    await shot(p, "tags-and-pins")

    # Archive it: out of the list, in the archived view, and back.
    await p.get_by_role("button", name="Archive Plan the garden").click()
    await expect(items).to_have_count(1)
    await p.locator("#list-view").select_option("archived")
    await expect(items).to_have_count(1)
    await expect(items.first).to_contain_text("Plan the garden")
    await p.get_by_role("button", name="Unarchive Plan the garden").click()
    await expect(p.locator("#list-empty")).to_be_visible()
    await expect(p.locator("#list-empty")).to_have_text("Nothing archived.")
    await p.locator("#list-view").select_option("list")
    await expect(items).to_have_count(2)
