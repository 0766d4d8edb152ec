"""Share links (issue 24, item 2): read-only snapshots of a conversation at an unguessable URL.

A share holds a copy of what the conversation showed when it was shared (its title and the
current version of each message: role, text, model, time, status), so later messages, edits
and regenerations do not reach it. The link's token is never stored: only its SHA-256
(`tokenHash`, unique), so someone who reads the database cannot open the links.

The rows go with the conversation (`conversationId` ON DELETE CASCADE: a permanent delete or
the trash purge removes them) and with the user; a trashed conversation's shares stay but
answer nothing until it is restored (the lookup joins the conversation, not in the trash).
`("userId", "createdAt")` pages a user's list of shares.

Revision ID: 0014_shares
Revises: 0013_pins_archive_tags
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_shares"
down_revision: str | None = "0013_pins_archive_tags"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE "conversation_shares" (
    "id" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "conversationId" TEXT NOT NULL,
    "tokenHash" TEXT NOT NULL,
    "title" TEXT,
    "messages" JSONB NOT NULL,
    "messageCount" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "conversation_shares_pkey" PRIMARY KEY ("id")
)"""
    )
    op.execute(
        'CREATE UNIQUE INDEX "conversation_shares_tokenHash_key" '
        'ON "conversation_shares" ("tokenHash")'
    )
    op.execute(
        'CREATE INDEX "conversation_shares_userId_createdAt_idx" '
        'ON "conversation_shares" ("userId", "createdAt")'
    )
    op.execute(
        'CREATE INDEX "conversation_shares_conversationId_idx" '
        'ON "conversation_shares" ("conversationId")'
    )
    op.execute(
        'ALTER TABLE "conversation_shares" ADD CONSTRAINT "conversation_shares_userId_fkey" '
        'FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE'
    )
    op.execute(
        'ALTER TABLE "conversation_shares" ADD CONSTRAINT '
        '"conversation_shares_conversationId_fkey" FOREIGN KEY ("conversationId") '
        'REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE CASCADE'
    )


def downgrade() -> None:
    op.execute('DROP TABLE "conversation_shares"')
