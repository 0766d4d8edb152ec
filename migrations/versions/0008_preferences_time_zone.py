"""Preferences remember the user's time zone: the day a daily quota counts is theirs.

NULL (every existing row, and rows Prisma writes without it) means UTC.

Revision ID: 0008_preferences_time_zone
Revises: 0007_stats_rollups
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_preferences_time_zone"
down_revision: str | None = "0007_stats_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('ALTER TABLE "user_preferences" ADD COLUMN "timeZone" TEXT')


def downgrade() -> None:
    op.execute('ALTER TABLE "user_preferences" DROP COLUMN "timeZone"')
