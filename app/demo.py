"""`chatwithme seed-demo`: a demo user with a few conversations and a session to use."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.auth.services import SessionService
from app.db.engine import Database
from app.db.models import Conversation, Message, User, UserPreferences
from app.lib.time import utc_now
from app.settings import Settings

DEMO_EMAIL = "demo@chatwithme.local"
# fmt: off
CONVERSATIONS = {
    "Planning a trip to Lisbon": [
        ("user", "I have three days in Lisbon in May. What should I not miss?"),
        ("assistant", "Day one: Alfama and the castle at sunset. Day two: Belém, the tower and "
                      "the pastries. Day three: a train to Sintra for the palaces."),
        ("user", "Is the 28 tram worth it?"),
        ("assistant", "Yes, early in the morning before the queues; or walk the same route."),
    ],
    "Explain keyset pagination": [
        ("user", "Why is keyset pagination faster than OFFSET?"),
        ("assistant", "OFFSET reads and throws away every skipped row; a keyset page starts "
                      "at the last row you saw, using an index, so every page costs the same."),
    ],
    "Sourdough starter help": [
        ("user", "My starter smells like nail polish remover. Is it dead?"),
        ("assistant", "It is hungry, not dead: that smell is acetone from a starved culture. "
                      "Feed it twice a day at a higher ratio for a few days."),
    ],
}
# fmt: on


async def seed_demo(database_url: str, settings: Settings) -> str:
    """Creates the demo data once (later runs reuse it) and returns a new session token."""
    database = Database.from_url(database_url, settings)
    try:
        async with database.session_maker() as db:
            user = await db.scalar(select(User).where(User.email == DEMO_EMAIL))
            if user is None:
                user = User(email=DEMO_EMAIL, name="Demo User", email_verified=utc_now())
                db.add(user)
                await db.flush()
                db.add(UserPreferences(user_id=user.id, default_model="dev-echo"))
                start = utc_now() - timedelta(days=len(CONVERSATIONS))
                for day, (title, turns) in enumerate(CONVERSATIONS.items()):
                    at = start + timedelta(days=day)
                    conversation = Conversation(
                        user_id=user.id, title=title, created_at=at, updated_at=at
                    )
                    db.add(conversation)
                    await db.flush()
                    for index, (role, content) in enumerate(turns):
                        db.add(
                            Message(
                                conversation_id=conversation.id,
                                user_id=user.id,
                                role=role,
                                content=content,
                                model="dev-echo" if role == "assistant" else None,
                                provider="dev" if role == "assistant" else None,
                                created_at=at + timedelta(minutes=index),
                            )
                        )
                await db.commit()
            session = await SessionService(db, settings).create(user.id)
            return session.session_token
    finally:
        await database.engine.dispose()
