"""An import's lease: the process running it renews `leaseUntil`; a `running` import whose
lease has run out lost its process (kill -9, a crash, a lost machine) and reads as
`interrupted`, so that no import says `running` for ever.

Revision ID: 0020_import_lease
Revises: 0019_files
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020_import_lease"
down_revision: str | None = "0019_files"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('ALTER TABLE "imports" ADD COLUMN "leaseUntil" TIMESTAMP(3)')


def downgrade() -> None:
    op.execute('ALTER TABLE "imports" DROP COLUMN "leaseUntil"')
