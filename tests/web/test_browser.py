"""The web page in a real browser: Debian's headless Chromium driven by Playwright, against
the real app served by uvicorn on loopback, with the built-in `dev-echo` model.

`dev-echo` pauses between words (DEV_ECHO_DELAY_MS), so an answer takes a few seconds: long
enough to press Stop or reload the page while it is being written.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from app.asgi import create_app
from app.db import migrate
from app.settings import Settings
from tests.conftest import TEST_SECRET, DatabaseFactory, in_thread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
EMAIL_DOMAIN = "browser.example.com"
WORD_DELAY_MS = 40
LONG_MESSAGE = " ".join(f"word{i}" for i in range(90))
ANSWER_DONE = 20_000  # ms; an answer takes about four seconds

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed (apt-get install -y chromium); browser tests skipped",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live_url(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """The app on 127.0.0.1 (a port of its own), dev-login on, with a database of its own:
    the browser's rows are committed, and other tests expect to see none of them."""
    database_url = databases.create()
    in_thread(migrate.upgrade, database_url)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("web"),
        auth_secret=TEST_SECRET,
        auth_url=url,
        auth_dev_login=True,
        groq_api_key=None,
        gemini_api_key=None,
        openai_compat_base_url=None,
        dev_echo_delay_ms=WORD_DELAY_MS,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:  # uvicorn offers no event to wait on
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        await task
        listener.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        yield launched
        await launched.close()


