"""The baseline revision is Prisma's DDL, models and migrations agree, and revisions reverse."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.db import migrate
from app.db.url import to_libpq
from tests.conftest import FIXTURES, DatabaseFactory, in_thread

SHARED_BASELINE = Path(__file__).resolve().parents[2] / "shared" / "prisma" / "baseline.sql"

CATALOG_QUERIES = {
    "columns": """
        SELECT table_name, column_name, data_type, datetime_precision, is_nullable,
               column_default, ordinal_position
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name <> 'alembic_version'
        ORDER BY table_name, ordinal_position
    """,
    "constraints": """
        SELECT c.conrelid::regclass::text AS table_name, c.conname, c.contype,
               pg_get_constraintdef(c.oid) AS definition
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public' AND c.conrelid::regclass::text <> 'alembic_version'
        ORDER BY 1, 2
    """,
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'alembic_version'
        ORDER BY 1, 2
    """,
}


async def _catalog(url: str) -> dict[str, list[dict[str, Any]]]:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        return {
            name: [dict(row) for row in await connection.fetch(query)]
            for name, query in CATALOG_QUERIES.items()
        }
    finally:
        await connection.close()


async def _execute(url: str, sql: str) -> None:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await connection.close()


PRISMA_TABLES = {
    "users",
    "accounts",
    "sessions",
    "verificationtokens",
    "conversations",
    "messages",
    "user_preferences",
}


def test_shipped_baseline_is_the_shared_one() -> None:
    if not SHARED_BASELINE.exists():
        pytest.skip("../shared/prisma is not beside this checkout")
    assert (FIXTURES / "prisma" / "baseline.sql").read_text() == SHARED_BASELINE.read_text()


def test_baseline_revision_creates_exactly_the_prisma_ddl(databases: DatabaseFactory) -> None:
    from_prisma = databases.create()
    from_alembic = databases.create()
    in_thread(
        asyncio.run, _execute(from_prisma, (FIXTURES / "prisma" / "baseline.sql").read_text())
    )
    in_thread(migrate.upgrade, from_alembic, "0001_prisma_baseline")

    prisma_catalog = in_thread(asyncio.run, _catalog(from_prisma))
    alembic_catalog = in_thread(asyncio.run, _catalog(from_alembic))

    assert len(prisma_catalog["columns"]) == 45
    assert len(prisma_catalog["indexes"]) == 12  # six primary keys, six unique indexes
    for part in CATALOG_QUERIES:
        assert alembic_catalog[part] == prisma_catalog[part], part


def test_upgrade_downgrade_upgrade(databases: DatabaseFactory) -> None:
    url = databases.create()
    in_thread(migrate.upgrade, url)
    assert in_thread(asyncio.run, _tables(url)) >= PRISMA_TABLES

    in_thread(migrate.downgrade, url, "base")
    assert in_thread(asyncio.run, _tables(url)) == {"alembic_version"}
    assert in_thread(migrate.status, url).current is None

    in_thread(migrate.upgrade, url)
    assert in_thread(migrate.status, url).at_head


def test_models_match_the_migrated_database(database_url: str) -> None:
    state = in_thread(migrate.status, database_url)
    assert state.at_head
    assert state.differences == []


def test_check_reports_a_database_that_drifted_from_the_models(
    databases: DatabaseFactory,
) -> None:
    url = databases.create()
    in_thread(migrate.upgrade, url)
    in_thread(asyncio.run, _execute(url, 'ALTER TABLE "messages" DROP COLUMN "finishReason"'))
    state = in_thread(migrate.status, url)
    assert state.at_head
    assert not state.ok
    assert any("finishReason" in difference for difference in state.differences)


def test_db_commands_work_from_any_directory(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        ["chatwithme", "db", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"current: {migrate.head_revision()}" in result.stdout
