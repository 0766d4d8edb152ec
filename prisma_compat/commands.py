"""`chatwithme prisma check | adopt | export`."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from app.db.pooler import driver_connect_args
from app.db.url import to_libpq
from prisma_compat.export import (
    DEFAULT_PRISMA,
    SEED,
    SHIPPED,
    config_ts,
    database_only_indexes,
    export,
)
from prisma_compat.schema import PrismaSchemaError, parse
from prisma_compat.shape import Finding, Shape, compare, from_database, from_schema

BASELINE_REVISION = "0001_prisma_baseline"


@dataclass(frozen=True, slots=True)
class Report:
    schema: Path
    findings: list[Finding]

    @property
    def drift(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "drift"]

    @property
    def additive(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "additive"]

    def ok(self, strict: bool = False) -> bool:
        return not self.drift and not (strict and self.additive)

    def as_text(self) -> str:
        if not self.findings:
            return f"the database matches {self.schema}"
        lines = [f"compared with {self.schema}:"]
        for finding in self.findings:
            mark = "DRIFT   " if finding.severity == "drift" else "additive"
            lines.append(f"  {mark} {finding.table}: {finding.object}: {finding.message}")
        lines.append(f"{len(self.drift)} drift, {len(self.additive)} additive")
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps(
            {"schema": str(self.schema), "ok": not self.drift,
             "findings": [f.as_dict() for f in self.findings]},
            indent=2,
        )  # fmt: skip


def _with_database_only_indexes(expected: Shape) -> Shape:
    """Add the indexes the export cannot write (see `database_only_indexes`) to every table
    the schema declares as the models have it at head (every column), so `check` compares the
    whole database. A table as an older schema has it (Prisma's seed) expects none of them."""
    from app.db.models import Base

    for table_name, indexes in database_only_indexes(Base.metadata).items():
        table = expected.get(table_name)
        at_head = {column.name for column in Base.metadata.tables[table_name].columns}
        if table is None or not at_head <= set(table.columns):
            continue
        table.indexes.update(indexes)
    return expected


async def _check(database_url: str, schema_path: Path, source: str) -> Report:
    expected = _with_database_only_indexes(from_schema(parse(source)))
    connection = await _connect(database_url)
    try:
        actual = await from_database(connection)
    finally:
        await connection.close()
    return Report(schema_path, compare(expected, actual))


async def _connect(database_url: str) -> asyncpg.Connection:
    # Through a pooler in transaction mode (`?pgbouncer=true`) nothing may stay prepared.
    return await asyncpg.connect(
        to_libpq(database_url), timeout=10, **driver_connect_args(database_url)
    )


def check(database_url: str, schema_path: Path | None = None) -> Report:
    """Compare the live database with a schema.prisma (default: the shipped one, at head)."""
    path = schema_path or SHIPPED
    try:
        return asyncio.run(_check(database_url, path, path.read_text(encoding="utf-8")))
    except PrismaSchemaError as exc:
        from app.lib.errors import ConfigurationError

        raise ConfigurationError(f"{path}: {exc}") from None


async def _alembic_revision(database_url: str) -> str | None:
    connection = await _connect(database_url)
    try:
        if not await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL"):
            return None
        return str(await connection.fetchval("SELECT version_num FROM alembic_version"))
    finally:
        await connection.close()


def adopt(database_url: str, *, dry_run: bool = False) -> tuple[bool, str]:
    """Bring a Prisma-made database under Alembic: check, stamp the baseline, upgrade.

    Returns (done or would be done, what happened). Existing rows are never touched; an
    incompatible database is refused with the drift report and left unchanged.
    """
    from alembic import command

    from app.db import migrate

    revision = asyncio.run(_alembic_revision(database_url))
    if revision is not None:
        if dry_run:
            return True, f"already managed by Alembic at {revision}; would upgrade to head"
        migrate.upgrade(database_url)
        return True, f"already managed by Alembic ({revision}); now at {migrate.head_revision()}"
    report = check(database_url, SEED)
    if not report.ok():
        return False, "refused: the database does not match Prisma's schema\n" + report.as_text()
    if dry_run:
        return True, f"compatible; would mark {BASELINE_REVISION} as applied and upgrade to head"
    command.stamp(migrate.alembic_config(database_url), BASELINE_REVISION)
    migrate.upgrade(database_url)
    return True, f"adopted: baseline marked as applied, upgraded to {migrate.head_revision()}"


def export_schema(
    output: Path | None, prisma: int = DEFAULT_PRISMA, config_output: Path | None = None
) -> str:
    """schema.prisma for Prisma 6 or 7 (written to `output` when given, and returned). For
    Prisma 7, `config_output` also writes prisma.config.ts, pointing at `output`."""
    from app.db.models import Base

    text = export(Base.metadata, prisma)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    if config_output is not None:
        if prisma < 7:
            raise ValueError("prisma.config.ts is written for Prisma 7 (--prisma 7)")
        schema = "prisma/schema.prisma"
        if output is not None:
            schema = os.path.relpath(output.resolve(), config_output.resolve().parent)
        config_output.parent.mkdir(parents=True, exist_ok=True)
        config_output.write_text(config_ts(Path(schema).as_posix()), encoding="utf-8")
    return text
