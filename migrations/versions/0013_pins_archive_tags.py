"""Pins, the archive and tags (issue 23, item 4).

- `conversations."pinnedAt"`, `"archivedAt"`: nullable; set while pinned or archived. Pinned
  conversations come first in the list; archived ones leave it (not the trash: nothing is
  deleted, search still finds them). Two partial indexes on `("userId", "updatedAt")`, one
  per state, hold only the pinned or archived rows: the list reads the few pinned ones, then
  the rest from the existing `("userId", "updatedAt")` index, and the archived view reads only
  archived rows, whatever the account's size.
- `tags`: a user's tags (a name and a colour). Names are unique per user case-insensitively:
  a unique index on `("userId", lower(name))`, which Prisma cannot declare (an expression
  index: `prisma export` lists it in a comment, `prisma check` compares it).
- `conversation_tags`: which tags a conversation has (primary key `conversationId`, `tagId`),
  with `userId` like every user-owned table; `("tagId", "conversationId")` finds a tag's
  conversations for the list's filter. Every foreign key cascades: deleting a tag, a
  conversation or the user deletes its links.

Revision ID: 0013_pins_archive_tags
Revises: 0012_conversation_settings
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_pins_archive_tags"
down_revision: str | None = "0012_conversation_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = [
    'ALTER TABLE "conversations" ADD COLUMN "pinnedAt" TIMESTAMP(3)',
    'ALTER TABLE "conversations" ADD COLUMN "archivedAt" TIMESTAMP(3)',
    'CREATE INDEX "conversations_userId_updatedAt_pinned_idx" ON "conversations" '
    '("userId", "updatedAt") WHERE "pinnedAt" IS NOT NULL',
    'CREATE INDEX "conversations_userId_updatedAt_archived_idx" ON "conversations" '
    '("userId", "updatedAt") WHERE "archivedAt" IS NOT NULL',
    """
CREATE TABLE "tags" (
    "id"        TEXT NOT NULL,
    "userId"    TEXT NOT NULL,
    "name"      TEXT NOT NULL,
    "color"     TEXT NOT NULL DEFAULT '#6b7280',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "tags_pkey" PRIMARY KEY ("id")
)""",
    'CREATE UNIQUE INDEX "tags_userId_name_key" ON "tags" ("userId", lower("name"))',
    'ALTER TABLE "tags" ADD CONSTRAINT "tags_userId_fkey" FOREIGN KEY ("userId") '
    'REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    """
CREATE TABLE "conversation_tags" (
    "conversationId" TEXT NOT NULL,
    "tagId"          TEXT NOT NULL,
    "userId"         TEXT NOT NULL,
    "createdAt"      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "conversation_tags_pkey" PRIMARY KEY ("conversationId", "tagId")
)""",
    'CREATE INDEX "conversation_tags_tagId_conversationId_idx" ON "conversation_tags" '
    '("tagId", "conversationId")',
    'CREATE INDEX "conversation_tags_userId_idx" ON "conversation_tags" ("userId")',
    'ALTER TABLE "conversation_tags" ADD CONSTRAINT "conversation_tags_conversationId_fkey" '
    'FOREIGN KEY ("conversationId") REFERENCES "conversations"("id") '
    "ON DELETE CASCADE ON UPDATE CASCADE",
    'ALTER TABLE "conversation_tags" ADD CONSTRAINT "conversation_tags_tagId_fkey" '
    'FOREIGN KEY ("tagId") REFERENCES "tags"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "conversation_tags" ADD CONSTRAINT "conversation_tags_userId_fkey" '
    'FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute('DROP TABLE "conversation_tags"')
    op.execute('DROP TABLE "tags"')
    op.execute('DROP INDEX "conversations_userId_updatedAt_archived_idx"')
    op.execute('DROP INDEX "conversations_userId_updatedAt_pinned_idx"')
    op.execute('ALTER TABLE "conversations" DROP COLUMN "archivedAt"')
    op.execute('ALTER TABLE "conversations" DROP COLUMN "pinnedAt"')
