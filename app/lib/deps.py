"""Names of the app-wide dependencies, as annotations for handler parameters.

Each is injected by parameter name (`settings`, `db_session`, `identity`, ...); the alias
says what the value is and marks it as a dependency for Litestar.
"""

from __future__ import annotations

from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import Settings

DbSession = NamedDependency[AsyncSession]
AppSettings = NamedDependency[Settings]
