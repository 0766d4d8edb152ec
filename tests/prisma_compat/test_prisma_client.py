"""The exported schema.prisma with Prisma's own CLI and client, as a frontend would use it.

Needs node and npm (skipped without them). The pinned packages in `client/package-lock.json`
are installed once with `npm ci` into `.pytest_cache/d/prisma-client` and reused while the
lock file is unchanged. Generation runs offline: the driver-adapter client needs no engine, and
the engine variables point at an empty file so that Prisma does not try to download one.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.asgi import create_app
from app.db import migrate
from app.db.engine import Database
from app.db.models import Base
from app.db.url import to_libpq
from app.settings import Settings
from prisma_compat.commands import export_schema
from prisma_compat.cuid import cuid
from prisma_compat.export import config_ts, export
from tests.conftest import DatabaseFactory, http_client, in_thread
from tests.npm import cache_folder, npm_install, require_node

PACKAGES = Path(__file__).parent / "client"
# Prisma 7 is tested with the Next.js example's pinned packages (one install for both tests).
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nextjs"
# The generator a frontend needs for the driver-adapter client (see the README).
GENERATOR = """generator client {
  provider        = "prisma-client-js"
  previewFeatures = ["driverAdapters", "queryCompiler"]
  engineType      = "client"
  output          = "%s"
}"""


@dataclass(frozen=True, slots=True)
class Prisma:
    folder: Path  # holds node_modules
    env: dict[str, str]

    def run(self, *args: str, database_url: str = "postgresql://unused@localhost/unused") -> str:
        done = subprocess.run(
            [str(self.folder / "node_modules" / ".bin" / "prisma"), *args],
            env={**self.env, "DATABASE_URL": database_url},
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, f"prisma {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout + done.stderr


def _prisma(folder: Path) -> Prisma:
    empty_engine = Path(folder) / "no-engine"
    empty_engine.touch()
    empty_engine.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRISMA_")}
    env |= {
        "PRISMA_QUERY_ENGINE_LIBRARY": str(empty_engine),
        "PRISMA_SCHEMA_ENGINE_BINARY": str(empty_engine),
        "CHECKPOINT_DISABLE": "1",  # no telemetry request
        "PRISMA_HIDE_UPDATE_MESSAGE": "1",
        "PRISMA_GENERATE_SKIP_AUTOINSTALL": "1",  # never `npm i` into the cache
        "NODE_PATH": str(Path(folder) / "node_modules"),  # for use_client.js's require()
    }
    return Prisma(Path(folder), env)


@pytest.fixture(scope="module")
def prisma(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Prisma:
    require_node()
    return _prisma(npm_install(PACKAGES, cache_folder(request, tmp_path_factory, "prisma-client")))


@pytest.fixture(scope="module")
def prisma7(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Prisma:
    require_node()
    return _prisma(npm_install(EXAMPLE, cache_folder(request, tmp_path_factory, "nextjs-example")))


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    path = tmp_path / "schema.prisma"
    path.write_text(export(Base.metadata), encoding="utf-8")
    return path


def test_prisma_validates_the_exported_schema(prisma: Prisma, exported: Path) -> None:
    output = prisma.run("validate", "--schema", str(exported))
    assert "is valid" in output


def test_prisma_7_validates_and_generates_the_export(prisma7: Prisma) -> None:
    """`--prisma 7`: no url in the datasource (Prisma 7 refuses one), prisma.config.ts beside
    package.json, the `prisma-client` generator; the generated TypeScript client has the
    extended tables (type-checked with tsc)."""
    assert re.search(r"^prisma +: 7\.", prisma7.run("--version"), re.M)
    work = prisma7.folder / "runs" / uuid.uuid4().hex
    # The folder is also where tests/examples builds the example (whose type check would read
    # this run's files): one at a time.
    with (prisma7.folder / ".build-lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        _prisma_7_run(prisma7, work)


def _prisma_7_run(prisma7: Prisma, work: Path) -> None:
    try:
        export_schema(work / "prisma" / "schema.prisma", 7, work / "prisma.config.ts")
        text = (work / "prisma" / "schema.prisma").read_text()
        assert 'provider = "prisma-client"' in text and "url" not in text.split("model ")[0]
        config = ["--config", str(work / "prisma.config.ts")]
        assert "is valid" in prisma7.run("validate", *config)
        assert "Generated Prisma Client (7." in prisma7.run("generate", *config)
        shutil.copyfile(PACKAGES / "use_client7.ts", work / "use_client7.ts")
        done = subprocess.run(
            [str(prisma7.folder / "node_modules" / ".bin" / "tsc"), "--noEmit", "--strict",
             "--skipLibCheck", "--target", "es2022", "--module", "esnext",
             "--moduleResolution", "bundler", str(work / "use_client7.ts")],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

        # Prisma 6's export (url in the datasource) is refused by Prisma 7.
        (work / "prisma" / "schema.prisma").write_text(export(Base.metadata, 6))
        refused = subprocess.run(
            [str(prisma7.folder / "node_modules" / ".bin" / "prisma"), "validate", *config],
            env=prisma7.env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert refused.returncode != 0 and "url" in refused.stdout + refused.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_example_uses_the_prisma_7_export() -> None:
    """examples/nextjs keeps the schema and config that `prisma export --prisma 7
    -o prisma/schema.prisma --config-output prisma.config.ts` writes: regenerate them so."""
    assert (EXAMPLE / "prisma" / "schema.prisma").read_text() == export(Base.metadata, 7)
    assert (EXAMPLE / "prisma.config.ts").read_text() == config_ts("prisma/schema.prisma")


def test_the_left_out_indexes_are_listed_above_their_models(exported: Path) -> None:
    text = exported.read_text()
    for model in ("Conversation", "Message"):
        above = text[: text.index(f"model {model} {{")].rsplit("}", 1)[-1]
        assert "//   @@index([userId, searchVector], type: Gin)" in above
        assert "btree_gin" in above


# -- a generated client against a database at head -------------------------------------


async def _seed(url: str) -> dict[str, str]:
    """A user with a session and a conversation: a question, an earlier answer (a previous
    version) and the current answer with its usage, as the chat endpoint stores them."""
    ids = {k: cuid() for k in ("user", "conversation", "question", "earlier", "answer")}
    ids["token"] = cuid()
    start = datetime(2026, 3, 1, 12, 0, 0)
    connection = await asyncpg.connect(to_libpq(url))
    try:
        await connection.execute(
            'INSERT INTO users (id, email, "updatedAt") VALUES ($1, $2, $3)',
            ids["user"], "frontend@example.com", start,
        )  # fmt: skip
        await connection.execute(
            'INSERT INTO sessions (id, "sessionToken", "userId", expires) VALUES ($1, $2, $3, $4)',
            cuid(), ids["token"], ids["user"], datetime.now() + timedelta(days=1),
        )  # fmt: skip
        await connection.execute(
            'INSERT INTO conversations (id, title, "userId", "createdAt", "updatedAt") '
            "VALUES ($1, 'Sourdough', $2, $3, $3)",
            ids["conversation"], ids["user"], start,
        )  # fmt: skip
        # Revision 0012: the conversation's settings, its model-made title and what it cost.
        await connection.execute(
            'UPDATE conversations SET "systemPrompt" = $2, model = $3, temperature = $4, '
            '"maxOutputTokens" = $5, "titleSource" = $6 WHERE id = $1',
            ids["conversation"], "Bake well.", "gemini/gemini-2.5-flash", 0.7, 400, "model",
        )  # fmt: skip
        await connection.execute(
            'INSERT INTO title_usages (id, "userId", "conversationId", model, provider, status, '
            '"promptTokens", "completionTokens") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
            cuid(), ids["user"], ids["conversation"], "groq/llama-3.1-8b-instant", "groq",
            "complete", 40, 4,
        )  # fmt: skip
        insert = (
            'INSERT INTO messages (id, content, role, model, "conversationId", "userId", '
            '"createdAt", status, provider, "promptTokens", "completionTokens", '
            '"tokensEstimated", "finishReason", attempts, "promptMessageIds", "replyToId", '
            '"supersededAt") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, '
            "$14, $15, $16, $17)"
        )
        conversation, user = ids["conversation"], ids["user"]
        await connection.execute(
            insert, ids["question"], "How long to proof?", "user", None, conversation, user,
            start, "complete", None, None, None, None, None, None, [], None, None,
        )  # fmt: skip
        await connection.execute(
            insert, ids["earlier"], "About 4 h", "assistant", "groq", conversation, user,
            start + timedelta(seconds=1), "cancelled", "groq", 20, 3, True, "cancelled",
            None, [ids["question"]], ids["question"], start + timedelta(seconds=5),
        )  # fmt: skip
        await connection.execute(
            insert, ids["answer"], "4 to 6 hours at 24 °C.", "assistant", "gemini",
            conversation, user, start + timedelta(seconds=6), "complete", "gemini", 21, 9,
            False, "stop", json.dumps([{"provider": "gemini", "ok": True}]),
            [ids["question"]], ids["question"], None,
        )  # fmt: skip
        await connection.execute(
            'UPDATE messages SET reasoning = $2, temperature = $3 WHERE id = $1',
            ids["answer"], "Warm kitchens proof faster.", 0.7,
        )  # fmt: skip
        # Revision 0018: the tree (both answers are children of the question) and its leaf.
        await connection.execute(
            'UPDATE messages SET "parentId" = $1 WHERE id = ANY($2::text[])',
            ids["question"], [ids["earlier"], ids["answer"]],
        )  # fmt: skip
        await connection.execute(
            'UPDATE conversations SET "currentLeafId" = $2 WHERE id = $1',
            ids["conversation"], ids["answer"],
        )  # fmt: skip
    finally:
        await connection.close()
    return ids


async def _fetch(url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        return [dict(r) for r in await connection.fetch(query, *args)]
    finally:
        await connection.close()


@pytest.fixture
def generated_client(prisma: Prisma, exported: Path) -> Iterator[Path]:
    """The client generated from the export with the driver-adapter generator."""
    # Inside the install folder: `generate` finds @prisma/client from the schema's folder.
    work = prisma.folder / "runs" / uuid.uuid4().hex
    work.mkdir(parents=True)
    output = work / "generated"
    text, replaced = re.subn(
        r"generator client \{.*?\n\}", GENERATOR % output, exported.read_text(), count=1, flags=re.S
    )
    assert replaced == 1
    (work / "schema.prisma").write_text(text, encoding="utf-8")
    try:
        prisma.run("validate", "--schema", str(work / "schema.prisma"))
        prisma.run("generate", "--schema", str(work / "schema.prisma"))
        yield output
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def test_a_generated_client_reads_and_writes_the_extended_tables(
    prisma: Prisma, generated_client: Path, databases: DatabaseFactory, settings: Settings
) -> None:
    url = databases.create()
    in_thread(migrate.upgrade, url)
    ids = await _seed(url)
    done = await asyncio.to_thread(
        subprocess.run,
        ["node", str(PACKAGES / "use_client.js"), str(generated_client)],
        env={**prisma.env, "DATABASE_URL": to_libpq(url), "USER_ID": ids["user"],
             "CONVERSATION_ID": ids["conversation"], "ANSWER_ID": ids["answer"]},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)

    read = result["read"]
    assert read["title"] == "Sourdough"
    assert [m["id"] for m in read["messages"]] == [ids["question"], ids["earlier"], ids["answer"]]
    question, earlier, answer = read["messages"]
    assert sorted(r["id"] for r in question["replies"]) == sorted([ids["earlier"], ids["answer"]])
    assert sorted(r["id"] for r in question["children"]) == sorted([ids["earlier"], ids["answer"]])
    assert (read["currentLeafId"], answer["parentId"]) == (ids["answer"], ids["question"])
    assert (earlier["status"], earlier["supersededAt"], earlier["tokensEstimated"]) == (
        "cancelled", "2026-03-01T12:00:05.000Z", True,
    )  # fmt: skip
    assert {k: answer[k] for k in ("status", "provider", "promptTokens", "completionTokens",
                                   "finishReason", "replyToId", "supersededAt")} == {
        "status": "complete", "provider": "gemini", "promptTokens": 21, "completionTokens": 9,
        "finishReason": "stop", "replyToId": ids["question"], "supersededAt": None,
    }  # fmt: skip
    assert answer["attempts"] == [{"provider": "gemini", "ok": True}]
    assert answer["promptMessageIds"] == [ids["question"]]
    assert "searchVector" not in answer  # Unsupported: never read or written by Prisma
    assert (answer["reasoning"], answer["temperature"]) == ("Warm kitchens proof faster.", 0.7)
    assert {k: read[k] for k in ("systemPrompt", "model", "temperature", "maxOutputTokens",
                                 "titleSource")} == {
        "systemPrompt": "Bake well.", "model": "gemini/gemini-2.5-flash", "temperature": 0.7,
        "maxOutputTokens": 400, "titleSource": "model",
    }  # fmt: skip
    assert [(u["model"], u["promptTokens"]) for u in read["titleUsages"]] == [
        ("groq/llama-3.1-8b-instant", 40)
    ]

    # Rows Prisma wrote get the database defaults, and the generated search vectors.
    created = result["created"]
    rows = await _fetch(
        url,
        'SELECT m.id, m.status, m."promptMessageIds", m."searchVector" IS NOT NULL AS indexed, '
        'c."updatedAt" FROM messages m JOIN conversations c ON c.id = m."conversationId" '
        'WHERE m."conversationId" = $1 ORDER BY m."createdAt"',
        created["id"],
    )
    assert [r["id"] for r in rows] == [created["messages"][0]["id"], result["followUp"]["id"]]
    assert all(
        (r["status"], r["promptMessageIds"], r["indexed"]) == ("complete", [], True) for r in rows
    )
    assert rows[0]["updatedAt"] is not None and len(created["id"]) == 25

    # The reaction, and the unique index that makes a second identical one fail.
    assert result["reaction"]["type"] == "thumbs_up"
    assert result["duplicate"] == "P2002"
    assert [r["type"] for r in result["answer"]["reactions"]] == ["thumbs_up"]
    assert result["answer"]["replyTo"] == {"id": ids["question"]}

    # The backend serves what Prisma wrote.
    app = create_app(
        settings.model_copy(update={"database_url": url}), database=Database.from_url(url, settings)
    )
    async with http_client(app) as client:
        bearer = {"authorization": f"Bearer {ids['token']}"}
        detail = (await client.get(f"/api/conversations/{created['id']}", headers=bearer)).json()
        assert [m["content"] for m in detail["messages"]] == [
            "Hello from the frontend",
            "And a second one",
        ]
        page = await client.get(
            f"/api/conversations/{ids['conversation']}/messages", headers=bearer
        )
        current = page.json()["messages"][-1]
        assert (current["id"], current["reactions"]) == (ids["answer"], ["thumbs_up"])
        # The tag and the pin Prisma wrote (revision 0013): first in the list, with its tag.
        assert [t["tag"]["name"] for t in result["tagged"]["tags"]] == ["Baking"]
        listed = (await client.get("/api/conversations", headers=bearer)).json()["conversations"]
        assert listed[0]["id"] == created["id"] and listed[0]["pinnedAt"] is not None
        assert listed[0]["tags"] == [
            {"id": result["tag"]["id"], "name": "Baking", "color": "#b45309"}
        ]
