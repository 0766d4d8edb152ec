"""Request and response bodies of the sign-in API."""

from __future__ import annotations

from datetime import datetime

import msgspec

from app.lib.schema import CamelStruct


class Provider(CamelStruct):
    id: str
    name: str
    type: str
    signin_url: str
    callback_url: str


class CsrfToken(CamelStruct):
    csrf_token: str


class EmailSignIn(CamelStruct):
    email: str = msgspec.field()
    callback_url: str | None = None


class DevLogin(CamelStruct):
    email: str
    name: str | None = None


class SessionUser(CamelStruct):
    id: str
    name: str | None
    email: str
    image: str | None


class AuthSession(CamelStruct):
    """What `GET /api/auth/session` answers, as NextAuth's `useSession()` expects."""

    user: SessionUser
    expires: datetime


class DevLoginResult(CamelStruct):
    user: SessionUser
    expires: datetime
    session_token: str


class SessionInfo(CamelStruct):
    id: str
    created_at: datetime | None
    expires: datetime
    current: bool


class Done(CamelStruct):
    ok: bool = True
    message: str | None = None


class RevokedSessions(CamelStruct):
    revoked: int
