"""`serve` skips Alembic when the embedded database is at head; this is how it knows."""

from __future__ import annotations

from app.db import migrate, revision
from app.db.url import to_libpq
from tests.conftest import DatabaseFactory


def test_the_head_read_without_alembic_is_alembics_head() -> None:
    assert revision.script_head() == migrate.head_revision()


def test_a_database_is_at_head_only_when_migrated_to_it(databases: DatabaseFactory) -> None:
    url = databases.create()
    assert not revision.at_head(to_libpq(url))  # empty: no alembic_version table
    migrate.upgrade(url)
    assert revision.at_head(to_libpq(url))
    migrate.downgrade(url, "-1")
    assert not revision.at_head(to_libpq(url))
