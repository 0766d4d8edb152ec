"""A partial index of the conversations' generation leases.

Every `serve` process sweeps, every few seconds, the answers whose lease ran out while they
were still `streaming` (their process died). The sweep starts from the leases that ran out:
only conversations with an answer in flight, or one left by a dead process, have a lease, so
the index stays as small as the number of answers being generated.

Revision ID: 0011_lease_index
Revises: 0010_user_trigram_index
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_lease_index"
down_revision: str | None = "0010_user_trigram_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        'CREATE INDEX "conversations_generatingUntil_idx" ON "conversations" ("generatingUntil") '
        'WHERE "generatingUntil" IS NOT NULL'
    )


def downgrade() -> None:
    op.execute('DROP INDEX "conversations_generatingUntil_idx"')