class Watched:
    """A page with what it reported: console errors (CSP violations among them), dialogs."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


@pytest_asyncio.fixture(loop_scope="session")
async def page(
    browser: Browser, live_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Watched]:
    """A fresh browser context (no cookies); its last screen is kept in tests/.artifacts."""
    context = await browser.new_context(base_url=live_url, viewport={"width": 1100, "height": 760})
    watched = Watched(await context.new_page())
    yield watched
    await shot(watched.page, f"last-{request.node.name}")
    await context.close()
    print("browser console errors:", watched.errors)
    assert not [e for e in watched.errors if "Content Security Policy" in e]


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def sign_in(page: Page, name: str = "Browser Tester") -> str:
    email = f"{uuid.uuid4().hex[:10]}@{EMAIL_DOMAIN}"
    await page.goto("/")
    await page.locator("#dev-email").fill(email)
    await page.locator("#dev-name").fill(name)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#app")).to_be_visible()
    return email


async def send(page: Page, message: str) -> None:
    await page.locator("#composer-input").fill(message)
    await page.locator("#composer-input").press("Enter")


def last_answer(page: Page) -> Any:
    return page.locator("#message-list article.assistant").last


async def answered(page: Page, status: str = "complete") -> None:
    await expect(last_answer(page)).not_to_have_class(re.compile(r"\blive\b"), timeout=ANSWER_DONE)
    await expect(last_answer(page)).to_have_attribute("data-status", status, timeout=ANSWER_DONE)


async def test_sign_in_chat_and_sign_out(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await send(p, "Hello from the browser")
    await expect(p.locator("#message-list article.user")).to_contain_text("Hello from the browser")
    await expect(p.locator("#stop-button")).to_be_visible()
    await expect(p.locator("article.assistant.live")).to_contain_text(
        "dev-echo", timeout=ANSWER_DONE
    )
    await answered(p)
    await expect(last_answer(p)).to_contain_text('You said: "Hello from the browser"')
    await expect(p.locator("#stop-button")).to_be_hidden()
    await expect(p.locator("#conversation-list")).to_contain_text("Hello from the browser")
    await expect(p).to_have_url(re.compile(r"#/c/[A-Za-z0-9_-]+$"))
    await shot(p, "chat")

    await p.get_by_role("button", name="Sign out").click()
    await expect(p.locator("#signin-dev")).to_be_visible()
    await p.reload()
    await expect(p.locator("#signin-dev")).to_be_visible()
    assert (await p.evaluate("fetch('/api/auth/session').then(r => r.json())")) is None


async def test_stop_keeps_the_partial_answer_and_says_so(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await send(p, LONG_MESSAGE)
    await expect(p.locator("article.assistant.live")).to_contain_text("You said")
    await p.get_by_role("button", name="Stop").click()
    await answered(p, "cancelled")
    answer = last_answer(p)
    await expect(answer.locator(".message-status")).to_contain_text("Stopped")
    await expect(answer).to_contain_text("You said")
    await expect(answer).not_to_contain_text("word89")
    await expect(p.locator("#send-button")).to_be_enabled()
    await shot(p, "stopped")


async def test_reloading_mid_answer_reattaches_to_it(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await send(p, LONG_MESSAGE)
    await expect(p.locator("article.assistant.live")).to_contain_text("You said")
    await p.reload()
    await expect(p.locator("article.assistant.live")).to_be_visible()
    await answered(p)
    await expect(last_answer(p)).to_contain_text("word89")
    await expect(p.locator("#message-list article.assistant")).to_have_count(1)


async def test_regenerate_keeps_versions_and_reactions_stick(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await send(p, "Say it twice")
    await answered(p)
    await last_answer(p).get_by_role("button", name="Like", exact=True).click()
    await expect(last_answer(p).get_by_role("button", name="Like", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    await last_answer(p).get_by_role("button", name="Regenerate").click()
    await answered(p)
    versions = last_answer(p).get_by_role("group", name="Versions of this answer")
    await expect(versions).to_contain_text("2 / 2")
    await versions.get_by_role("button", name="Previous version").click()
    await expect(versions).to_contain_text("1 / 2")
    await expect(last_answer(p).get_by_role("button", name="Like", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    # The version chosen is the branch the server shows (issue 23 item 2): it stays on reload,
    # and the next message would continue it.
    await p.reload()
    await expect(last_answer(p).get_by_role("group")).to_contain_text("1 / 2")
    await expect(p.locator("#message-list article.assistant")).to_have_count(1)


async def test_an_edit_makes_a_branch_and_the_old_one_comes_back(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await send(p, "First words")
    await answered(p)
    question = p.locator("#message-list article.user").first
    await question.get_by_role("button", name="Edit this message").click()
    await p.get_by_label("Edit your message").fill("Second thoughts")
    await p.get_by_role("button", name="Save and answer").click()
    await answered(p)
    await expect(last_answer(p)).to_contain_text("Second thoughts")
    edits = question.get_by_role("group", name="Edits of this message")
    await expect(edits).to_contain_text("2 / 2")
    await shot(p, "edit-branch")
    await edits.get_by_role("button", name="Previous edit").click()
    await expect(edits).to_contain_text("1 / 2")
    await expect(question).to_contain_text("First words")
    await expect(last_answer(p)).to_contain_text("First words")
    await p.reload()
    await expect(p.locator("#message-list article.user").first).to_contain_text("First words")
    await send(p, "Carry on")
    await answered(p)
    await expect(last_answer(p)).to_contain_text("message 2 of this conversation")
    await expect(p.locator("#message-list article.user")).to_have_count(2)
    # A search hit on the other branch opens that branch.
    await p.locator("#search-input").fill("thoughts")
    hit = p.locator("#search-results .search-result a.snippet").first
    await hit.click()
    await expect(p.locator("article.message.target")).to_contain_text("Second thoughts")
    await expect(p.locator("#message-list article.user")).to_have_count(1)


async def test_search_shows_highlights_and_opens_the_match(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await send(p, "The striped zebra crossed the road")
    await answered(p)
    await p.get_by_role("link", name="New chat").click()
    await send(p, "Nothing about animals here")
    await answered(p)

    await p.locator("#search-input").fill("zebra")
    results = p.locator("#search-results")
    await expect(results.locator(".search-result")).to_have_count(1)
    await expect(results.locator("mark").first).to_have_text(re.compile("zebra", re.I))
    await shot(p, "search")
    await results.locator("a.snippet").first.click()
    await expect(p).to_have_url(re.compile(r"#/c/[^/]+/m/[^/]+$"))
    await expect(p.locator("#chat-title")).to_have_text("The striped zebra crossed the road")
    await expect(p.locator("article.message.target")).to_contain_text("zebra")


async def test_a_title_match_opens_the_conversation_at_its_end(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await send(p, "Name me later")
    await answered(p)
    await p.get_by_role("button", name="Rename Name me later").click()
    await p.locator("#rename-input").fill("Quokka notes")
    await p.locator("#rename-input").press("Enter")
    await expect(p.locator("#chat-title")).to_have_text("Quokka notes")
    await p.get_by_role("link", name="New chat").click()

    await p.locator("#search-input").fill("quokka")
    results = p.locator("#search-results")
    await expect(results.locator(".search-result")).to_have_count(1)
    await expect(results.locator("a.snippet")).to_have_count(0)
    await expect(results.locator(".result-title mark")).to_have_text(re.compile("quokka", re.I))
    await results.locator("a.result-title").click()
    await expect(p).to_have_url(re.compile(r"#/c/[^/]+$"))
    await expect(p.locator("#chat-title")).to_have_text("Quokka notes")
    await expect(p.locator("#message-list article.assistant")).to_have_count(1)
    await expect(p.locator("article.message.target")).to_have_count(0)


async def test_rename_and_delete_from_the_sidebar(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await send(p, "Name me later")
    await answered(p)
    await p.get_by_role("button", name="Rename Name me later").click()
    await p.locator("#rename-input").fill("A better name")
    await p.locator("#rename-input").press("Enter")
    await expect(p.locator("#conversation-list")).to_contain_text("A better name")
    await expect(p.locator("#chat-title")).to_have_text("A better name")

    await p.get_by_role("button", name="Delete A better name").click()
    await expect(p.locator("#confirm-dialog")).to_be_visible()
    await p.get_by_role("button", name="Delete", exact=True).click()
    await expect(p.locator("#conversation-list li")).to_have_count(0)
    await expect(p.locator("#chat-title")).to_have_text("New chat")
    await p.reload()
    await expect(p.locator("#list-empty")).to_be_visible()


async def test_theme_choice_applies_at_once_and_is_kept(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await p.get_by_role("button", name="Settings").click()
    await p.get_by_label("Theme").select_option("dark")
    await expect(p.locator("#pref-status")).to_have_text("Saved.")
    await expect(p.locator("html")).to_have_attribute("data-theme", "dark")
    background = await p.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 23, 28)"
    await expect(p.locator("#session-list li")).to_have_count(1)
    await p.keyboard.press("Escape")
    await p.evaluate("localStorage.clear()")
    await p.reload()
    await expect(p.locator("#app")).to_be_visible()
    await expect(p.locator("html")).to_have_attribute("data-theme", "dark")


async def test_markup_in_a_message_is_shown_as_text_and_never_run(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    image = '<img src=x onerror="window.__xss=1;alert(1)">'
    script = "<script>window.__xss=2;alert(2)</script>"
    hostile = f"{image} and {script}"
    await send(p, hostile)
    await answered(p)
    await expect(p.locator("#message-list article.user")).to_contain_text(hostile)
    await expect(last_answer(p)).to_contain_text(image)
    await expect(last_answer(p)).to_contain_text(script)
    assert await p.locator("#message-list img, #message-list script").count() == 0
    await p.reload()
    await expect(last_answer(p)).to_contain_text("<script>")
    assert await p.evaluate("window.__xss") is None
    assert page.dialogs == []
    await shot(p, "markup-as-text")


async def test_stats_show_a_chart_and_the_models(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await send(p, "Count me")
    await answered(p)
    await p.get_by_role("link", name="Stats").click()
    await expect(p.locator("#stats-body svg.chart rect.bar")).to_have_count(30)
    await expect(p.locator("#stats-body table")).to_contain_text("dev-echo")
    await shot(p, "stats")


async def test_a_phone_sized_screen_opens_the_sidebar_as_a_drawer(page: Watched) -> None:
    p = page.page
    await p.set_viewport_size({"width": 390, "height": 760})
    await sign_in(p)
    await expect(p.locator("#sidebar")).not_to_be_in_viewport()
    await p.get_by_role("button", name="Conversations").click()
    await expect(p.locator("#search-input")).to_be_focused()
    await expect(p.locator("#sidebar")).to_be_in_viewport()
    await shot(p, "phone")


async def test_markdown_becomes_elements_and_unsafe_links_stay_text(page: Watched) -> None:
    p = page.page
    await p.goto("/")
    script_url = await p.locator("script[type=module]").get_attribute("src")
    assert script_url is not None
    markdown_url = script_url.replace("/app.js", "/markdown.js")
    source = (
        "**bold** and snake_case_name and x__y__z\n\n"
        "```python\nprint('<b>hi</b>')\n```\n\n"
        "1. one\n2. two\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "[ok](https://example.com/x) [bad](javascript:alert(1)) <b>raw</b>"
    )
    rendered = await p.evaluate(
        """async ({ url, source }) => {
            const { renderMarkdown } = await import(url);
            const box = document.createElement("div");
            box.append(renderMarkdown(source));
            return {
                strong: [...box.querySelectorAll("strong")].map((e) => e.textContent),
                code: [...box.querySelectorAll("pre code")].map((e) => e.textContent),
                items: box.querySelectorAll("ol li").length,
                cells: box.querySelectorAll("td").length,
                links: [...box.querySelectorAll("a")].map((e) => e.getAttribute("href")),
                text: box.textContent,
            };
        }""",
        {"url": markdown_url, "source": source},
    )
    assert rendered["strong"] == ["bold"]
    assert rendered["code"] == ["print('<b>hi</b>')"]
    assert rendered["items"] == 2 and rendered["cells"] == 2
    assert rendered["links"] == ["https://example.com/x"]
    assert "snake_case_name and x__y__z" in rendered["text"]
    assert "[bad](javascript:alert(1)) <b>raw</b>" in rendered["text"]


async def test_a_quote_nested_5000_deep_shows_and_so_does_the_rest_of_the_conversation(
    page: Watched,
) -> None:
    p = page.page
    await sign_in(p)
    await send(p, "Before the deep quote")
    await answered(p)
    # dev-echo quotes the message back, so its answer holds a line of 5,000 `>` too.
    await send(p, "Deep quote:\n" + ">" * 5000 + " deep text")
    await answered(p)
    for _ in range(2):  # as streamed, then as loaded when the conversation is opened again
        answers = p.locator("#message-list article.assistant")
        await expect(answers).to_have_count(2)
        await expect(answers.first).to_contain_text('You said: "Before the deep quote"')
        await expect(answers.last).to_contain_text("deep text")
        await expect(p.locator("#message-list article.user")).to_have_count(2)
        depth = await answers.last.evaluate(
            "(el) => { let n = 0; for (let q = el.querySelector('blockquote'); q;"
            " q = q.querySelector('blockquote')) n++; return n; }"
        )
        assert 1 <= depth <= 20
        await p.reload()
    assert not [e for e in page.errors if "call stack" in e]


async def test_deeply_nested_lists_and_emphasis_render_to_a_bounded_depth(page: Watched) -> None:
    p = page.page
    await p.goto("/")
    script_url = await p.locator("script[type=module]").get_attribute("src")
    assert script_url is not None
    markdown_url = script_url.replace("/app.js", "/markdown.js")
    nested_list = "\n".join("  " * i + f"- level {i}" for i in range(300))
    nested_emphasis = "**__~~*_" * 400 + "core" + "_*~~__**" * 400
    rendered = await p.evaluate(
        """async ({ url, sources }) => {
            const { renderMarkdown } = await import(url);
            const depth = (node) =>
                1 + Math.max(0, ...[...node.children].map((child) => depth(child)));
            return sources.map((source) => {
                const box = document.createElement("div");
                box.append(renderMarkdown(source));
                return { depth: depth(box), text: box.textContent };
            });
        }""",
        {"url": markdown_url, "sources": [nested_list, nested_emphasis]},
    )
    lists, emphasis = rendered
    assert lists["depth"] <= 50 and "level 299" in lists["text"]
    assert emphasis["depth"] <= 25 and "core" in emphasis["text"]


async def test_the_sidebar_loads_the_next_page_as_it_scrolls(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await p.evaluate(
        """async () => {
            const { csrfToken } = await (await fetch("/api/auth/csrf")).json();
            for (let i = 0; i < 35; i++) {
                await fetch("/api/conversations", {
                    method: "POST",
                    headers: { "content-type": "application/json", "x-csrf-token": csrfToken },
                    body: JSON.stringify({ title: `Topic ${i}` }),
                });
            }
        }"""
    )
    await p.reload()
    items = p.locator("#conversation-list li")
    await expect(items).to_have_count(30)
    await p.locator("#list-sentinel").scroll_into_view_if_needed()
    await expect(items).to_have_count(35)
    await expect(p.locator("#conversation-list")).to_contain_text("Topic 0")
    await expect(p.locator("#load-more")).to_be_hidden()


async def test_email_sign_in_says_a_link_is_on_its_way(page: Watched) -> None:
    p = page.page
    await p.goto("/")
    await p.locator("#email-address").fill(f"link@{EMAIL_DOMAIN}")
    await p.get_by_role("button", name="Email me a sign-in link").click()
    await expect(p.locator("#signin-message")).to_contain_text("sign-in link is on its way")


async def test_deleting_the_account_needs_the_email_typed(page: Watched) -> None:
    p = page.page
    email = await sign_in(p)
    await p.get_by_role("button", name="Settings").click()
    await p.get_by_role("button", name="Delete my account…").click()
    confirm = p.get_by_role("button", name="Delete my account", exact=True)
    await expect(confirm).to_be_disabled()
    await p.locator("#confirm-input").fill(email)
    await confirm.click()
    await expect(p.locator("#signin-message")).to_have_text("Your account was deleted.")
    assert (await p.evaluate("fetch('/api/auth/session').then(r => r.json())")) is None


async def test_the_keyboard_alone_signs_in_and_chats(page: Watched) -> None:
    p = page.page
    await p.goto("/")
    await expect(p.locator("#email-address")).to_be_focused()
    await p.keyboard.press("Tab")
    await p.keyboard.press("Tab")
    await expect(p.locator("#dev-email")).to_be_focused()
    await p.keyboard.press("Control+A")
    await p.keyboard.type(f"keys@{EMAIL_DOMAIN}")
    await p.keyboard.press("Enter")
    await expect(p.locator("#composer-input")).to_be_focused()
    await p.keyboard.type("Typed, not clicked")
    await p.keyboard.press("Enter")
    await answered(p)
    await expect(last_answer(p)).to_contain_text('You said: "Typed, not clicked"')


async def test_a_chatgpt_export_is_imported_from_the_settings(
    page: Watched, tmp_path: Path
) -> None:
    from tests.imports.test_imports import branching_conversation, chatgpt_zip

    p = page.page
    await sign_in(p)
    export = tmp_path / "chatgpt-export.zip"
    export.write_bytes(chatgpt_zip([branching_conversation()]))
    await p.get_by_role("button", name="Settings").click()
    await p.locator("#import-file").set_input_files(str(export))
    await p.get_by_role("button", name="Import", exact=True).click()
    status = p.locator("#import-status")
    await expect(status).to_contain_text("Done: 1 conversation imported", timeout=ANSWER_DONE)
    # The other branch is imported too (issue 23 item 2): only images and tool calls are left out.
    await expect(status).to_contain_text("1 images and files")
    await expect(status).to_contain_text("1 tool calls")
    await expect(status).not_to_contain_text("other branches")
    await p.keyboard.press("Escape")
    await p.locator("#conversation-list").get_by_text("Cat questions").click()
    await expect(p.locator("#message-list article.assistant").last).to_contain_text("Try Miso.")
    edits = p.locator("#message-list article.user").last.get_by_role("group")
    await expect(edits).to_contain_text("2 / 2")
    await edits.get_by_role("button", name="Previous edit").click()
    await expect(p.locator("#message-list article.assistant").last).to_contain_text(
        "I cannot know."
    )
    # The same file again: nothing twice.
    await p.get_by_role("button", name="Settings").click()
    await p.locator("#import-file").set_input_files(str(export))
    await p.get_by_role("button", name="Import", exact=True).click()
    await expect(p.locator("#import-status")).to_contain_text(
        "Done: 0 conversations imported; 1 already here", timeout=ANSWER_DONE
    )
