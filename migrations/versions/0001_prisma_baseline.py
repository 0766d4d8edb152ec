"""Prisma baseline: the seven NextAuth and chat tables, exactly as Prisma 6.19 creates them.

The SQL is `prisma migrate diff --from-empty --to-schema-datamodel schema.prisma --script`,
unchanged, so a database made by `prisma migrate` and one made here are the same.

Revision ID: 0001_prisma_baseline
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001_prisma_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = [
    'CREATE SCHEMA IF NOT EXISTS "public"',
    """
    CREATE TABLE "users" (
        "id" TEXT NOT NULL,
        "name" TEXT,
        "email" TEXT NOT NULL,
        "emailVerified" TIMESTAMP(3),
        "image" TEXT,
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updatedAt" TIMESTAMP(3) NOT NULL,

        CONSTRAINT "users_pkey" PRIMARY KEY ("id")
    )
    """,
    """
    CREATE TABLE "accounts" (
        "id" TEXT NOT NULL,
        "userId" TEXT NOT NULL,
        "type" TEXT NOT NULL,
        "provider" TEXT NOT NULL,
        "providerAccountId" TEXT NOT NULL,
        "refresh_token" TEXT,
        "access_token" TEXT,
        "expires_at" INTEGER,
        "token_type" TEXT,
        "scope" TEXT,
        "id_token" TEXT,
        "session_state" TEXT,

        CONSTRAINT "accounts_pkey" PRIMARY KEY ("id")
    )
    """,
    """
    CREATE TABLE "sessions" (
        "id" TEXT NOT NULL,
        "sessionToken" TEXT NOT NULL,
        "userId" TEXT NOT NULL,
        "expires" TIMESTAMP(3) NOT NULL,

        CONSTRAINT "sessions_pkey" PRIMARY KEY ("id")
    )
    """,
    """
    CREATE TABLE "verificationtokens" (
        "identifier" TEXT NOT NULL,
        "token" TEXT NOT NULL,
        "expires" TIMESTAMP(3) NOT NULL
    )
    """,
    """
    CREATE TABLE "conversations" (
        "id" TEXT NOT NULL,
        "title" TEXT,
        "userId" TEXT NOT NULL,
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updatedAt" TIMESTAMP(3) NOT NULL,

        CONSTRAINT "conversations_pkey" PRIMARY KEY ("id")
    )
    """,
    """
    CREATE TABLE "messages" (
        "id" TEXT NOT NULL,
        "content" TEXT NOT NULL,
        "role" TEXT NOT NULL,
        "model" TEXT,
        "conversationId" TEXT NOT NULL,
        "userId" TEXT NOT NULL,
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

        CONSTRAINT "messages_pkey" PRIMARY KEY ("id")
    )
    """,
    """
    CREATE TABLE "user_preferences" (
        "id" TEXT NOT NULL,
        "userId" TEXT NOT NULL,
        "defaultModel" TEXT NOT NULL DEFAULT 'groq',
        "theme" TEXT NOT NULL DEFAULT 'dark',
        "language" TEXT NOT NULL DEFAULT 'en',
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updatedAt" TIMESTAMP(3) NOT NULL,

        CONSTRAINT "user_preferences_pkey" PRIMARY KEY ("id")
    )
    """,
    'CREATE UNIQUE INDEX "users_email_key" ON "users"("email")',
    'CREATE UNIQUE INDEX "accounts_provider_providerAccountId_key" '
    'ON "accounts"("provider", "providerAccountId")',
    'CREATE UNIQUE INDEX "sessions_sessionToken_key" ON "sessions"("sessionToken")',
    'CREATE UNIQUE INDEX "verificationtokens_token_key" ON "verificationtokens"("token")',
    'CREATE UNIQUE INDEX "verificationtokens_identifier_token_key" '
    'ON "verificationtokens"("identifier", "token")',
    'CREATE UNIQUE INDEX "user_preferences_userId_key" ON "user_preferences"("userId")',
    'ALTER TABLE "accounts" ADD CONSTRAINT "accounts_userId_fkey" FOREIGN KEY ("userId") '
    'REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "sessions" ADD CONSTRAINT "sessions_userId_fkey" FOREIGN KEY ("userId") '
    'REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "conversations" ADD CONSTRAINT "conversations_userId_fkey" '
    'FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "messages" ADD CONSTRAINT "messages_conversationId_fkey" '
    'FOREIGN KEY ("conversationId") REFERENCES "conversations"("id") '
    "ON DELETE CASCADE ON UPDATE CASCADE",
    'ALTER TABLE "messages" ADD CONSTRAINT "messages_userId_fkey" FOREIGN KEY ("userId") '
    'REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
    'ALTER TABLE "user_preferences" ADD CONSTRAINT "user_preferences_userId_fkey" '
    'FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE',
]

# Children before parents; dropping a table drops its indexes and foreign keys with it.
TABLES = [
    "user_preferences",
    "messages",
    "conversations",
    "verificationtokens",
    "sessions",
    "accounts",
    "users",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f'DROP TABLE "{table}"')
