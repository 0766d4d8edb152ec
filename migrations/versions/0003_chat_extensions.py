"""Chat extensions: message status, provider, usage, timings, prompt record, versions,
reactions, a per-conversation generation lease, and the indexes of the original plan.

Every new column is nullable or defaulted, so rows a Prisma app writes without them stay
valid. Names follow the Prisma conventions (camelCase columns, plural mapped table names,
TEXT ids, TIMESTAMP(3)).

Revision ID: 0003_chat_extensions
Revises: 0002_session_created_at
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_chat_extensions"
down_revision: str | None = "0002_session_created_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = [
    """
    ALTER TABLE "messages"
        ADD COLUMN "status" TEXT NOT NULL DEFAULT 'complete',
        ADD COLUMN "provider" TEXT,
        ADD COLUMN "promptTokens" INTEGER,
        ADD COLUMN "completionTokens" INTEGER,
        ADD COLUMN "tokensEstimated" BOOLEAN,
        ADD COLUMN "timeToFirstTokenMs" INTEGER,
        ADD COLUMN "totalTimeMs" INTEGER,
        ADD COLUMN "finishReason" TEXT,
        ADD COLUMN "errorCode" TEXT,
        ADD COLUMN "attempts" JSONB,
        ADD COLUMN "promptMessageIds" TEXT[] DEFAULT ARRAY[]::TEXT[],
        ADD COLUMN "replyToId" TEXT,
        ADD COLUMN "supersededAt" TIMESTAMP(3)
    """,
    'ALTER TABLE "messages" ADD CONSTRAINT "messages_replyToId_fkey" FOREIGN KEY ("replyToId") '
    'REFERENCES "messages"("id") ON DELETE SET NULL ON UPDATE CASCADE',
    'ALTER TABLE "conversations" ADD COLUMN "generatingUntil" TIMESTAMP(3)',
    """
    CREATE TABLE "message_reactions" (
        "id" TEXT NOT NULL,
        "messageId" TEXT NOT NULL,
        "userId" TEXT NOT NULL,
        "type" TEXT NOT NULL,
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

        CONSTRAINT "message_reactions_pkey" PRIMARY KEY ("id")
    )
    """,
    'CREATE UNIQUE INDEX "message_reactions_messageId_userId_type_key" '
    'ON "message_reactions"("messageId", "userId", "type")',
    'ALTER TABLE "message_reactions" ADD CONSTRAINT "message_reactions_messageId_fkey" '
    'FOREIGN KEY ("messageId") REFERENCES "messages"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "message_reactions" ADD CONSTRAINT "message_reactions_userId_fkey" '
    'FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'CREATE INDEX "messages_conversationId_createdAt_idx" ON "messages"("conversationId", "createdAt")',
    'CREATE INDEX "messages_userId_createdAt_idx" ON "messages"("userId", "createdAt")',
    'CREATE INDEX "conversations_userId_updatedAt_idx" ON "conversations"("userId", "updatedAt")',
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute('DROP INDEX "conversations_userId_updatedAt_idx"')
    op.execute('DROP INDEX "messages_userId_createdAt_idx"')
    op.execute('DROP INDEX "messages_conversationId_createdAt_idx"')
    op.execute('DROP TABLE "message_reactions"')
    op.execute('ALTER TABLE "conversations" DROP COLUMN "generatingUntil"')
    op.execute('ALTER TABLE "messages" DROP CONSTRAINT "messages_replyToId_fkey"')
    op.execute(
        'ALTER TABLE "messages" DROP COLUMN "status", DROP COLUMN "provider", '
        'DROP COLUMN "promptTokens", DROP COLUMN "completionTokens", '
        'DROP COLUMN "tokensEstimated", DROP COLUMN "timeToFirstTokenMs", '
        'DROP COLUMN "totalTimeMs", DROP COLUMN "finishReason", DROP COLUMN "errorCode", '
        'DROP COLUMN "attempts", DROP COLUMN "promptMessageIds", DROP COLUMN "replyToId", '
        'DROP COLUMN "supersededAt"'
    )
