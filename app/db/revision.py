"""Is a database at the code's head revision? Answered without importing Alembic.

Alembic and its script directory take about a second to import and load; `serve` asks this
on every start, and runs Alembic only when the answer is no.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

VERSIONS_DIR = Path(__file__).resolve().parents[2] / "migrations" / "versions"
_REVISION = re.compile(r"^revision\b[^=]*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\b[^=]*=\s*(.+)$", re.MULTILINE)
_NAME = re.compile(r"[\"']([^\"']+)[\"']")


def script_head() -> str | None:
    """The one revision no other revision builds on; None when that is not a single one
    (several heads, or a file this reader does not understand: let Alembic decide)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN.search(text)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        parents.update(_NAME.findall(down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def _database_revisions(libpq_url: str) -> set[str]:
    import asyncpg

    connection = await asyncpg.connect(libpq_url)
    try:
        if await connection.fetchval("SELECT to_regclass('alembic_version')") is None:
            return set()
        return {row[0] for row in await connection.fetch("SELECT version_num FROM alembic_version")}
    finally:
        await connection.close()


def at_head(libpq_url: str) -> bool:
    """True when the database's only revision is the head of `migrations/versions`."""
    head = script_head()
    return head is not None and asyncio.run(_database_revisions(libpq_url)) == {head}
