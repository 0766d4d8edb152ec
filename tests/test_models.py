"""Rows written through the models follow Prisma's conventions."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db.models import Conversation, Message, User, UserPreferences
from prisma_compat import is_cuid


async def test_new_rows_get_cuid_ids_and_millisecond_naive_utc_times(
    connection: AsyncConnection,
) -> None:
    async with AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as session:
        user = User(email="ada@example.com", name="Ada")
        session.add(user)
        await session.flush()
        conversation = Conversation(user_id=user.id, title="First")
        session.add(conversation)
        await session.flush()
        message = Message(
            conversation_id=conversation.id, user_id=user.id, role="user", content="hi"
        )
        session.add(message)
        await session.commit()  # releases the savepoint; the test's transaction still rolls back

    for row in (user, conversation, message):
        assert is_cuid(row.id)
        assert row.created_at.tzinfo is None
        assert row.created_at.microsecond % 1000 == 0
    raw = await connection.scalar(
        text('SELECT "createdAt" = date_trunc(\'milliseconds\', "createdAt") FROM users')
    )
    assert raw is True


async def test_updated_at_is_set_by_the_app_on_every_update(connection: AsyncConnection) -> None:
    async with AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as session:
        user = User(email="grace@example.com")
        session.add(user)
        await session.flush()
        first = user.updated_at
        await asyncio.sleep(0.01)
        user.name = "Grace"
        await session.flush()
        stored = await session.scalar(
            select(User.updated_at)
            .where(User.id == user.id)
            .execution_options(populate_existing=True)
        )
    assert stored is not None
    assert stored > first


async def test_preferences_get_prismas_defaults(connection: AsyncConnection) -> None:
    async with AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as session:
        user = User(email="linus@example.com")
        session.add(user)
        await session.flush()
        preferences = UserPreferences(user_id=user.id)
        session.add(preferences)
        await session.flush()
    assert (preferences.default_model, preferences.theme, preferences.language) == (
        "groq",
        "dark",
        "en",
    )


async def test_deleting_a_user_cascades_to_their_rows(connection: AsyncConnection) -> None:
    async with AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as session:
        user = User(email="gone@example.com")
        session.add(user)
        await session.flush()
        session.add(Conversation(user_id=user.id))
        await session.flush()
        await session.execute(text("DELETE FROM users WHERE id = :id"), {"id": user.id})
        left = await session.scalar(
            text('SELECT count(*) FROM conversations WHERE "userId" = :id'), {"id": user.id}
        )
    assert left == 0
