"""The real AI SDK client (`ai` 5, 6 and 7, pinned in `aisdk/package-lock.json`) against the
API: send, close the tab mid-answer, resume, and find nothing to resume once it has ended.
Skipped when node and npm are missing; CI has them."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.settings import Settings
from tests.chat.conftest import chat_settings
from tests.chat.test_live import live_app
from tests.fakes.llm import FakeLLM, Scenario, inline_data
from tests.files.conftest import png
from tests.npm import cache_folder, npm_install, require_node

PACKAGES = Path(__file__).parent / "aisdk"
ANSWER = [f"word{i} " for i in range(40)]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*")


@pytest.fixture(scope="module")
def ai_sdk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_node()
    return npm_install(PACKAGES, cache_folder(request, tmp_path_factory, "ai-sdk"))


def _run(folder: Path, name: str, *arguments: object) -> dict[str, Any]:
    """Run one of the `ai` client scripts (tests/chat/aisdk/NAME) under Node; its last line
    of output, as JSON."""
    script = folder / name
    script.write_bytes((PACKAGES / name).read_bytes())
    done = subprocess.run(
        ["node", str(script), *map(str, arguments)],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("major", [5, 6, 7])
async def test_the_ai_sdk_client_sends_resumes_and_reads_the_stored_answer(
    major: int, ai_sdk: Path, settings: Settings, database_url: str, groq_fake: FakeLLM
) -> None:
    groq_fake.next(Scenario(chunks=ANSWER, gap=0.05))
    async with live_app(chat_settings(settings, groq_fake), database_url) as (url, token, database):
        chat_id = f"aiSdkClient{major}xx"
        seen = await asyncio.to_thread(_run, ai_sdk, "client.mjs", major, url, token, chat_id)
        async with database.engine.connect() as conn:
            stored = (
                await conn.execute(
                    text(
                        "SELECT id, status, content FROM messages "
                        "WHERE \"conversationId\" = :c AND role = 'assistant'"
                    ),
                    {"c": chat_id},
                )
            ).one()
        await database.engine.dispose()
    assert seen["errors"] == []
    assert seen["firstChunks"][0]["type"] == "start"
    assert seen["firstChunks"][0]["messageId"] == stored.id
    message = seen["message"]
    assert message["id"] == stored.id and message["role"] == "assistant"
    assert [p["text"] for p in message["parts"] if p["type"] == "text"] == ["".join(ANSWER)]
    assert message["metadata"]["status"] == "complete"
    assert message["metadata"]["conversationId"] == chat_id
    assert (stored.status, stored.content) == ("complete", "".join(ANSWER))
    assert seen["afterIsNull"] is True


@pytest.mark.parametrize("major", [5, 6, 7])
async def test_the_ai_sdk_client_reads_reasoning_parts_and_the_chat_title(
    major: int, ai_sdk: Path, settings: Settings, database_url: str, groq_fake: FakeLLM
) -> None:
    """Issue 23 items 1 and 5: the SDK's schema accepts the reasoning and data-chat-title
    chunks, and its message has the reasoning as a part of its own."""
    groq_fake.by_model["openai/gpt-oss-120b"] = Scenario(
        reasoning=["Adding ", "two and two."], chunks=ANSWER, gap=0.05
    )
    groq_fake.by_model["llama-3.1-8b-instant"] = Scenario(chunks=["Simple sums"])
    app_settings = chat_settings(settings, groq_fake, title_model=None)
    async with live_app(app_settings, database_url) as (url, token, database):
        chat_id = f"aiSdkThinking{major}x"
        seen = await asyncio.to_thread(
            _run, ai_sdk, "thinking.mjs", major, url, token, chat_id, "groq/openai/gpt-oss-120b"
        )
        await database.engine.dispose()
    assert seen["errors"] == []
    types = seen["types"]
    assert types.index("reasoning-start") < types.index("reasoning-end") < types.index("text-start")
    assert seen["data"] == [{"type": "data-chat-title", "data": "Simple sums", "transient": True}]
    parts = seen["message"]["parts"]
    reasoning = [p for p in parts if p["type"] == "reasoning"]
    assert [p["text"] for p in reasoning] == ["Adding two and two."]
    assert [p["text"] for p in parts if p["type"] == "text"] == ["".join(ANSWER)]


@pytest.mark.parametrize("major", [5, 6, 7])
async def test_the_ai_sdk_clients_file_parts_reach_gemini_and_groq(
    major: int,
    ai_sdk: Path,
    settings: Settings,
    database_url: str,
    groq_fake: FakeLLM,
    gemini_fake: FakeLLM,
) -> None:
    """Issue 24 item 1: an image as a `data:` URL and one uploaded first (its URL), sent as
    the SDK sends `file` parts, reach Gemini as inline data and Groq as image_url parts."""
    inline, uploaded = png(seed=major), png(seed=major + 10)
    app_settings = chat_settings(settings, groq_fake, gemini_fake, llm_fallback="none")
    async with live_app(app_settings, database_url) as (url, token, database):
        async with httpx.AsyncClient(base_url=url) as client:
            stored = await client.post(
                "/api/files",
                files={"file": ("uploaded.png", uploaded, "image/png")},
                headers={"authorization": f"Bearer {token}"},
            )
        assert stored.status_code == 201, stored.text
        file_url = stored.json()["url"]
        runs = {
            model: await asyncio.to_thread(
                _run, ai_sdk, "files.mjs", major, url, token, f"aiSdkFiles{major}{n}x", model,
                file_url, base64.b64encode(inline).decode(),
            )
            for n, model in enumerate(
                ["gemini/gemini-2.5-flash", "groq/meta-llama/llama-4-scout-17b-16e-instruct"]
            )
        }  # fmt: skip
        await database.engine.dispose()
    for seen in runs.values():
        assert seen["errors"] == [] and seen["status"] == "complete", seen
        assert seen["text"] == "Hello, world!"
    (contents,) = gemini_fake.received[-1].body["contents"]
    assert contents["parts"][0] == {"text": "What is in these pictures?"}
    assert [inline_data(p) for p in contents["parts"][1:]] == [
        ("image/png", inline),
        ("image/png", uploaded),
    ]
    content = groq_fake.received[-1].body["messages"][-1]["content"]
    assert content == [
        {"type": "text", "text": "What is in these pictures?"},
        *(
            {"type": "image_url",
             "image_url": {"url": "data:image/png;base64," + base64.b64encode(p).decode()}}
            for p in (inline, uploaded)
        ),
    ]  # fmt: skip


@pytest.mark.parametrize("major", [5, 6, 7])
async def test_the_ai_sdk_clients_edit_makes_a_branch(
    major: int, ai_sdk: Path, settings: Settings, database_url: str, groq_fake: FakeLLM
) -> None:
    """Issue 23 item 2: `sendMessage({text, messageId})` is an edit: the edited question is a
    sibling of the old one (kept), and the answer's prompt holds only the new branch."""
    app_settings = chat_settings(settings, groq_fake, title_model=None)
    async with live_app(app_settings, database_url) as (url, token, database):
        chat_id = f"aiSdkEdit{major}xxxxx"
        seen = await asyncio.to_thread(_run, ai_sdk, "edit.mjs", major, url, token, chat_id)
        async with database.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        'SELECT id, role, content, "parentId", "promptMessageIds" FROM messages '
                        'WHERE "conversationId" = :c ORDER BY "createdAt", id'
                    ),
                    {"c": chat_id},
                )
            ).all()
            leaf = await conn.scalar(
                text('SELECT "currentLeafId" FROM conversations WHERE id = :c'), {"c": chat_id}
            )
        await database.engine.dispose()
    assert seen["errors"] == []
    assert [(m["role"], m["text"]) for m in seen["messages"]] == [
        ("user", "First question"), ("assistant", "Hello, world!"),
        ("user", "Second question, edited"), ("assistant", "Hello, world!"),
    ]  # fmt: skip
    by_content = {r.content: r for r in rows if r.role == "user"}
    old, new = by_content["Second question"], by_content["Second question, edited"]
    assert old.parentId == new.parentId is not None  # siblings: the old branch is kept
    assert len(rows) == 6
    answer = rows[-1]
    assert (answer.role, answer.parentId, leaf) == ("assistant", new.id, answer.id)
    assert old.id not in answer.promptMessageIds and answer.promptMessageIds[-1] == new.id
    assert [m["content"] for m in groq_fake.received[-1].body["messages"][1:]] == [
        "First question", "Hello, world!", "Second question, edited"
    ]  # fmt: skip
