"""Cookies of the sign-in flows, named and shaped as Auth.js (NextAuth v5) names them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from litestar.datastructures import Cookie

from app.lib.time import utc_now
from app.settings import Settings

CHECK_COOKIE_MAX_AGE = 15 * 60
LEGACY_SESSION_COOKIE = "next-auth.session-token"
SECURE_PREFIX = "__Secure-"


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: str
    csrf: str
    check: str

    @classmethod
    def for_settings(cls, settings: Settings) -> CookieNames:
        """`__Secure-` (and `__Host-` for CSRF, as Auth.js) when the site is served over https."""
        secure = SECURE_PREFIX if settings.uses_https else ""
        host = "__Host-" if settings.uses_https else ""
        return cls(
            session=f"{secure}{settings.auth_cookie_name}",
            csrf=f"{host}authjs.csrf-token",
            check=f"{secure}authjs.oauth-check",
        )

    def session_candidates(self) -> list[str]:
        """Names a session token is read from: ours first, then NextAuth v4's."""
        return [self.session, SECURE_PREFIX + LEGACY_SESSION_COOKIE, LEGACY_SESSION_COOKIE]


def cookie(settings: Settings, key: str, value: str, **options: Any) -> Cookie:
    """HttpOnly, SameSite=Lax, Path=/, no Domain; Secure when the site is https."""
    return Cookie(
        key=key,
        value=value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.uses_https,
        **options,
    )


def session_cookie(settings: Settings, token: str, expires: datetime) -> Cookie:
    """The session cookie, living as long as the session row (`expires` is naive UTC)."""
    seconds = int((expires - utc_now()).total_seconds())
    return cookie(
        settings, CookieNames.for_settings(settings).session, token, max_age=max(seconds, 0)
    )


def expired(settings: Settings, key: str) -> Cookie:
    return cookie(settings, key, "", max_age=0, expires=0)


# -- CSRF: Auth.js's double-submit scheme: cookie "<token>|sha256(<token><secret>)" -------------


def _csrf_hash(token: str, secret: str) -> str:
    return hashlib.sha256(f"{token}{secret}".encode()).hexdigest()


def new_csrf_cookie_value(secret: str) -> tuple[str, str]:
    """A fresh CSRF token and the cookie value that vouches for it."""
    token = secrets.token_hex(32)
    return token, f"{token}|{_csrf_hash(token, secret)}"


def csrf_token_of(cookie_value: str | None, secret: str) -> str | None:
    """The token inside a CSRF cookie, if the cookie was made with our secret."""
    if not cookie_value or "|" not in cookie_value:
        return None
    token, digest = cookie_value.split("|", 1)
    # As bytes: compare_digest refuses str with non-ASCII characters (a cookie of `%C3%A9`).
    if hmac.compare_digest(digest.encode(), _csrf_hash(token, secret).encode()):
        return token
    return None


def csrf_matches(cookie_value: str | None, submitted: str | None, secret: str) -> bool:
    token = csrf_token_of(cookie_value, secret)
    if token is None or not submitted:
        return False
    return hmac.compare_digest(token.encode(), submitted.encode())


# -- The OAuth check cookie: state, PKCE verifier and nonce, encrypted and time-limited --------


def _fernet(secret: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"chatwithme oauth check cookie"
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: str, payload: dict[str, str]) -> str:
    return _fernet(secret).encrypt(json.dumps(payload).encode()).decode()


def unseal(secret: str, value: str | None) -> dict[str, str] | None:
    """The payload, or None when the cookie is missing, forged, or older than 15 minutes."""
    if not value:
        return None
    try:
        data = json.loads(_fernet(secret).decrypt(value.encode(), ttl=CHECK_COOKIE_MAX_AGE))
    except (InvalidToken, ValueError):
        return None
    return data if isinstance(data, dict) else None
