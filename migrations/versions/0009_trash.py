"""The trash: conversations and messages are soft-deleted first (`deletedAt`), purged later.

A deleted conversation or message keeps its row with `deletedAt` set; trashing a conversation
sets the same instant on its messages not already trashed, so that its restore brings back
exactly those. `chatwithme purge` (and `serve`, daily) removes rows trashed longer ago than
the retention.

Indexes: `conversations ("userId", "deletedAt")` pages a user's trash; the two partial
indexes on `"deletedAt"` (only trashed rows) let the purge find what is old enough without
scanning the tables.

Stats: the rollups of revision 0007 count only messages that are not in the trash, so the
triggers are replaced by versions that treat `deletedAt` as a counted column: trashing a
message takes it out of its rollup rows and restoring it puts it back (the update trigger),
and inserts and deletes count only untrashed rows (a purge changes nothing). No row is
trashed when this revision is applied, so the rollups stay exact without a recount. The
downgrade drops the column, which brings trashed rows back: it recounts the rollups.

Revision ID: 0009_trash
Revises: 0008_preferences_time_zone
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_trash"
down_revision: str | None = "0008_preferences_time_zone"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [
    'ALTER TABLE "conversations" ADD COLUMN "deletedAt" TIMESTAMP(3)',
    'ALTER TABLE "messages" ADD COLUMN "deletedAt" TIMESTAMP(3)',
    'CREATE INDEX "conversations_userId_deletedAt_idx" ON "conversations" ("userId", "deletedAt")',
    'CREATE INDEX "conversations_deletedAt_idx" ON "conversations" ("deletedAt") '
    'WHERE "deletedAt" IS NOT NULL',
    'CREATE INDEX "messages_deletedAt_idx" ON "messages" ("deletedAt") WHERE "deletedAt" IS NOT NULL',
]

# Revision 0007's functions with one change each: a trashed row counts as no row.
ROWS_FUNCTION = """
CREATE OR REPLACE FUNCTION "messages_rollup_rows"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign integer := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    INSERT INTO "user_message_buckets" AS b ("userId", "bucket", "messages", "tokens")
    SELECT "userId", date_bin('15 minutes', "createdAt", TIMESTAMP '2000-01-01'),
           sign * count(*), sign * sum(coalesce("promptTokens", 0) + coalesce("completionTokens", 0))
    FROM changed WHERE {counted} GROUP BY 1, 2
    ON CONFLICT ("userId", "bucket") DO UPDATE
    SET "messages" = b."messages" + EXCLUDED."messages", "tokens" = b."tokens" + EXCLUDED."tokens";

    INSERT INTO "user_model_usages" AS u ("userId", "role", "model", "messages", "promptTokens",
        "completionTokens", "timeToFirstTokenMsTotal", "timedMessages", "failedMessages")
    SELECT "userId", "role", coalesce("model", ''), sign * count(*),
           sign * coalesce(sum("promptTokens"), 0), sign * coalesce(sum("completionTokens"), 0),
           sign * coalesce(sum("timeToFirstTokenMs"), 0), sign * count("timeToFirstTokenMs"),
           sign * count(*) FILTER (WHERE "status" IN ('error', 'incomplete'))
    FROM changed WHERE {counted} GROUP BY 1, 2, 3
    ON CONFLICT ("userId", "role", "model") DO UPDATE
    SET "messages" = u."messages" + EXCLUDED."messages",
        "promptTokens" = u."promptTokens" + EXCLUDED."promptTokens",
        "completionTokens" = u."completionTokens" + EXCLUDED."completionTokens",
        "timeToFirstTokenMsTotal" = u."timeToFirstTokenMsTotal" + EXCLUDED."timeToFirstTokenMsTotal",
        "timedMessages" = u."timedMessages" + EXCLUDED."timedMessages",
        "failedMessages" = u."failedMessages" + EXCLUDED."failedMessages";

    IF sign < 0 THEN
        DELETE FROM "user_message_buckets" b USING changed c
        WHERE b."userId" = c."userId" AND b."messages" = 0
          AND b."bucket" = date_bin('15 minutes', c."createdAt", TIMESTAMP '2000-01-01');
        DELETE FROM "user_model_usages" u USING changed c
        WHERE u."userId" = c."userId" AND u."role" = c."role"
          AND u."model" = coalesce(c."model", '') AND u."messages" = 0;
    END IF;
    RETURN NULL;
