"""Which sessions committed a write, so that the writer's next reads wait for the replicas.

Only used with read replicas (app/db/replicas.py): the primary's sessions are then of
`TrackedSession`, whose events note an ORM flush or an INSERT, UPDATE or DELETE statement, and
keep the note when the transaction commits (a rollback drops it). Without replicas the plain
`Session` is used and nothing is noted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

_WRITING = "writing"
_COMMITTED = "committed_write"


class TrackedSession(Session):
    """A session that remembers whether it committed a write."""


@event.listens_for(TrackedSession, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[_WRITING] = True


@event.listens_for(TrackedSession, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WRITING] = True


@event.listens_for(TrackedSession, "after_commit")
def _committed(session: Session) -> None:
    if session.info.pop(_WRITING, False):
        session.info[_COMMITTED] = True


@event.listens_for(TrackedSession, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_WRITING, None)


def take_committed_write(session: AsyncSession) -> bool:
    """Whether `session` committed a write since last asked."""
    return bool(session.info.pop(_COMMITTED, False))
