"""Alembic, driven from code, so `chatwithme db ...` works from any working directory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.models import Base
from app.db.pooler import engine_connect_args
from app.db.url import display, to_async_url
from app.lib.errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Kept out of the ini options: configparser would read a "%" in a password as interpolation.
    config.attributes["database_url"] = database_url
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql:///unused")).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions in {MIGRATIONS_DIR}")
    return head


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "-1") -> None:
    command.downgrade(alembic_config(database_url), revision)


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database stands against the code's migrations and models."""

    current: str | None
    head: str
    differences: list[str] = field(default_factory=list)

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def ok(self) -> bool:
        return self.at_head and not self.differences


# Tables other tools keep in the same database; not the app's to compare.
FOREIGN_TABLES = frozenset({"_prisma_migrations"})


def _ours(name: str | None, kind: str, parent: object) -> bool:
    return not (kind == "table" and name in FOREIGN_TABLES)


def _inspect(connection: Connection) -> tuple[str | None, list[str]]:
    context = MigrationContext.configure(
        connection, opts={"compare_server_default": True, "include_name": _ours}
    )
    diffs = compare_metadata(context, Base.metadata)
    return context.get_current_revision(), [_describe(diff) for diff in diffs]


def _describe(diff: object) -> str:
    if isinstance(diff, list):  # modify_* entries come grouped per column
        return "; ".join(_describe(item) for item in diff)
    if isinstance(diff, tuple) and diff:
        names = [getattr(part, "name", None) for part in diff[1:]]
        return f"{diff[0]} {' '.join(str(n) for n in names if n)}".strip()
    return str(diff)


async def _status(database_url: str) -> SchemaStatus:
    engine = create_async_engine(
        to_async_url(database_url),
        poolclass=pool.NullPool,
        connect_args={"timeout": 5, **engine_connect_args(database_url)},
    )
    try:
        async with engine.connect() as connection:
            current, differences = await connection.run_sync(_inspect)
    except (OSError, TimeoutError, DBAPIError) as exc:
        raise unreachable(database_url, exc) from None
    finally:
        await engine.dispose()
    head = head_revision()
    if current != head:
        differences = []  # only meaningful once the revisions are applied
    return SchemaStatus(current=current, head=head, differences=differences)


def unreachable(database_url: str, exc: BaseException) -> ConfigurationError:
    """A one-line error naming the database (without its password) and the cause."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    where = display(to_async_url(database_url))
    return ConfigurationError(f"cannot use the database at {where}: {reason}")


def status(database_url: str) -> SchemaStatus:
    """Current revision, head revision, and differences between the database and the models."""
    return asyncio.run(_status(database_url))


def check_writable(database_url: str) -> None:
    """Refuse a database the app cannot write to (a hot standby, or read-only transactions by
    default): it would serve reads and answer every sign-in and question with a 500."""
    reason = asyncio.run(_read_only_reason(database_url))
    if reason is not None:
        where = display(to_async_url(database_url))
        raise ConfigurationError(
            f"the database at {where} is read-only ({reason}): DATABASE_URL must name the primary"
        )


async def _read_only_reason(database_url: str) -> str | None:
    engine = create_async_engine(
        to_async_url(database_url),
        poolclass=pool.NullPool,
        connect_args={"timeout": 5, **engine_connect_args(database_url)},
    )
    try:
        async with engine.connect() as connection:
            standby, read_only = (
                await connection.execute(
                    text("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
                )
            ).one()
    except (OSError, TimeoutError, DBAPIError) as exc:
        raise unreachable(database_url, exc) from None
    finally:
        await engine.dispose()
    if standby:
        return "a hot standby, in recovery"
    if read_only == "on":
        return "transactions are read-only: default_transaction_read_only is on"
    return None
