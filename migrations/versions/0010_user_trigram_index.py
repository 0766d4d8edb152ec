"""The trigram index of message contents leads with "userId".

The fuzzy search (partial words, typos) looks only at the caller's messages. With trigrams of
every user's messages in one index, PostgreSQL either found all users' candidates and then
kept the caller's (85 ms for a user with 900 messages, in a database of a million), or walked
the caller's rows and compared each one. With "userId" first (btree_gin, as for the search
vectors of revision 0004) one index scan finds only the caller's candidates: 4 ms.

Revision ID: 0010_user_trigram_index
Revises: 0009_trash
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_user_trigram_index"
down_revision: str | None = "0009_trash"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        'CREATE INDEX "messages_userId_content_trgm_idx" ON "messages" '
        'USING GIN ("userId", "content" gin_trgm_ops)'
    )
    op.execute('DROP INDEX "messages_content_trgm_idx"')


def downgrade() -> None:
    op.execute(
        'CREATE INDEX "messages_content_trgm_idx" ON "messages" USING GIN ("content" gin_trgm_ops)'
    )
    op.execute('DROP INDEX "messages_userId_content_trgm_idx"')