END
$$"""

# OLD is taken out and NEW put in only when each is not in the trash: `{old}` and `{new}`
# are the signs (-1 and 1, or 0 for a trashed row).
UPDATE_FUNCTION = """
CREATE OR REPLACE FUNCTION "messages_rollup_update"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO "user_message_buckets" AS b ("userId", "bucket", "messages", "tokens")
    SELECT d."userId", date_bin('15 minutes', d."createdAt", TIMESTAMP '2000-01-01'),
           sum(d.sign), sum(d.sign * d.tokens)
    FROM (VALUES
        (OLD."userId", OLD."createdAt", {old}, coalesce(OLD."promptTokens", 0) + coalesce(OLD."completionTokens", 0)),
        (NEW."userId", NEW."createdAt", {new}, coalesce(NEW."promptTokens", 0) + coalesce(NEW."completionTokens", 0))
    ) AS d("userId", "createdAt", sign, tokens)
    GROUP BY 1, 2
    HAVING sum(d.sign) <> 0 OR sum(d.sign * d.tokens) <> 0
    ON CONFLICT ("userId", "bucket") DO UPDATE
    SET "messages" = b."messages" + EXCLUDED."messages", "tokens" = b."tokens" + EXCLUDED."tokens";

    INSERT INTO "user_model_usages" AS u ("userId", "role", "model", "messages", "promptTokens",
        "completionTokens", "timeToFirstTokenMsTotal", "timedMessages", "failedMessages")
    SELECT d."userId", d."role", d."model", sum(d.sign), sum(d.sign * d.prompt),
           sum(d.sign * d.completion), sum(d.sign * d.ttft), sum(d.sign * d.timed),
           sum(d.sign * d.failed)
    FROM (VALUES
        (OLD."userId", OLD."role", coalesce(OLD."model", ''), {old}, coalesce(OLD."promptTokens", 0),
         coalesce(OLD."completionTokens", 0), coalesce(OLD."timeToFirstTokenMs", 0),
         (OLD."timeToFirstTokenMs" IS NOT NULL)::int, (OLD."status" IN ('error', 'incomplete'))::int),
        (NEW."userId", NEW."role", coalesce(NEW."model", ''), {new}, coalesce(NEW."promptTokens", 0),
         coalesce(NEW."completionTokens", 0), coalesce(NEW."timeToFirstTokenMs", 0),
         (NEW."timeToFirstTokenMs" IS NOT NULL)::int, (NEW."status" IN ('error', 'incomplete'))::int)
    ) AS d("userId", "role", "model", sign, prompt, completion, ttft, timed, failed)
    GROUP BY 1, 2, 3
    HAVING (sum(d.sign), sum(d.sign * d.prompt), sum(d.sign * d.completion), sum(d.sign * d.ttft),
            sum(d.sign * d.timed), sum(d.sign * d.failed)) <> (0, 0, 0, 0, 0, 0)
    ON CONFLICT ("userId", "role", "model") DO UPDATE
    SET "messages" = u."messages" + EXCLUDED."messages",
        "promptTokens" = u."promptTokens" + EXCLUDED."promptTokens",
        "completionTokens" = u."completionTokens" + EXCLUDED."completionTokens",
        "timeToFirstTokenMsTotal" = u."timeToFirstTokenMsTotal" + EXCLUDED."timeToFirstTokenMsTotal",
        "timedMessages" = u."timedMessages" + EXCLUDED."timedMessages",
        "failedMessages" = u."failedMessages" + EXCLUDED."failedMessages";

    DELETE FROM "user_message_buckets"
    WHERE "userId" = OLD."userId" AND "messages" = 0
      AND "bucket" = date_bin('15 minutes', OLD."createdAt", TIMESTAMP '2000-01-01');
    DELETE FROM "user_model_usages"
    WHERE "userId" = OLD."userId" AND "role" = OLD."role"
      AND "model" = coalesce(OLD."model", '') AND "messages" = 0;
    RETURN NULL;
