"""Attachments (issue 24, item 1): uploaded files, their bytes in chunks, and which user
message carries which file.

`files` holds one row per stored content of a user: (userId, sha256) is unique, so a file sent
twice by the same user is stored once. Deduplication is per user, not global: each user's
quota counts exactly the bytes they sent, deleting a user deletes their bytes (a cascade, no
reference counting across users), and no one can learn whether someone else holds a file.

`file_chunks` holds the bytes, 1 MiB a row, `STORAGE EXTERNAL` (out of line, not compressed:
images and PDF are compressed already, so TOAST's compression would only cost CPU).
`sha256` is NULL only inside the uploading transaction, before the last byte is read.

Revision ID: 0019_files
Revises: 0018_message_tree
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_files"
down_revision: str | None = "0018_message_tree"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = [
    """
CREATE TABLE "files" (
    "id"         TEXT NOT NULL,
    "userId"     TEXT NOT NULL,
    "sha256"     TEXT,
    "mediaType"  TEXT NOT NULL,
    "size"       BIGINT NOT NULL DEFAULT 0,
    "name"       TEXT NOT NULL,
    "createdAt"  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "files_pkey" PRIMARY KEY ("id")
)""",
    'CREATE UNIQUE INDEX "files_userId_sha256_key" ON "files" ("userId", "sha256")',
    'ALTER TABLE "files" ADD CONSTRAINT "files_userId_fkey" FOREIGN KEY ("userId") '
    'REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    """
CREATE TABLE "file_chunks" (
    "fileId"  TEXT NOT NULL,
    "seq"     INTEGER NOT NULL,
    "userId"  TEXT NOT NULL,
    "data"    BYTEA NOT NULL,
    CONSTRAINT "file_chunks_pkey" PRIMARY KEY ("fileId", "seq")
)""",
    'ALTER TABLE "file_chunks" ALTER COLUMN "data" SET STORAGE EXTERNAL',
    'CREATE INDEX "file_chunks_userId_idx" ON "file_chunks" ("userId")',
    'ALTER TABLE "file_chunks" ADD CONSTRAINT "file_chunks_fileId_fkey" FOREIGN KEY ("fileId") '
    'REFERENCES "files"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "file_chunks" ADD CONSTRAINT "file_chunks_userId_fkey" FOREIGN KEY ("userId") '
    'REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    """
CREATE TABLE "message_files" (
    "messageId"  TEXT NOT NULL,
    "fileId"     TEXT NOT NULL,
    "userId"     TEXT NOT NULL,
    "position"   INTEGER NOT NULL,
    CONSTRAINT "message_files_pkey" PRIMARY KEY ("messageId", "fileId")
)""",
    'CREATE INDEX "message_files_fileId_idx" ON "message_files" ("fileId")',
    'CREATE INDEX "message_files_userId_idx" ON "message_files" ("userId")',
    'ALTER TABLE "message_files" ADD CONSTRAINT "message_files_messageId_fkey" '
    'FOREIGN KEY ("messageId") REFERENCES "messages"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "message_files" ADD CONSTRAINT "message_files_fileId_fkey" '
    'FOREIGN KEY ("fileId") REFERENCES "files"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "message_files" ADD CONSTRAINT "message_files_userId_fkey" '
    'FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute('DROP TABLE "message_files"')
    op.execute('DROP TABLE "file_chunks"')
    op.execute('DROP TABLE "files"')
