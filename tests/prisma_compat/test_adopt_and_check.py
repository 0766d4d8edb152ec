"""`prisma check`, `adopt` and `export` against real databases built the way Prisma builds them."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
from collections.abc import Callable
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
from prisma_compat.commands import adopt, check
from prisma_compat.export import SEED, SHIPPED, export
from prisma_compat.schema import parse
from tests.conftest import CHATWITHME_BIN, FIXTURES, DatabaseFactory, http_client, in_thread

BASELINE_SQL = (FIXTURES / "prisma" / "baseline.sql").read_text()
# Rows as a Prisma/NextAuth app leaves them: cuid ids, millisecond timestamps set by the client.
PRISMA_ROWS = """
INSERT INTO users (id, name, email, "emailVerified", image, "createdAt", "updatedAt") VALUES
  ('clx0prismauser0000000001', 'Old Timer', 'old@example.com', '2023-02-01 10:00:00.123',
   'https://lh3.example.com/a.png', '2023-02-01 10:00:00.123', '2024-05-06 07:08:09.456');
INSERT INTO accounts (id, "userId", type, provider, "providerAccountId", access_token, expires_at,
                      token_type, scope, id_token) VALUES
  ('clx0prismaacct0000000001', 'clx0prismauser0000000001', 'oidc', 'google', '1234567890',
   'ya29.old', 1700000000, 'bearer', 'openid email profile', 'eyJ.old.token');
INSERT INTO sessions (id, "sessionToken", "userId", expires) VALUES
  ('clx0prismasess0000000001', 'b5b5c0de-0000-4000-8000-000000000001', 'clx0prismauser0000000001',
   now() + interval '20 days');
INSERT INTO conversations (id, title, "userId", "createdAt", "updatedAt") VALUES
  ('clx0prismaconv0000000001', 'From the Prisma days', 'clx0prismauser0000000001',
   '2024-01-01 09:00:00.000', '2024-01-01 09:05:00.000');
INSERT INTO messages (id, content, role, model, "conversationId", "userId", "createdAt") VALUES
  ('clx0prismamsg00000000001', 'Hello from 2024', 'user', NULL, 'clx0prismaconv0000000001',
   'clx0prismauser0000000001', '2024-01-01 09:00:00.000'),
  ('clx0prismamsg00000000002', 'Hi! (answered by groq)', 'assistant', 'groq',
   'clx0prismaconv0000000001', 'clx0prismauser0000000001', '2024-01-01 09:00:01.500');
INSERT INTO user_preferences (id, "userId", "defaultModel", theme, language, "updatedAt") VALUES
  ('clx0prismapref0000000001', 'clx0prismauser0000000001', 'gemini', 'light', 'de', now());
CREATE TABLE "_prisma_migrations" (id VARCHAR(36) PRIMARY KEY, checksum VARCHAR(64) NOT NULL,
  migration_name VARCHAR(255) NOT NULL, started_at TIMESTAMPTZ NOT NULL DEFAULT now());
"""


async def _sql(url: str, statement: str) -> None:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _fetch(url: str, query: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        return [dict(r) for r in await connection.fetch(query)]
    finally:
        await connection.close()


@pytest.fixture
def prisma_database(databases: DatabaseFactory) -> Callable[..., str]:
    """A database made by Prisma's DDL, optionally with its rows, optionally altered."""

    def make(rows: bool = True, alter: str | None = None) -> str:
        url = databases.create()
        in_thread(asyncio.run, _sql(url, BASELINE_SQL + (PRISMA_ROWS if rows else "")))
        if alter:
            in_thread(asyncio.run, _sql(url, alter))
        return url

    return make


def test_the_seed_schema_matches_a_database_prisma_made(
    prisma_database: Callable[..., str],
) -> None:
    report = in_thread(check, prisma_database(), SEED)
    assert report.findings == []
    assert report.ok(strict=True)


@pytest.mark.parametrize(
    ("alter", "table", "what"),
    [
        ("ALTER TABLE messages DROP COLUMN model", "messages", "column model: column is missing"),
        ("ALTER TABLE accounts ALTER COLUMN expires_at TYPE bigint", "accounts", "type is bigint"),
        ('DROP INDEX "users_email_key"', "users", "unique (email): unique index is missing"),
        (
            'ALTER TABLE sessions DROP CONSTRAINT "sessions_userId_fkey", ADD CONSTRAINT '
            '"sessions_userId_fkey" FOREIGN KEY ("userId") REFERENCES users(id)',
            "sessions",
            "actions are ON DELETE NoAction",
        ),
        (
            "ALTER TABLE conversations ALTER COLUMN title SET NOT NULL",
            "conversations",
            "nullability",
        ),
        (
            "ALTER TABLE user_preferences ALTER COLUMN theme SET DEFAULT 'light'",
            "user_preferences",
            "default",
        ),
        ('ALTER TABLE users ADD COLUMN "plan" TEXT NOT NULL', "users", "extra required column"),
    ],
)
def test_each_kind_of_drift_is_reported(
    prisma_database: Callable[..., str], alter: str, table: str, what: str
) -> None:
    report = in_thread(check, prisma_database(rows=False, alter=alter), SEED)
    assert not report.ok()
    assert any(f.table == table and what in f"{f.object}: {f.message}" for f in report.drift), (
        report.as_text()
    )


