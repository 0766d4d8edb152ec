"""What a branch costs the history window, the conversation list and a message page (issue 23
item 2), at the data set of `bench.generate` (1M messages).

    uv run python -m bench.branch_bench [--runs 20]

The generator writes rows as Prisma would: no `parentId`, no `currentLeafId` (linear order).
In that state this times main's statements: the history window's (the newest usable messages
by `createdAt`), the list's first page (whose preview is then the newest message) and a
message page. Then it runs revision 0018's backfill on the whole data set (timed: what the
migration costs at 1M messages), edits a question halfway up the heavy user's 2,500-message
conversation (a branch of its own, with its answer), and times the same reads through the
tree: the history window as a walk up `parentId` from the leaf, the list with the leaf's
preview, a page of the branch (walk, rows, siblings), the whole branch (share snapshots and
the Markdown export), and the walk down to the newest leaf (switching branches).

Figures (p50/p95 of `--runs`, ms; EXPLAIN ANALYZE's execution time) go to
bench/results/branches.json, query plans to bench/results/explain_branches.txt. Run it again
and it first resets the tree (parents and leaves back to NULL).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.elements import TextClause

from app.chat import branches
from app.chat.services import _CONVERSATION_LISTS, _MESSAGE_PAGES
from app.cli import database_url_for
from app.db.url import to_libpq
from app.settings import load_settings
from bench.common import RESULTS, percentile, write
from bench.generate import HEAVY_USER, bench_database_url
from prisma_compat import cuid

REVISION = Path(__file__).resolve().parents[1] / "migrations" / "versions" / "0018_message_tree.py"

# The history window's statement on main (MessageService.recent_history, as compiled).
HISTORY_BEFORE = """
SELECT messages.id, messages.role, messages.content FROM messages
WHERE messages."conversationId" = $1 AND messages."userId" = $2 AND messages."deletedAt" IS NULL
  AND messages."supersededAt" IS NULL AND (messages.status NOT IN ('error', 'streaming'))
  AND messages.content != ''
ORDER BY messages."createdAt" DESC, messages.id DESC LIMIT $3
"""
HISTORY = 50  # CHAT_HISTORY_MESSAGES' default
# BranchService.siblings for a page that does not reach the first message (the usual page).
SIBLINGS = """
SELECT messages.id, messages."parentId", messages."createdAt" FROM messages
JOIN conversations ON conversations.id = messages."conversationId"
WHERE conversations."userId" = $2 AND messages."conversationId" = $1
  AND messages."deletedAt" IS NULL AND messages."parentId" = ANY($3::text[])
"""


def _revision() -> ModuleType:
    """Revision 0018 (its backfill statements), loaded from its file."""
    spec = importlib.util.spec_from_file_location("revision_0018", REVISION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _asyncpg(statement: TextClause, **params: Any) -> tuple[str, list[Any]]:
    """A text() statement as asyncpg runs it ($n placeholders) and its values."""
    compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    return str(compiled), [params[name] for name in compiled.positiontup or ()]


async def _timed(connection: asyncpg.Connection, sql: str, args: list[Any], runs: int) -> Any:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await connection.fetch(sql, *args)
        times.append((time.perf_counter() - started) * 1000)
    plan = [r[0] for r in await connection.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)]
    figure = {
        "p50_ms": round(percentile(times, 50), 3),
        "p95_ms": round(percentile(times, 95), 3),
        "explain_ms": _execution_ms(plan),
    }
    return figure, plan


def _execution_ms(plan: list[str]) -> float:
    execution = next(line for line in reversed(plan) if line.startswith("Execution Time"))
    return float(execution.split(":")[1].split()[0])


def _literal(value: Any) -> str:
    """A bench value (ids, sizes, lists of ids) as SQL, for EXECUTE."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]::text[]"
    return "'" + str(value).replace("'", "''") + "'"


async def _generic_plan(connection: asyncpg.Connection, sql: str, args: list[Any]) -> list[str]:
    """EXPLAIN ANALYZE of the statement's generic plan: what a prepared statement (asyncpg's,
    SQLAlchemy's) may run after its fifth execution, whatever the values."""
    await connection.execute("SET plan_cache_mode = force_generic_plan")
    try:
        await connection.execute(f"PREPARE generic AS {sql}")
        values = ", ".join(_literal(a) for a in args)
        plan = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE generic({values})")
        return [r[0] for r in plan]
    finally:
        await connection.execute("DEALLOCATE generic")  # not ALL: asyncpg keeps its own
        await connection.execute("RESET plan_cache_mode")


async def _reset(connection: asyncpg.Connection) -> None:
    """Back to the generator's state: linear order, no edit."""
    await connection.execute("DELETE FROM messages WHERE id LIKE 'benchEdit%'")
    await connection.execute('UPDATE conversations SET "currentLeafId" = NULL '
                             'WHERE "currentLeafId" IS NOT NULL')  # fmt: skip
    await connection.execute('UPDATE messages SET "parentId" = NULL WHERE "parentId" IS NOT NULL')
    await connection.execute("VACUUM ANALYZE messages, conversations")


