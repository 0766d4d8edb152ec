"""The one guard in front of every route: who is calling, and may they do this?

- The session token comes from `Authorization: Bearer`, or from the session cookie (ours, or
  NextAuth v4's name). Routes are private unless their `opt` says `public`.
- A request carrying the session cookie (or signing in) is refused when its `Origin` is neither
  AUTH_URL's nor in CORS_ALLOWED_ORIGINS.
- Cookie-authenticated POST/PUT/PATCH/DELETE (and routes marked `csrf`) need the CSRF token in
  `x-csrf-token`, checked against the CSRF cookie (double submit, constant-time compare).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler

from app.auth.cookies import CookieNames, csrf_matches
from app.auth.origins import allowed_origins
from app.auth.services import SessionService
from app.db.models import Session, User
from app.db.session import request_session
from app.lib.deps import DbSession
from app.lib.errors import Forbidden, Unauthorized
from app.lib.input import refuse_nul_parameters
from app.settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class Identity:
    """The signed-in caller of this request."""

    user: User
    session: Session
    via: Literal["cookie", "bearer"]

    @property
    def user_id(self) -> str:
        return self.user.id


# Handlers take `identity: CurrentIdentity`, injected by name (see create_app).
CurrentIdentity = NamedDependency[Identity]


def _credentials(
    connection: ASGIConnection[Any, Any, Any, Any], names: CookieNames
) -> tuple[str, Literal["cookie", "bearer"]] | None:
    authorization = connection.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return _usable(value.strip(), "bearer")
    for name in names.session_candidates():
        if token := connection.cookies.get(name):
            return _usable(token, "cookie")
    return None


def _usable(
    token: str, via: Literal["cookie", "bearer"]
) -> tuple[str, Literal["cookie", "bearer"]] | None:
    """A token holding NUL (a cookie of `%00`) names no session; PostgreSQL could not even look."""
    return None if "\x00" in token else (token, via)


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """App-level guard: refuses NUL in path and query parameters, resolves the session, and
    enforces origin, CSRF and sign-in rules."""
    await refuse_nul_parameters(connection, handler)
    if handler.opt.get("sessionless", False):
        return  # public answers that must not wait on the database (metrics during an outage)
    settings: Settings = connection.app.state.settings
    names = CookieNames.for_settings(settings)
    found = _credentials(connection, names)
    via = found[1] if found else None

    # A cookie request, or a sign-in that would set one (login CSRF), from an origin that is
    # neither ours nor configured is refused; bearer-only requests carry no ambient authority.
    origin = connection.headers.get("origin")
    if (
        origin
        and (via == "cookie" or handler.opt.get("signs_in", False))
        and origin.lower() not in allowed_origins(settings)
    ):
        raise Forbidden("Cross-site requests with the session cookie are refused.")

    method = connection.scope["method"] if connection.scope["type"] == ScopeType.HTTP else ""
    needs_csrf = handler.opt.get("csrf", False) or (via == "cookie" and method in UNSAFE_METHODS)
    if needs_csrf and via != "bearer":
        submitted = connection.headers.get(CSRF_HEADER)
        if not csrf_matches(connection.cookies.get(names.csrf), submitted, settings.secret):
            raise Forbidden("Missing or invalid CSRF token (get one from GET /api/auth/csrf).")

    if found is not None:
        if handler.opt.get("admission", False):
            # A chat start: its turn covers the session lookup too (app/chat/admission.py).
            await connection.app.state.chat_admission.enter(connection.scope)
        sessions = SessionService(request_session(connection), settings)
        resolved = await sessions.resolve(found[0])
        if resolved is not None:
            connection.scope["auth"] = Identity(resolved.user, resolved.session, found[1])
            connection.scope["user"] = resolved.user
            if resolved.refreshed and via == "cookie":
                connection.scope.setdefault("state", {})["refreshed_session"] = resolved.session

    if not handler.opt.get("public", False) and "auth" not in connection.scope:
        raise Unauthorized("Sign in first: no valid session.")


def current_identity(request: Request[Any, Any, Any], db_session: DbSession) -> Identity:
    """Dependency for private routes (the guard has already refused anonymous calls).

    It takes `db_session` only to come after it: Litestar resolves the dependencies of one
    level concurrently, in an anyio task group, which cost about 8% of the CPU of a
    conversation list request; one after the other they cost nothing."""
    del db_session
    identity = request.scope.get("auth")
    if not isinstance(identity, Identity):
        raise Unauthorized("Sign in first: no valid session.")
    return identity


def optional_identity(request: Request[Any, Any, Any]) -> Identity | None:
    identity = request.scope.get("auth")
    return identity if isinstance(identity, Identity) else None