def test_additions_are_reported_as_additive_and_fail_only_when_strict(
    prisma_database: Callable[..., str],
) -> None:
    url = prisma_database(
        rows=False,
        alter='ALTER TABLE users ADD COLUMN "nickname" TEXT; '
        "CREATE TABLE audit (id int PRIMARY KEY); "
        'CREATE INDEX "users_name_idx" ON users(name)',
    )
    report = in_thread(check, url, SEED)
    assert report.drift == []
    assert {(f.table, f.object) for f in report.additive} == {
        ("users", "column nickname"), ("audit", "table"), ("users", "index (name)"),
    }  # fmt: skip
    assert report.ok() and not report.ok(strict=True)


async def test_adopt_brings_a_prisma_database_to_head_keeping_every_row(
    prisma_database: Callable[..., str], settings: Settings
) -> None:
    url = prisma_database()
    before = await _fetch(url, "SELECT * FROM messages ORDER BY id")
    done, message = in_thread(functools.partial(adopt, url, dry_run=True))
    assert done and "would mark" in message
    assert await _fetch(url, "SELECT to_regclass('alembic_version') AS t") == [{"t": None}]

    done, message = in_thread(adopt, url)
    assert done, message
    assert in_thread(migrate.status, url).ok
    assert in_thread(check, url, None).findings == []
    after = await _fetch(url, "SELECT * FROM messages ORDER BY id")
    assert [(r["id"], r["content"], r["createdAt"]) for r in after] == [
        (r["id"], r["content"], r["createdAt"]) for r in before
    ]
    assert {r["status"] for r in after} == {"complete"}  # new columns' defaults
    users = await _fetch(url, 'SELECT email, "updatedAt" FROM users')
    assert users[0]["updatedAt"].isoformat() == "2024-05-06T07:08:09.456000"

    again = in_thread(adopt, url)
    assert again[0] and "already managed" in again[1]

    # The running app serves it, and the session NextAuth wrote authenticates.
    app = create_app(
        settings.model_copy(update={"database_url": url}), database=Database.from_url(url, settings)
    )
    async with http_client(app) as client:
        bearer = {"authorization": "Bearer b5b5c0de-0000-4000-8000-000000000001"}
        session = (await client.get("/api/auth/session", headers=bearer)).json()
        assert session["user"]["email"] == "old@example.com"
        listed = (await client.get("/api/conversations", headers=bearer)).json()["conversations"]
        assert [(c["title"], c["messageCount"]) for c in listed] == [("From the Prisma days", 2)]
        prefs = (await client.get("/api/users/me/preferences", headers=bearer)).json()
        assert (prefs["defaultModel"], prefs["theme"], prefs["language"]) == (
            "gemini",
            "light",
            "de",
        )
        answer = await client.post(
            "/api/chat",
            json={"message": "Still here?", "conversationId": "clx0prismaconv0000000001"},
            headers=bearer,
        )
        assert answer.status_code == 200
    written = await _fetch(
        url,
        'SELECT id, "createdAt" = date_trunc(\'milliseconds\', "createdAt") AS ms FROM messages '
        "WHERE content = 'Still here?'",
    )
    assert (
        written[0]["ms"] is True
        and written[0]["id"].startswith("c")
        and len(written[0]["id"]) == 25
    )


def test_an_incompatible_database_is_refused_and_left_unchanged(
    prisma_database: Callable[..., str],
) -> None:
    url = prisma_database(alter="ALTER TABLE messages DROP COLUMN model")
    done, message = in_thread(adopt, url)
    assert not done
    assert "refused" in message and "column model" in message
    assert in_thread(asyncio.run, _fetch(url, "SELECT to_regclass('alembic_version') AS t")) == [
        {"t": None}
    ]


def test_the_shipped_schema_is_the_current_export() -> None:
    assert SHIPPED.read_text() == export(Base.metadata), (
        "prisma_compat/prisma/schema.prisma is stale: run `chatwithme prisma export -o "
        "prisma_compat/prisma/schema.prisma`"
    )


def test_export_parses_and_checks_clean_against_a_database_at_head(database_url: str) -> None:
    schema = parse(export(Base.metadata))
    assert "MessageReaction" in schema.models
    report = in_thread(check, database_url, SHIPPED)
    assert report.findings == [], report.as_text()


def test_check_compares_the_indexes_the_export_leaves_out(databases: DatabaseFactory) -> None:
    url = databases.create()
    in_thread(migrate.upgrade, url)
    in_thread(asyncio.run, _sql(url, 'DROP INDEX "messages_userId_searchVector_idx"'))
    report = in_thread(check, url, SHIPPED)
    assert [(f.table, f.object, f.message) for f in report.drift] == [
        ("messages", "index (userId, searchVector)", "index is missing")
    ]


def test_check_command_prints_json_and_exits_by_drift(
    prisma_database: Callable[..., str], database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CHATWITHME_BIN, "prisma", "check", *args], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    clean = run("--database-url", database_url, "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert json.loads(clean.stdout)["ok"] is True
    behind = run("--database-url", prisma_database(rows=False))
    assert behind.returncode == 1
    assert "DRIFT" in behind.stdout and "message_reactions" in behind.stdout
