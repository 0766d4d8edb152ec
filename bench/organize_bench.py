"""What pins, the archive, tags and the search filters cost (issue 23 item 4).

    uv run python -m bench.organize_bench [--rounds 3] [--runs 15]

Needs the data set of `bench.generate`. It first organises the heavy user (5,000
conversations) and the typical one as people would: 10 pinned, a fifth archived (the oldest),
20 tags, `work` on a tenth of the conversations, `rare` on 5 of them. Then, interleaved A B A B
in each round, it times in SQL (asyncpg, prepared statements, as the app runs them):

- the list's first page as it was before pins (the baseline: `LIST_BEFORE`, the statement of
  main before revision 0013), the list now, its second page (a cursor past the pinned part),
  the archived view, and the list filtered by a common and a rare tag;
- search (SearchService, as the endpoint runs it) for a common word alone, then with each
  filter, and filters without words.

Figures (median of the rounds' p50 and p95, ms) go to bench/results/organize.json, query plans
(EXPLAIN ANALYZE, BUFFERS) to bench/results/explain_organize.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.chat.services import _CONVERSATION_LISTS
from app.cli import database_url_for
from app.db.url import to_async_url, to_libpq
from app.search.services import SearchService, validate
from app.settings import load_settings
from bench.common import RESULTS, median, percentile, write
from bench.generate import HEAVY_USER, TYPICAL_USER, bench_database_url
from prisma_compat import cuid

# The list's statement before pins, archive and tags (main at 7cb18f1), as compiled.
LIST_BEFORE = """
SELECT conversations.id, conversations.title, timezone('UTC', conversations."createdAt"),
       timezone('UTC', conversations."updatedAt"),
       (SELECT count(*) FROM messages WHERE messages."conversationId" = conversations.id
          AND messages."deletedAt" IS NULL) AS message_count,
       left(last.content, 200) AS preview, last.role, timezone('UTC', last.at) AS last_at
FROM conversations LEFT OUTER JOIN LATERAL (
    SELECT messages.content, messages.role, messages."createdAt" AS at FROM messages
    WHERE messages."conversationId" = conversations.id AND messages."supersededAt" IS NULL
      AND messages."deletedAt" IS NULL
    ORDER BY messages."createdAt" DESC, messages.id DESC LIMIT 1) AS last ON true
