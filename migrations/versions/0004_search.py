"""Full-text search: `searchVector` on messages and conversation titles, trigram fallback.

- `chatwithme_search`: a text search configuration copied from `english` that removes accents
  (unaccent) before stemming, so "cafe" finds "café" and "running" finds "run". To search in
  another language, point its mappings at that language's stemmer and rebuild the columns.
- `searchVector`: stored generated tsvector columns (PostgreSQL keeps them current).
- GIN indexes on ("userId", "searchVector") (btree_gin), so one index both scopes the search to
  the caller and matches the words; a trigram GIN index on content for partial words and typos.

Revision ID: 0004_search
Revises: 0003_chat_extensions
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_search"
down_revision: str | None = "0003_chat_extensions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE TEXT SEARCH CONFIGURATION chatwithme_search (COPY = english)",
    "ALTER TEXT SEARCH CONFIGURATION chatwithme_search "
    "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem",
    'ALTER TABLE "messages" ADD COLUMN "searchVector" tsvector '
    "GENERATED ALWAYS AS (to_tsvector('chatwithme_search'::regconfig, \"content\")) STORED",
    'ALTER TABLE "conversations" ADD COLUMN "searchVector" tsvector '
    "GENERATED ALWAYS AS (to_tsvector('chatwithme_search'::regconfig, coalesce(\"title\", ''))) STORED",
    'CREATE INDEX "messages_userId_searchVector_idx" ON "messages" USING GIN ("userId", "searchVector")',
    'CREATE INDEX "conversations_userId_searchVector_idx" ON "conversations" USING GIN ("userId", "searchVector")',
    'CREATE INDEX "messages_content_trgm_idx" ON "messages" USING GIN ("content" gin_trgm_ops)',
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute('DROP INDEX "messages_content_trgm_idx"')
    op.execute('DROP INDEX "conversations_userId_searchVector_idx"')
    op.execute('DROP INDEX "messages_userId_searchVector_idx"')
    op.execute('ALTER TABLE "conversations" DROP COLUMN "searchVector"')
    op.execute('ALTER TABLE "messages" DROP COLUMN "searchVector"')
    op.execute("DROP TEXT SEARCH CONFIGURATION chatwithme_search")
    # The extensions stay: other objects in the database may use them.
