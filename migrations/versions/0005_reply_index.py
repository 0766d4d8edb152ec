"""Index messages("replyToId").

Without it, every deleted message makes PostgreSQL scan all messages to apply the
`replyToId` ON DELETE SET NULL, so deleting a long conversation (or a user) took minutes at a
million messages. Found by the insert benchmark's clean-up.

Revision ID: 0005_reply_index
Revises: 0004_search
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_reply_index"
down_revision: str | None = "0004_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('CREATE INDEX "messages_replyToId_idx" ON "messages"("replyToId")')


def downgrade() -> None:
    op.execute('DROP INDEX "messages_replyToId_idx"')
