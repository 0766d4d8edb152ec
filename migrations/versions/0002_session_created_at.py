"""sessions.createdAt: when a session began, for the session list.

Nullable with a default: Prisma's client (which knows nothing of the column) still inserts
rows, and they get the time of insertion.

Revision ID: 0002_session_created_at
Revises: 0001_prisma_baseline
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_session_created_at"
down_revision: str | None = "0001_prisma_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        'ALTER TABLE "sessions" ADD COLUMN "createdAt" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP'
    )


def downgrade() -> None:
    op.execute('ALTER TABLE "sessions" DROP COLUMN "createdAt"')