END
$$"""

COUNTED = (
    '"userId", "createdAt", "role", "model", "status", "promptTokens", "completionTokens", '
    '"timeToFirstTokenMs"'
)

UPDATE_TRIGGER = """
CREATE TRIGGER "messages_rollup_update"
    AFTER UPDATE OF {columns} ON "messages"
    FOR EACH ROW
    WHEN ((OLD.{old_columns}) IS DISTINCT FROM (NEW.{new_columns}))
    EXECUTE FUNCTION "messages_rollup_update"()"""


def _update_trigger(columns: str) -> str:
    names = columns.split(", ")
    return UPDATE_TRIGGER.format(
        columns=columns,
        old_columns=", OLD.".join(names),
        new_columns=", NEW.".join(names),
    )


# Revision 0007's backfill, for the downgrade (trashed rows count again once the column goes).
RECOUNT = [
    'LOCK TABLE "messages" IN SHARE ROW EXCLUSIVE MODE',
    'DELETE FROM "user_message_buckets"',
    'DELETE FROM "user_model_usages"',
    """
INSERT INTO "user_message_buckets" ("userId", "bucket", "messages", "tokens")
SELECT "userId", date_bin('15 minutes', "createdAt", TIMESTAMP '2000-01-01'), count(*),
       sum(coalesce("promptTokens", 0) + coalesce("completionTokens", 0))
FROM "messages" GROUP BY 1, 2""",
    """
INSERT INTO "user_model_usages" ("userId", "role", "model", "messages", "promptTokens",
    "completionTokens", "timeToFirstTokenMsTotal", "timedMessages", "failedMessages")
SELECT "userId", "role", coalesce("model", ''), count(*), coalesce(sum("promptTokens"), 0),
       coalesce(sum("completionTokens"), 0), coalesce(sum("timeToFirstTokenMs"), 0),
       count("timeToFirstTokenMs"), count(*) FILTER (WHERE "status" IN ('error', 'incomplete'))
FROM "messages" GROUP BY 1, 2, 3""",
]


def upgrade() -> None:
    for statement in COLUMNS:
        op.execute(statement)
    op.execute(ROWS_FUNCTION.format(counted='"deletedAt" IS NULL'))
    op.execute(
        UPDATE_FUNCTION.format(
            old='-(OLD."deletedAt" IS NULL)::int', new='(NEW."deletedAt" IS NULL)::int'
        )
    )
    op.execute('DROP TRIGGER "messages_rollup_update" ON "messages"')
    op.execute(_update_trigger(COUNTED + ', "deletedAt"'))


def downgrade() -> None:
    op.execute('DROP TRIGGER "messages_rollup_update" ON "messages"')
    op.execute(_update_trigger(COUNTED))
    op.execute(ROWS_FUNCTION.format(counted="true"))
    op.execute(UPDATE_FUNCTION.format(old="-1", new="1"))
    op.execute('DROP INDEX "messages_deletedAt_idx"')
    op.execute('DROP INDEX "conversations_deletedAt_idx"')
    op.execute('DROP INDEX "conversations_userId_deletedAt_idx"')
    op.execute('ALTER TABLE "messages" DROP COLUMN "deletedAt"')
    op.execute('ALTER TABLE "conversations" DROP COLUMN "deletedAt"')
    for statement in RECOUNT:
        op.execute(statement)
