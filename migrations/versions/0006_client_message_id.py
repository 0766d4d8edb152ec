"""Messages remember the client's id for the question (idempotent chat requests).

A client that retries `POST /api/chat` (a timeout, a dropped connection, the AI SDK resending
its last message) sends the same client message id again; the unique index lets the server find
the earlier exchange instead of storing the question twice. NULLs are distinct, so rows without
an id (older ones, answers, rows Prisma writes) are unaffected.

Revision ID: 0006_client_message_id
Revises: 0005_reply_index
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_client_message_id"
down_revision: str | None = "0005_reply_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('ALTER TABLE "messages" ADD COLUMN "clientMessageId" TEXT')
    op.execute(
        'CREATE UNIQUE INDEX "messages_userId_clientMessageId_key" '
        'ON "messages"("userId", "clientMessageId")'
    )


def downgrade() -> None:
    op.execute('DROP INDEX "messages_userId_clientMessageId_key"')
    op.execute('ALTER TABLE "messages" DROP COLUMN "clientMessageId"')
