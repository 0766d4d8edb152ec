"""The rollups' deltas (revision 0015): writers of one user do not wait for each other, folds
running at once move every delta exactly once, and a serve process folds by itself."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.asgi import create_app
from app.settings import Settings
from tests.auth.conftest import make_session, make_user
from tests.conftest import http_client
from tests.search.test_search import Seeder
from tests.stats.test_rollups import assert_rollups_match_messages

DELTAS = (
    "SELECT (SELECT count(*) FROM user_message_bucket_deltas) "
    "+ (SELECT count(*) FROM user_model_usage_deltas)"
)


async def _user_with_conversation(engine: AsyncEngine, email: str) -> tuple[str, str]:
    async with engine.begin() as connection:
        user_id = await make_user(connection, email)
        conversation = await Seeder(connection, user_id).conversation("busy")
    return user_id, conversation


async def _answer(connection: AsyncConnection, user_id: str, conversation: str) -> None:
    await Seeder(connection, user_id).message(
        conversation, "assistant", "an answer", datetime(2026, 6, 1, 12, 5), model="groq/same",
        promptTokens=3, completionTokens=4,
    )  # fmt: skip


async def test_two_writers_of_one_user_do_not_wait_for_each_other(engine: AsyncEngine) -> None:
    user_id, conversation = await _user_with_conversation(engine, "two-writers@example.com")
    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        # The same quarter hour and the same model: the same rollup rows. With the rollups
        # upserted in the writers' transactions, the second insert waited for the first
        # transaction's end (here: until the lock timeout made it an error).
        await _answer(first, user_id, conversation)
        await second.begin()
        await second.execute(text("SET LOCAL lock_timeout = '2s'"))
        await _answer(second, user_id, conversation)
        await second.commit()
        await first.commit()
    async with engine.begin() as connection:
        await assert_rollups_match_messages(connection, [user_id])
        row = (
            await connection.execute(
                text('SELECT messages, tokens FROM user_message_buckets WHERE "userId" = :u'),
                {"u": user_id},
            )
        ).one()
        assert tuple(row) == (2, 14)


async def test_folds_running_at_once_move_every_delta_once(engine: AsyncEngine) -> None:
    user_id, conversation = await _user_with_conversation(engine, "many-folds@example.com")
    async with engine.begin() as connection:
        for _ in range(120):  # one statement each: 240 delta rows
            await _answer(connection, user_id, conversation)

    async def fold_in_small_batches() -> int:
        moved = 0
        async with engine.connect() as connection:
            while True:
                async with connection.begin():
                    step = await connection.scalar(text("SELECT fold_stats_deltas(7)"))
                if not step:
                    return moved
                moved += step

    moved = await asyncio.gather(*(fold_in_small_batches() for _ in range(3)))
    assert sum(moved) >= 240  # every delta of this user (and any other test's) once
    async with engine.begin() as connection:
        assert await connection.scalar(text(DELTAS)) == 0
        row = (
            await connection.execute(
                text(
                    'SELECT messages, "promptTokens", "completionTokens" FROM user_model_usages '
                    'WHERE "userId" = :u'
                ),
                {"u": user_id},
            )
        ).one()
        assert tuple(row) == (120, 360, 480)
        await assert_rollups_match_messages(connection, [user_id])


async def test_a_serve_process_folds_by_itself_and_stats_stay_exact(
    settings: Settings, own_database_url: str, engine: AsyncEngine
) -> None:
    async with engine.begin() as connection:
        user_id = await make_user(connection, "folded@example.com")
        token = await make_session(connection, user_id)
    app_settings = settings.model_copy(
        update={"database_url": own_database_url, "stats_fold_seconds": 0.2}
    )
    async with http_client(create_app(app_settings)) as client:
        client.headers["authorization"] = f"Bearer {token}"
        for question in ("one", "two", "three"):
            response = await client.post("/api/chat", json={"message": question})
            assert response.status_code == 200, response.text
        before = (await client.get("/api/users/me/stats")).json()
        assert before["messageCount"] == 6
        deadline = time.monotonic() + 15
        while True:
            async with engine.connect() as connection:
                left = await connection.scalar(
                    text(
                        "SELECT (SELECT count(*) FROM user_message_bucket_deltas "
                        'WHERE "userId" = :u) + (SELECT count(*) FROM user_model_usage_deltas '
                        'WHERE "userId" = :u)'
                    ),
                    {"u": user_id},
                )
            if left == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert left == 0, "the serve process did not fold its deltas within 15 s"
        after = (await client.get("/api/users/me/stats")).json()
    assert after == before
    async with engine.begin() as connection:
        await assert_rollups_match_messages(connection, [user_id])