async def main_async(url: str, runs: int) -> None:
    connection = await asyncpg.connect(to_libpq(url))
    figures: dict[str, Any] = {}
    plans: list[str] = []

    async def measure(name: str, sql: str, args: list[Any], generic: bool = False) -> None:
        figure, plan = await _timed(connection, sql, args, runs)
        figures[name] = figure
        plans.extend([f"== {name}", *plan, ""])
        if generic:
            generic_plan = await _generic_plan(connection, sql, args)
            figure["generic_explain_ms"] = _execution_ms(generic_plan)
            plans.extend([f"== {name}: generic plan", *generic_plan, ""])
        print(f"  {name:48} p50 {figure['p50_ms']:8.3f} ms  p95 {figure['p95_ms']:8.3f} ms"
              f"  EXPLAIN {figure['explain_ms']:8.3f} ms"
              f"  generic {figure.get('generic_explain_ms', '-')}")  # fmt: skip

    try:
        if await connection.fetchval('SELECT count(*) FROM messages WHERE "parentId" IS NOT NULL'):
            await _reset(connection)
        uid = await connection.fetchval("SELECT id FROM users WHERE email = $1", HEAVY_USER)
        longest = await connection.fetchrow(
            'SELECT "conversationId" AS id, count(*) AS n FROM messages WHERE "userId" = $1 '
            'GROUP BY "conversationId" ORDER BY n DESC LIMIT 1', uid,
        )  # fmt: skip
        cid = longest["id"]
        figures["data"] = {
            "messages": await connection.fetchval("SELECT count(*) FROM messages"),
            "longest_conversation": longest["n"],
        }
        print(f"data: {figures['data']}")
        page_before = _MESSAGE_PAGES[False, False]
        list_first = _CONVERSATION_LISTS[False, False, None]
        list_args = list_first.arguments(user_id=uid, size=21)

        print("linear order (main's statements)")
        await measure("history window, linear (main)", HISTORY_BEFORE, [cid, uid, HISTORY], True)
        await measure("list first page, no leaves (main's preview)", list_first.sql, list_args)
        page_args = page_before.arguments(user_id=uid, conversation_id=cid, size=51)
        await measure("message page, linear (main)", page_before.sql, page_args)

        revision = _revision()
        started = time.monotonic()
        for statement in (revision.BACKFILL_PARENTS, revision.BACKFILL_VERSIONS,
                          revision.BACKFILL_LEAVES):  # fmt: skip
            await connection.execute(statement)
        figures["backfill_seconds"] = round(time.monotonic() - started, 1)
        print(f"revision 0018's backfill: {figures['backfill_seconds']} s")
        await connection.execute("VACUUM ANALYZE messages, conversations")

        # An edit halfway up: a sibling of the question at depth ~1,250, with its answer.
        old_leaf = await connection.fetchval(
            'SELECT "currentLeafId" FROM conversations WHERE id = $1', cid
        )
        edited = await connection.fetchrow(
            "SELECT id, \"parentId\", \"createdAt\" FROM messages WHERE \"conversationId\" = $1 "
            "AND role = 'user' ORDER BY \"createdAt\", id OFFSET $2 LIMIT 1",
            cid, longest["n"] // 4,
        )  # fmt: skip
        question, answer = f"benchEdit{cuid()}", f"benchEdit{cuid()}"
        await connection.executemany(
            'INSERT INTO messages (id, content, role, "conversationId", "userId", "parentId", '
            '"createdAt") VALUES ($1, $2, $3, $4, $5, $6, now())',
            [(question, "an edited question", "user", cid, uid, edited["parentId"]),
             (answer, "its answer", "assistant", cid, uid, question)],
        )  # fmt: skip
        print("through the tree (leaf at the end of the 2,500-message branch)")
        walk, args = _asyncpg(branches._USABLE, start=old_leaf, cid=cid, size=HISTORY)
        await measure("history window, tree walk from the leaf", walk, args, generic=True)
        walk, args = _asyncpg(branches._USABLE, start=answer, cid=cid, size=HISTORY)
        await measure("history window, tree walk on the edit's branch", walk, args)
        await measure("list first page, leaves (preview by key)", list_first.sql, list_args)
        ids_sql, args = _asyncpg(branches._BRANCH_IDS, start=old_leaf, cid=cid, skip=0, size=51)
        await measure("message page: walk (51 ids)", ids_sql, args)
        shown = [r[0] for r in await connection.fetch(ids_sql, *args)]
        parents = await connection.fetch(
            'SELECT DISTINCT "parentId" FROM messages WHERE id = ANY($1::text[])', shown
        )
        await measure("message page: siblings of the page", SIBLINGS,
                      [cid, uid, [p[0] for p in parents if p[0]]], generic=True)  # fmt: skip
        ids_sql, args = _asyncpg(branches._BRANCH_IDS, start=old_leaf, cid=cid, skip=0,
                                 size=branches.MAX_DEPTH)  # fmt: skip
        await measure("whole branch (share, Markdown export)", ids_sql, args)
        first = await connection.fetchval(
            'SELECT id FROM messages WHERE "conversationId" = $1 ORDER BY "createdAt", id LIMIT 1',
            cid,
        )
        down, args = _asyncpg(branches._DOWN, start=first, cid=cid)
        await measure("switch: walk down to the newest leaf", down, args)
        figures["runs"] = runs
        (RESULTS / "explain_branches.txt").write_text("\n".join(plans))
        write("branches", figures)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url)
        asyncio.run(main_async(url, args.runs))


if __name__ == "__main__":
    main()
