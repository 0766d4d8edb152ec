"""Imports of conversations from other apps (ChatGPT's data export) and from this API's own
export: each import's progress, and which source conversation became which conversation, so
that importing a file again creates nothing twice.

Revision ID: 0016_imports
Revises: 0015_stats_deltas
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_imports"
down_revision: str | None = "0015_stats_deltas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = [
    """
CREATE TABLE "imports" (
    "id"            TEXT NOT NULL,
    "userId"        TEXT NOT NULL,
    "source"        TEXT NOT NULL,
    "status"        TEXT NOT NULL,
    "total"         INTEGER,
    "done"          INTEGER NOT NULL DEFAULT 0,
    "duplicates"    INTEGER NOT NULL DEFAULT 0,
    "messages"      INTEGER NOT NULL DEFAULT 0,
    "skipped"       JSONB NOT NULL DEFAULT '{}',
    "error"         TEXT,
    "createdAt"     TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt"    TIMESTAMP(3),
    CONSTRAINT "imports_pkey" PRIMARY KEY ("id")
)""",
    'CREATE INDEX "imports_userId_createdAt_idx" ON "imports" ("userId", "createdAt")',
    'ALTER TABLE "imports" ADD CONSTRAINT "imports_userId_fkey" FOREIGN KEY ("userId") '
    'REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    """
CREATE TABLE "imported_conversations" (
    "userId"         TEXT NOT NULL,
    "source"         TEXT NOT NULL,
    "externalId"     TEXT NOT NULL,
    "conversationId" TEXT NOT NULL,
    CONSTRAINT "imported_conversations_pkey" PRIMARY KEY ("userId", "source", "externalId")
)""",
    'CREATE INDEX "imported_conversations_conversationId_idx" '
    'ON "imported_conversations" ("conversationId")',
    'ALTER TABLE "imported_conversations" ADD CONSTRAINT "imported_conversations_userId_fkey" '
    'FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "imported_conversations" '
    'ADD CONSTRAINT "imported_conversations_conversationId_fkey" FOREIGN KEY ("conversationId") '
    'REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE CASCADE',
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute('DROP TABLE "imported_conversations"')
    op.execute('DROP TABLE "imports"')
