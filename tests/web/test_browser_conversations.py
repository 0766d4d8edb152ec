"""The page's conversation options, titles and reasoning in a real browser (issue 23, items 1,
3, 5): a Groq fake whose gpt-oss thinks out loud (Groq's `delta.reasoning`) and whose cheapest
model makes titles, behind the real app served by uvicorn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import expect

from app.asgi import create_app
from app.db import migrate
from app.settings import Settings
from tests.conftest import TEST_SECRET, DatabaseFactory, in_thread
from tests.fakes.llm import FakeLLM, Scenario
from tests.web import test_browser
from tests.web.test_browser import ANSWER_DONE, Watched, answered, last_answer, send, shot, sign_in

# test_browser's browser and page fixtures, skipped as its tests are without Chromium; `page`
# takes the `live_url` of this module.
browser, page = test_browser.browser, test_browser.page
pytestmark = test_browser.pytestmark

THOUGHTS = ["The user greets me. ", "I should greet back."]


@pytest.fixture(scope="module")
def vendor() -> Iterator[FakeLLM]:
    fake = FakeLLM(default=Scenario(chunks=[f"w{i} " for i in range(40)], gap=0.03)).start()
    fake.by_model["openai/gpt-oss-120b"] = Scenario(
        reasoning=THOUGHTS, chunks=[f"Ahoy{i} " for i in range(40)], gap=0.03
    )
    fake.by_model["llama-3.1-8b-instant"] = Scenario(chunks=["Greetings at sea"])
    yield fake
    fake.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live_url(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory, vendor: FakeLLM
) -> AsyncIterator[str]:
    """As test_browser's, with the Groq fake instead of dev-echo."""
    database_url = databases.create()
    in_thread(migrate.upgrade, database_url)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("web-conversations"),
        auth_secret=TEST_SECRET,
        auth_url=url,
        auth_dev_login=True,
        groq_api_key="gsk_browser",
        groq_base_url=vendor.url,
        gemini_api_key=None,
        openai_compat_base_url=None,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        await task
        listener.close()


async def test_reasoning_streams_folded_and_stays_folded_once_stored(page: Watched) -> None:
    p = page.page
    await sign_in(p)
    await p.locator("#model-select").select_option("groq/openai/gpt-oss-120b")
    await send(p, "Hello sailor")
    live = p.locator("article.assistant.live details.reasoning")
    await expect(live).to_be_visible(timeout=ANSWER_DONE)
    await expect(live).not_to_have_attribute("open", "")
    await answered(p)
    stored = last_answer(p).locator("details.reasoning")
    await expect(stored).not_to_have_attribute("open", "")
    await expect(stored.locator(".reasoning-text")).to_be_hidden()
    await stored.locator("summary").click()
    await expect(stored.locator(".reasoning-text")).to_have_text("".join(THOUGHTS))
    await expect(last_answer(p).locator(".message-body")).to_contain_text("Ahoy39")
    await expect(last_answer(p).locator(".message-body")).not_to_contain_text("greet back")
    # The title model's title reached the header and the list.
    await expect(p.locator("#chat-title")).to_have_text("Greetings at sea")
    await expect(p.locator("#conversation-list")).to_contain_text("Greetings at sea")
    await shot(p, "reasoning")


async def test_chat_options_are_kept_and_reach_the_next_answer(
    page: Watched, vendor: FakeLLM
) -> None:
    p = page.page
    await sign_in(p)
    await send(p, "First question")
    await answered(p)
    await p.get_by_role("button", name="Chat options").click()
    dialog = p.locator("#conv-settings-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("System prompt", exact=True).fill("Answer like a pirate.")
    await dialog.get_by_label("Model").select_option("groq/llama-3.1-8b-instant")
    await dialog.get_by_label("Temperature (0 to 2)").fill("0.4")
    await dialog.get_by_label("Longest answer (tokens)").fill("300")
    await dialog.get_by_role("button", name="Save").click()
    await expect(p.locator("#conv-status")).to_contain_text("Saved")
    await shot(p, "chat-options")
    await dialog.get_by_role("button", name="Close chat options").click()

    await p.get_by_role("button", name="Chat options").click()
    prompt = dialog.get_by_label("System prompt", exact=True)
    await expect(prompt).to_have_value("Answer like a pirate.")
    await expect(dialog.get_by_label("Temperature (0 to 2)")).to_have_value("0.4")
    await dialog.get_by_role("button", name="New title").click()
    await expect(p.locator("#conv-status")).to_contain_text("New title: Greetings at sea")
    await dialog.get_by_role("button", name="Close chat options").click()
    await expect(p.locator("#chat-title")).to_have_text("Greetings at sea")

    await send(p, "Second question")
    await answered(p)
    sent = [r.body for r in vendor.received if "Second question" in str(r.body)]
    assert sent[-1]["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    assert (sent[-1]["temperature"], sent[-1]["max_completion_tokens"]) == (0.4, 300)
    assert sent[-1]["model"] == "llama-3.1-8b-instant"  # the composer follows the chat's model
    await p.reload()
    await expect(p.locator("#model-select")).to_have_value("groq/llama-3.1-8b-instant")
