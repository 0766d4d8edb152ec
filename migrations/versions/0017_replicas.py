"""Read-your-writes with read replicas: each user's last write position on the primary.

After a request that wrote commits, the app records the primary's WAL write position for that
user here (only when DATABASE_REPLICA_URLS is set); a read goes to a replica only once the
replica has replayed that far (app/db/replicas.py). Every process reads the same row, so the
guarantee holds whichever process serves the next read.

UNLOGGED: the row is a hint for routing, rewritten on every write; it needs no WAL of its own
(which would itself have to be replayed) and is not wanted on the replicas. A crash of the
primary empties it, which only means reads may go to a replica no more than
DB_REPLICA_MAX_LAG behind. No foreign key: the upsert runs after the user's own commit and
must not fail (or check `users`) when the user was deleted meanwhile; ids are never reused.

Revision ID: 0017_replicas
Revises: 0016_imports
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_replicas"
down_revision: str | None = "0016_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
CREATE UNLOGGED TABLE "write_positions" (
    "userId"    TEXT NOT NULL,
    "lsn"       BIGINT NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "write_positions_pkey" PRIMARY KEY ("userId")
)"""
    )


def downgrade() -> None:
    op.execute('DROP TABLE "write_positions"')