WHERE conversations."userId" = $1 AND conversations."deletedAt" IS NULL
ORDER BY conversations."updatedAt" DESC, conversations.id DESC LIMIT $2
"""


async def organise(connection: asyncpg.Connection, user_id: str) -> dict[str, str]:
    """Pins, archive and tags for one user, as described above; the tag ids by name."""
    await connection.execute('DELETE FROM tags WHERE "userId" = $1', user_id)
    await connection.execute(
        'UPDATE conversations SET "pinnedAt" = NULL, "archivedAt" = NULL WHERE "userId" = $1',
        user_id,
    )
    ids = [
        r["id"]
        for r in await connection.fetch(
            'SELECT id FROM conversations WHERE "userId" = $1 ORDER BY "updatedAt" DESC, id DESC',
            user_id,
        )
    ]
    n = len(ids)
    await connection.execute(
        'UPDATE conversations SET "archivedAt" = now() WHERE id = ANY($1)', ids[n - n // 5 :]
    )
    pinned = ids[3 : n - n // 5 : max(1, (n - n // 5) // 10)][:10]
    await connection.execute(
        'UPDATE conversations SET "pinnedAt" = now() WHERE id = ANY($1)', pinned
    )
    tags = {name: cuid() for name in ["work", "rare", *(f"tag {i}" for i in range(18))]}
    await connection.executemany(
        'INSERT INTO tags (id, "userId", name, color, "updatedAt") VALUES ($1, $2, $3, $4, now())',
        [(tag_id, user_id, name, "#2563eb") for name, tag_id in tags.items()],
    )
    links = [(c, tags["work"], user_id) for c in ids[::10]]
    links += [(c, tags["rare"], user_id) for c in ids[n // 2 : n // 2 + 5]]
    links += [(c, tags[f"tag {i % 18}"], user_id) for i, c in enumerate(ids[1::7])]
    await connection.executemany(
        'INSERT INTO conversation_tags ("conversationId", "tagId", "userId") VALUES ($1, $2, $3) '
        "ON CONFLICT DO NOTHING",
        links,
    )
    return tags


def _list(query_key: tuple[bool, bool, str | None], **params: Any) -> tuple[str, list[Any]]:
    query = _CONVERSATION_LISTS[query_key]
    return query.sql, query.arguments(**params)


async def _user(connection: asyncpg.Connection, email: str) -> str:
    return str(await connection.fetchval("SELECT id FROM users WHERE email = $1", email))


async def main_async(url: str, rounds: int, runs: int) -> None:
    raw = await asyncpg.connect(to_libpq(url))
    engine = create_async_engine(to_async_url(url), pool_size=2)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    try:
        users = {
            "heavy": await _user(raw, HEAVY_USER),
            "typical": await _user(raw, TYPICAL_USER),
        }
        tags = {who: await organise(raw, uid) for who, uid in users.items()}
        await raw.execute("ANALYZE conversations; ANALYZE tags; ANALYZE conversation_tags")
        figures: dict[str, Any] = {"rounds": rounds, "runs": runs}
        plans: list[str] = []
        for who, uid in users.items():
            second = await raw.fetchrow(
                'SELECT id, "updatedAt" FROM conversations WHERE "userId" = $1 AND '
                '"pinnedAt" IS NULL AND "archivedAt" IS NULL AND "deletedAt" IS NULL '
                'ORDER BY "updatedAt" DESC, id DESC OFFSET 9 LIMIT 1',
                uid,
            )
            lists = {
                "list_before (baseline)": (LIST_BEFORE, [uid, 21]),
                "list": _list((False, False, None), user_id=uid, size=21),
                "list_page2": _list((False, False, "unpinned"), user_id=uid, size=21,
                                    at=second["updatedAt"], row_id=second["id"]),
                "archived_view": _list((True, False, None), user_id=uid, size=21),
                "tag_common": _list((False, True, None), user_id=uid, size=21,
                                    tag_id=tags[who]["work"]),
                "tag_rare": _list((False, True, None), user_id=uid, size=21,
                                  tag_id=tags[who]["rare"]),
            }  # fmt: skip
            searches = {
                "words (baseline)": "python",
                "words tag:work": "python tag:work",
                "words tag:rare": "python tag:rare",
                "words pinned:true": "python pinned:true",
                "words archived:false": "python archived:false",
                "words model:": "python model:gemini/gemini-2.5-flash",
                "words after:": "python after:2026-06-01",
                "only tag:work": "tag:work",
                "only archived:true": "archived:true",
                "only model:": "model:gemini/gemini-2.5-flash",
                "only after: tag:work": "after:2026-06-01 tag:work",
            }
            times: dict[str, list[list[float]]] = {k: [] for k in [*lists, *searches]}
            for _ in range(rounds):
                for name, (sql, args) in lists.items():
                    times[name].append(await _timed(lambda s=sql, a=args: raw.fetch(s, *a), runs))
                for name, q in searches.items():

                    async def search(q: str = q, uid: str = uid) -> None:
                        words, filters = validate(q, None, None, None, None)
                        async with maker() as db:
                            await SearchService(db, uid).search(words, filters, 20, None)

                    times[name].append(await _timed(search, runs))
            figures[who] = {
                name: {
                    "p50_ms": round(median([percentile(r, 50) for r in rounds_]), 2),
                    "p95_ms": round(median([percentile(r, 95) for r in rounds_]), 2),
                }
                for name, rounds_ in times.items()
            }
            for name, (sql, args) in lists.items():
                plan = await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
                plans += [f"== {who}: {name}", *(r[0] for r in plan), ""]
                figures[who][name]["explain_ms"] = _execution_ms(plan)
            for name, q in searches.items():
                words, filters = validate(q, None, None, None, None)
                captured.clear()
                async with maker() as db:
                    await SearchService(db, uid).search(words, filters, 20, None)
                statement, parameters = max(captured, key=lambda c: len(c[0]))
                plan = await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters)
                plans += [f"== {who}: search {q!r}", *(r[0] for r in plan), ""]
                figures[who][name]["explain_ms"] = _execution_ms(plan)
            _report(who, figures[who])
        (RESULTS / "explain_organize.txt").write_text("\n".join(plans))
        write("organize", figures)
    finally:
        await raw.close()
        await engine.dispose()


def _execution_ms(plan: list[Any]) -> float:
    """EXPLAIN ANALYZE's server-side execution time: steadier than the wall clock on a
    shared machine."""
    last = next(r[0] for r in reversed(plan) if r[0].startswith("Execution Time"))
    return float(last.split(":")[1].split()[0])


async def _timed(run: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _report(who: str, found: dict[str, Any]) -> None:
    print(f"\n{who}")
    for name, figure in found.items():
        print(
            f"  {name:28} p50 {figure['p50_ms']:8.2f} ms   p95 {figure['p95_ms']:8.2f} ms"
            f"   EXPLAIN {figure['explain_ms']:8.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with database_url_for(load_settings()) as server_url:
        url = bench_database_url(server_url)
        asyncio.run(main_async(url, args.rounds, args.runs))


if __name__ == "__main__":
    main()
