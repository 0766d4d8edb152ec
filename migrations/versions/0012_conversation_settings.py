"""Per-conversation settings, model-made titles and reasoning (issue 23, items 1, 3, 5).

- conversations: `systemPrompt`, `model`, `temperature`, `maxOutputTokens` (NULL: the user's
  or the server's default), and `titleSource` (`user` when the person set the title, `model`
  when a title model made it; NULL: the first words of the question).
- messages: what each answer was made with (`systemPrompt`, `temperature`,
  `maxOutputTokens`), and the model's `reasoning`, kept apart from the answer's text.
- user_preferences: a default `systemPrompt` for new conversations.
- title_usages: one row per title a model made (or failed to make), so that its tokens count
  in the user's usage like an answer's.

All columns are nullable and the table is new: Prisma clients of the earlier schema keep
working.

Revision ID: 0012_conversation_settings
Revises: 0011_lease_index
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_conversation_settings"
down_revision: str | None = "0011_lease_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        'ALTER TABLE "conversations" ADD COLUMN "systemPrompt" TEXT, '
        'ADD COLUMN "model" TEXT, ADD COLUMN "temperature" DOUBLE PRECISION, '
        'ADD COLUMN "maxOutputTokens" INTEGER, ADD COLUMN "titleSource" TEXT'
    )
    op.execute(
        'ALTER TABLE "messages" ADD COLUMN "reasoning" TEXT, ADD COLUMN "systemPrompt" TEXT, '
        'ADD COLUMN "temperature" DOUBLE PRECISION, ADD COLUMN "maxOutputTokens" INTEGER'
    )
    op.execute('ALTER TABLE "user_preferences" ADD COLUMN "systemPrompt" TEXT')
    op.execute(
        """
        CREATE TABLE "title_usages" (
            "id" TEXT NOT NULL,
            "userId" TEXT NOT NULL,
            "conversationId" TEXT NOT NULL,
            "model" TEXT NOT NULL,
            "provider" TEXT NOT NULL,
            "status" TEXT NOT NULL,
            "promptTokens" INTEGER,
            "completionTokens" INTEGER,
            "tokensEstimated" BOOLEAN,
            "errorCode" TEXT,
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            CONSTRAINT "title_usages_pkey" PRIMARY KEY ("id"),
            CONSTRAINT "title_usages_userId_fkey" FOREIGN KEY ("userId")
                REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE,
            CONSTRAINT "title_usages_conversationId_fkey" FOREIGN KEY ("conversationId")
                REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE CASCADE
        )
        """
    )
    op.execute(
        'CREATE INDEX "title_usages_userId_createdAt_idx" ON "title_usages" ("userId", "createdAt")'
    )
    op.execute(
        'CREATE INDEX "title_usages_conversationId_idx" ON "title_usages" ("conversationId")'
    )


def downgrade() -> None:
    op.execute('DROP TABLE "title_usages"')
    op.execute('ALTER TABLE "user_preferences" DROP COLUMN "systemPrompt"')
    op.execute(
        'ALTER TABLE "messages" DROP COLUMN "reasoning", DROP COLUMN "systemPrompt", '
        'DROP COLUMN "temperature", DROP COLUMN "maxOutputTokens"'
    )
    op.execute(
        'ALTER TABLE "conversations" DROP COLUMN "systemPrompt", DROP COLUMN "model", '
        'DROP COLUMN "temperature", DROP COLUMN "maxOutputTokens", DROP COLUMN "titleSource"'
    )
