"""POST /api/imports (issue 24, item 3): ChatGPT's data export (.zip or conversations.json)
and this API's own export become conversations, checked whole before anything is stored,
once only, in the background with progress; hostile files are refused with a reason."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.asgi import create_app
from app.settings import Settings
from tests.auth.conftest import make_session, make_user
from tests.conftest import http_client

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def node(
    node_id: str,
    parent: str | None,
    children: list[str],
    role: str | None = None,
    parts: list[Any] | None = None,
    *,
    at: float = T0,
    content_type: str = "text",
    model: str | None = None,
    hidden: bool = False,
) -> dict[str, Any]:
    message = None
    if role is not None:
        metadata: dict[str, Any] = {}
        if model:
            metadata["model_slug"] = model
        if hidden:
            metadata["is_visually_hidden_from_conversation"] = True
        message = {
            "id": node_id,
            "author": {"role": role, "name": None, "metadata": {}},
            "create_time": at,
            "content": {"content_type": content_type, "parts": parts or []},
            "status": "finished_successfully",
            "metadata": metadata,
        }
    return {"id": node_id, "message": message, "parent": parent, "children": children}


def branching_conversation() -> dict[str, Any]:
    """root → hidden system → Q1 → A1 → (Q2 old → A2 old | Q2 new → tool → A2 new ← current),
    with an image on Q1."""
    nodes = [
        node("root", None, ["sys"]),
        node("sys", "root", ["q1"], "system", [""], hidden=True),
        node("q1", "sys", ["a1"], "user", [{"asset_pointer": "file-service://x"}, "What is this?"],
             at=T0 + 10, content_type="multimodal_text"),
        node("a1", "q1", ["q2old", "q2new"], "assistant", ["A cat."], at=T0 + 20, model="gpt-4o"),
        node("q2old", "a1", ["a2old"], "user", ["And its name?"], at=T0 + 30),
        node("a2old", "q2old", [], "assistant", ["I cannot know."], at=T0 + 40, model="gpt-4o"),
        node("q2new", "a1", ["tool"], "user", ["Search for cat names"], at=T0 + 50),
        node("tool", "q2new", ["a2new"], "tool", ["results..."], at=T0 + 55),
        node("a2new", "tool", [], "assistant", ["Try Miso."], at=T0 + 60, model="gpt-4o"),
    ]  # fmt: skip
    return {
        "title": "Cat questions",
        "create_time": T0,
        "update_time": T0 + 60,
        "mapping": {n["id"]: n for n in nodes},
        "current_node": "a2new",
        "conversation_id": "6f1e0c7a-branching",
        "id": "6f1e0c7a-branching",
    }


def simple_conversation(index: int, at: float = T0 + 1000) -> dict[str, Any]:
    nodes = [
        node("r", None, ["u"]),
        node("u", "r", ["a"], "user", [f"Question {index}"], at=at),
        node("a", "u", [], "assistant", [f"Answer {index}"], at=at + 1, model="gpt-4o-mini"),
    ]
    return {
        "title": f"Simple {index}",
        "create_time": at,
        "update_time": at + 1,
        "mapping": {n["id"]: n for n in nodes},
        "current_node": "a",
        "conversation_id": f"simple-{index}",
    }


def chatgpt_zip(conversations: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", json.dumps(conversations))
        archive.writestr("user.json", json.dumps({"email": "someone@example.com"}))
        archive.writestr("file-abc.png", b"\x89PNG not really")
    return buffer.getvalue()


@pytest.fixture
def import_settings(settings: Settings, own_database_url: str) -> Settings:
    return settings.model_copy(update={"database_url": own_database_url})


async def signed_in(engine: AsyncEngine, email: str) -> tuple[str, str]:
    async with engine.begin() as connection:
        user_id = await make_user(connection, email)
        return user_id, await make_session(connection, user_id)


@pytest.fixture
async def client(import_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(create_app(import_settings)) as client:
        yield client


async def finished(client: httpx.AsyncClient, token: str, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 240  # a loaded 2-core CI machine is slow
    while True:
        state = (await client.get(location, headers=_bearer(token))).json()
        if state["status"] != "running" or time.monotonic() > deadline:
            return dict(state)
        await asyncio.sleep(0.05)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def post_file(
    client: httpx.AsyncClient, token: str, body: bytes, content_type: str = "application/zip"
) -> httpx.Response:
    return await client.post(
        "/api/imports", content=body, headers={**_bearer(token), "content-type": content_type}
    )


async def conversations_of(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    listed = (await client.get("/api/conversations?limit=100", headers=_bearer(token))).json()
    result = []
    for item in listed["conversations"]:
        detail = await client.get(f"/api/conversations/{item['id']}", headers=_bearer(token))
        result.append(detail.json())
    return result


def _messages(conversation: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(m["role"], m["content"], m.get("model")) for m in conversation["messages"]]


async def test_a_chatgpt_export_imports_its_branches_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    _, token = await signed_in(engine, "from-chatgpt@example.com")
    body = chatgpt_zip([branching_conversation(), simple_conversation(1)])
    started = await post_file(client, token, body)
    assert started.status_code == 202, started.text
    assert started.json()["source"] == "chatgpt"
    state = await finished(client, token, started.headers["location"])
    assert state["status"] == "done", state
    # The other branch (Q2 old, A2 old) is kept since the message tree (issue 23 item 2).
    assert (state["total"], state["done"], state["duplicates"], state["messages"]) == (2, 2, 0, 8)
    assert state["skipped"] == {"images and files": 1, "tool calls": 1}

    imported = {c["title"]: c for c in await conversations_of(client, token)}
    assert set(imported) == {"Cat questions", "Simple 1"}
    assert _messages(imported["Cat questions"]) == [
        ("user", "What is this?", None),
        ("assistant", "A cat.", "chatgpt/gpt-4o"),
        ("user", "Search for cat names", None),
        ("assistant", "Try Miso.", "chatgpt/gpt-4o"),
    ]
    first = imported["Cat questions"]["messages"][0]
    assert first["createdAt"].startswith("2023-11-14T22:13:30")
    # The branch ChatGPT showed is the one shown; the other comes back when switched to.
    cats = imported["Cat questions"]
    edited = cats["messages"][2]
    assert edited["siblingCount"] == 2 and edited["siblingIndex"] == 1
    other = await client.post(
        f"/api/conversations/{cats['id']}/branch",
        json={"messageId": edited["siblingIds"][0]}, headers=_bearer(token),
    )  # fmt: skip
    assert _messages(other.json())[2:] == [
        ("user", "And its name?", None), ("assistant", "I cannot know.", "chatgpt/gpt-4o"),
    ]  # fmt: skip
    assert other.json()["messages"][3]["replyToId"] == other.json()["messages"][2]["id"]

    # Again: the same file stores nothing twice.
    again = await post_file(client, token, body)
    state = await finished(client, token, again.headers["location"])
    assert (state["status"], state["done"], state["duplicates"], state["messages"]) == (
        "done", 2, 2, 0,
    )  # fmt: skip
    assert len(await conversations_of(client, token)) == 2
    # Its conversations.json alone is the same file for this purpose.
    bare = json.dumps([branching_conversation(), simple_conversation(1), simple_conversation(2)])
    third = await post_file(client, token, bare.encode(), "application/json")
    state = await finished(client, token, third.headers["location"])
    assert (state["done"], state["duplicates"], state["messages"]) == (3, 2, 2)
    listed = (await client.get("/api/imports", headers=_bearer(token))).json()["imports"]
    assert [i["duplicates"] for i in listed] == [2, 2, 0]  # newest first


async def test_this_apis_own_export_moves_conversations_to_another_account(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    _, first = await signed_in(engine, "leaving@example.com")
    for question in ("How do tides work?", "And the moon?"):
        answered = await client.post(
            "/api/chat", json={"message": question}, headers=_bearer(first)
        )
        assert answered.status_code == 200, answered.text
    exported = await client.get("/api/users/me/export", headers=_bearer(first))
    _, second = await signed_in(engine, "arriving@example.com")
    started = await post_file(client, second, exported.content, "application/json")
    assert started.json()["source"] == "chatwithme"
    state = await finished(client, second, started.headers["location"])
    assert (state["status"], state["total"], state["messages"]) == ("done", 2, 4)
    mine = await conversations_of(client, first)
    theirs = await conversations_of(client, second)
    assert sorted((c["title"], tuple(_messages(c))) for c in theirs) == sorted(
        (c["title"], tuple(_messages(c))) for c in mine
    )


def _zip_with(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"hello, not an export", "neither a ChatGPT export"),
        (b"", "empty"),
        (b"PK\x03\x04 not really a zip", "zip file cannot be read"),
        (_zip_with("notes.txt", b"[]"), "no conversations.json"),
        (_zip_with("../conversations.json", b"[]"), "outside the archive"),
        (_zip_with("conversations.json", b"[" + b" " * 30_000_000 + b"]"), "zip bomb"),
    ],
    ids=["not-json", "empty", "bad-zip", "no-conversations", "path-outside", "bomb"],
)
async def test_a_file_refused_at_once_is_a_400_and_stores_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, body: bytes, reason: str
) -> None:
    _, token = await signed_in(engine, f"refused-{len(body)}-{reason[:5]}@example.com")
    response = await post_file(client, token, body, "application/octet-stream")
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert (await client.get("/api/imports", headers=_bearer(token))).json()["imports"] == []


def _deep_chain(depth: int) -> dict[str, Any]:
    nodes = [node("n0", None, ["n1"])]
    for i in range(1, depth):
        nodes.append(node(f"n{i}", f"n{i - 1}", [f"n{i + 1}"], "user", [f"m{i}"], at=T0 + i))
    conversation = simple_conversation(0)
    conversation |= {"mapping": {n["id"]: n for n in nodes}, "current_node": f"n{depth - 1}"}
    return conversation


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (json.dumps({"profile": {}}), "has no 'conversations'"),
        (json.dumps([simple_conversation(1), simple_conversation(2)])[:-30], "not valid JSON"),
        (json.dumps([simple_conversation(1), 42]), "is not a JSON object"),
        (json.dumps([simple_conversation(1), {"title": "no mapping"}]), "expected shape"),
        (json.dumps([simple_conversation(1), _deep_chain(50_000)]), "deeper than 10,000"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["wrong-shape", "truncated", "not-object", "no-mapping", "deep-tree", "deep-json"],
)
async def test_a_file_wrong_further_in_fails_with_its_reason_and_stores_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, document: str, reason: str
) -> None:
    user_id, token = await signed_in(engine, f"late-{len(document)}@example.com")
    started = await post_file(client, token, document.encode(), "application/json")
    assert started.status_code == 202, started.text
    state = await finished(client, token, started.headers["location"])
    assert state["status"] == "failed" and reason in state["error"], state
    async with engine.connect() as connection:
        stored = await connection.scalar(
            text('SELECT count(*) FROM conversations WHERE "userId" = :u'), {"u": user_id}
        )
    assert stored == 0  # the first, good, conversation was not stored either


async def test_limits_and_other_peoples_imports(
    import_settings: Settings, engine: AsyncEngine
) -> None:
    small = import_settings.model_copy(update={"import_max_bytes": 2048})
    _, token = await signed_in(engine, "limits@example.com")
    _, other = await signed_in(engine, "nosy@example.com")
    async with http_client(create_app(small)) as client:
        big = json.dumps([simple_conversation(i) for i in range(20)]).encode()
        response = await post_file(client, token, big, "application/json")
        assert response.status_code == 413 and "IMPORT_MAX_BYTES" in response.json()["detail"]
        fits = json.dumps([simple_conversation(1)]).encode()
        started = await post_file(client, token, fits, "application/json")
        assert started.status_code == 202
        await finished(client, token, started.headers["location"])
        assert (
            await client.get(started.headers["location"], headers=_bearer(other))
        ).status_code == 404
        assert (await client.get("/api/imports/nope", headers=_bearer(token))).status_code == 404
        assert (await client.post("/api/imports", content=fits)).status_code == 401


async def test_an_import_cut_by_shutdown_ends_interrupted_and_the_same_file_finishes_it(
    import_settings: Settings, engine: AsyncEngine
) -> None:
    user_id, token = await signed_in(engine, "interrupted@example.com")
    body = json.dumps([simple_conversation(i, T0 + i * 10) for i in range(300)]).encode()
    async with http_client(create_app(import_settings)) as client:
        started = await post_file(client, token, body, "application/json")
        location = started.headers["location"]
        deadline = time.monotonic() + 60
        while (await client.get(location, headers=_bearer(token))).json()["done"] < 20:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    # The app has shut down (what SIGTERM does to `serve`) in the middle of the import.
    async with http_client(create_app(import_settings)) as client:
        state = (await client.get(location, headers=_bearer(token))).json()
        assert state["status"] == "interrupted", state
        assert 20 <= state["done"] < 300
        async with engine.connect() as connection:
            stored = await connection.scalar(
                text('SELECT count(*) FROM conversations WHERE "userId" = :u'), {"u": user_id}
            )
            half = await connection.scalar(
                text(
                    'SELECT count(*) FROM conversations c WHERE "userId" = :u AND '
                    '(SELECT count(*) FROM messages m WHERE m."conversationId" = c.id) <> 2'
                ),
                {"u": user_id},
            )
        assert stored == state["done"] and half == 0  # each conversation whole or absent
        again = await post_file(client, token, body, "application/json")
        finished_state = await finished(client, token, again.headers["location"])
        assert finished_state["status"] == "done"
        assert finished_state["duplicates"] == stored
        async with engine.connect() as connection:
            total = await connection.scalar(
                text('SELECT count(*) FROM conversations WHERE "userId" = :u'), {"u": user_id}
            )
        assert total == 300


def _import(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "APP_ENV"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "chatwithme"), "import", *args],
        env={**env, "DATABASE_URL": url, "DATA_DIR": str(cwd)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_command_line_imports_for_a_user(
    own_database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    user_id, _ = await signed_in(engine, "cli-import@example.com")
    path = tmp_path / "export.zip"
    path.write_bytes(chatgpt_zip([branching_conversation()]))
    first = await asyncio.to_thread(
        _import, own_database_url, tmp_path, str(path), "--user", "CLI-import@example.com"
    )
    assert first.returncode == 0, first.stderr
    # Both branches: 6 messages (4 on the branch shown).
    assert "done: 1 conversations stored (6 messages), 0 imported before" in first.stdout
    again = await asyncio.to_thread(
        _import, own_database_url, tmp_path, str(path), "--user", "cli-import@example.com"
    )
    assert again.returncode == 0 and "0 conversations stored" in again.stdout, again.stdout
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    'SELECT status, done, duplicates, messages FROM imports WHERE "userId" = :u '
                    'ORDER BY "createdAt"'
                ),
                {"u": user_id},
            )
        ).all()
    assert [tuple(r) for r in rows] == [("done", 1, 0, 6), ("done", 1, 1, 0)]
    nobody = await asyncio.to_thread(
        _import, own_database_url, tmp_path, str(path), "--user", "nobody@example.com"
    )
    assert nobody.returncode == 2 and "no user nobody@example.com" in nobody.stderr


async def test_an_import_whose_process_was_killed_ends_interrupted_and_is_finished_again(
    own_database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """kill -9 of the process mid-import: nothing ends the row, so its lease does. Another
    process reads it `interrupted` once the lease (2 s here) has run out, each conversation
    whole or absent, and the same file again finishes it."""
    from tests.chat.test_answers_across_processes import serving
    from tests.fakes.llm import FakeLLM

    user_id, token = await signed_in(engine, "killed-import@example.com")
    total = 2000
    body = json.dumps([simple_conversation(i, T0 + i * 10) for i in range(total)]).encode()
    fake = FakeLLM().start()
    try:
        with serving(own_database_url, fake, tmp_path, IMPORT_LEASE_SECONDS="2") as (a, b):
            async with httpx.AsyncClient(base_url=a.url, timeout=60) as to_a:
                started = await post_file(to_a, token, body, "application/json")
                assert started.status_code == 202, started.text
                location = started.headers["location"]
                deadline = time.monotonic() + 120
                while (await to_a.get(location, headers=_bearer(token))).json()["done"] < 20:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
            a.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(a.process.wait, 10)
            killed = time.monotonic()
            async with httpx.AsyncClient(base_url=b.url, timeout=60) as to_b:
                state = await finished(to_b, token, location)
                ended_after = time.monotonic() - killed
                assert state["status"] == "interrupted", state
                assert "import the same file again" in state["error"]
                assert 20 <= state["done"] < total
                listed = (await to_b.get("/api/imports", headers=_bearer(token))).json()
                assert [i["status"] for i in listed["imports"]] == ["interrupted"]
                async with engine.connect() as connection:
                    stored = await connection.scalar(
                        text('SELECT count(*) FROM conversations WHERE "userId" = :u'),
                        {"u": user_id},
                    )
                    half = await connection.scalar(
                        text(
                            'SELECT count(*) FROM conversations c WHERE "userId" = :u AND '
                            '(SELECT count(*) FROM messages m WHERE m."conversationId" = c.id)'
                            " <> 2"
                        ),
                        {"u": user_id},
                    )
                assert stored is not None and stored >= state["done"] and half == 0
                again = await post_file(to_b, token, body, "application/json")
                done = await finished(to_b, token, again.headers["location"])
                assert done["status"] == "done", done
                assert done["duplicates"] == stored
    finally:
        fake.stop()
    async with engine.connect() as connection:
        imported = await connection.scalar(
            text('SELECT count(*) FROM conversations WHERE "userId" = :u'), {"u": user_id}
        )
    assert imported == total
    assert ended_after < 2 + 8, ended_after  # the lease's 2 s, and a loaded machine
