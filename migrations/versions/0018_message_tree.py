"""Messages as a tree: edits that branch (issue 23, item 2).

- `messages."parentId"`: the message this one follows (NULL: the first message of its
  conversation, or a row written by Prisma, read in linear order). A question's parent is the
  answer before it; an answer's parent is its question, so the versions of an answer
  (regenerations) are siblings, and so are the edits of a question. ON DELETE SET NULL, like
  `replyToId`: purging a message cuts its branch there instead of deleting what followed.
- `conversations."currentLeafId"`: the last message of the branch shown and continued
  (NULL: the conversation reads in linear order, as before this revision: the app sets it on
  its first write there). No foreign key: a second relation between Conversation and Message
  would make Prisma require relation names on both, the seed schema's included; a leaf that
  is gone (purged) is read as NULL.
- Index `("parentId")`: finds the siblings of a message and the children of a branch point,
  and keeps deletes from scanning the table for the foreign key.

Backfill: each message's parent is the previous message of its conversation in
(`createdAt`, `id`) order, replaced answer versions (`supersededAt`) left out of that order;
an answer's parent is its question (`replyToId`), so earlier versions become siblings of the
current one. Each conversation's leaf is its last message that is not a replaced version.

Revision ID: 0018_message_tree
Revises: 0017_replicas
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_message_tree"
down_revision: str | None = "0017_replicas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Shared with app.chat.branches.adopt_linear, which does the same for one conversation whose
# rows were written by Prisma: keep the two in step.
BACKFILL_PARENTS = """
WITH linear AS (
    SELECT id, LAG(id) OVER (PARTITION BY "conversationId" ORDER BY "createdAt", id) AS previous
    FROM "messages" WHERE "supersededAt" IS NULL
)
UPDATE "messages" m
SET "parentId" = CASE WHEN m.role = 'assistant' AND m."replyToId" IS NOT NULL
                      THEN m."replyToId" ELSE linear.previous END
FROM linear WHERE linear.id = m.id
"""
BACKFILL_VERSIONS = """
UPDATE "messages" SET "parentId" = "replyToId"
WHERE "supersededAt" IS NOT NULL AND "replyToId" IS NOT NULL
"""
BACKFILL_LEAVES = """
UPDATE "conversations" c SET "currentLeafId" = (
    SELECT m.id FROM "messages" m
    WHERE m."conversationId" = c.id AND m."supersededAt" IS NULL AND m."deletedAt" IS NULL
    ORDER BY m."createdAt" DESC, m.id DESC LIMIT 1
)
"""

UPGRADE = [
    'ALTER TABLE "messages" ADD COLUMN "parentId" TEXT',
    'ALTER TABLE "conversations" ADD COLUMN "currentLeafId" TEXT',
    BACKFILL_PARENTS,
    BACKFILL_VERSIONS,
    BACKFILL_LEAVES,
    'CREATE INDEX "messages_parentId_idx" ON "messages"("parentId")',
    'ALTER TABLE "messages" ADD CONSTRAINT "messages_parentId_fkey" FOREIGN KEY ("parentId") '
    'REFERENCES "messages"("id") ON DELETE SET NULL ON UPDATE CASCADE',
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute('ALTER TABLE "conversations" DROP COLUMN "currentLeafId"')
    op.execute('ALTER TABLE "messages" DROP COLUMN "parentId"')
