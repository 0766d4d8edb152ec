"""`/api/auth/*`: shaped like NextAuth's routes, so its users find them familiar."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect

from app.auth import cookies
from app.auth.cookies import CookieNames
from app.auth.google import GoogleOIDC
from app.auth.guard import CurrentIdentity, Identity
from app.auth.mailer import send_sign_in_link
from app.auth.redirects import safe_callback_url
from app.auth.schemas import (
    AuthSession,
    CsrfToken,
    DevLogin,
    DevLoginResult,
    Done,
    EmailSignIn,
    Provider,
    RevokedSessions,
    SessionInfo,
    SessionUser,
)
from app.auth.services import SessionService, SignInService, normalize_email
from app.db.models import Session, User
from app.lib.deps import AppSettings, DbSession
from app.lib.errors import InvalidInput, SignInFailed
from app.lib.openapi import problems, redirect, success
from app.lib.problems import problem
from app.lib.rate_limit import RateLimiter
from app.lib.time import as_utc

PUBLIC = {"public": True}
ERROR_MESSAGES = {
    "Configuration": "The server's sign-in configuration is incomplete, "
    "or the provider is unreachable.",
    "AccessDenied": "Sign-in was refused.",
    "Verification": "The sign-in could not be verified: the link or the attempt expired, was "
    "already used, or did not match. Start again.",
    "OAuthAccountNotLinked": "This email belongs to an account that signs in another way. "
    "Sign in that way first.",
    "Default": "Sign-in failed.",
}
MAX_CALLBACK_URL = 2048
CallbackUrl = Annotated[str | None, QueryParameter(name="callbackUrl", max_length=MAX_CALLBACK_URL)]


def _user(user: User) -> SessionUser:
    return SessionUser(id=user.id, name=user.name, email=user.email, image=user.image)


def _client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def _limit(request: Request[Any, Any, Any], email: str | None = None) -> None:
    """Limits on everything that starts or completes a sign-in: per IP; per address from one
    IP, so that someone asking for links to another's address from their own IP does not
    lock the owner out on theirs; and per address from all IPs at ten times that, a bound on
    the mail anyone can make an inbox receive (SIGNIN_ADDRESS_CAP)."""
    state = request.app.state
    ip = _client_ip(request)
    ip_limiter: RateLimiter = state.signin_ip_limiter
    await ip_limiter.hit(ip, "sign-in attempts")
    if email is not None:
        email_limiter: RateLimiter = state.signin_email_limiter
        await email_limiter.hit(f"{email}|{ip}", "sign-in attempts for this address")
        address_cap: RateLimiter = state.signin_address_cap
        await address_cap.hit(email, "sign-in attempts for this address")


def _error_redirect(settings: AppSettings, error: str, *clear: str) -> Redirect:
    code = error if error in ERROR_MESSAGES else "Default"
    return Redirect(
        f"{settings.base_url}/api/auth/error?{urlencode({'error': code})}",
        cookies=[cookies.expired(settings, name) for name in clear],
    )


def _signed_in(settings: AppSettings, session: Session, callback_url: str | None) -> Redirect:
    target = safe_callback_url(callback_url, settings.base_url)
    return Redirect(
        target, cookies=[cookies.session_cookie(settings, session.session_token, session.expires)]
    )


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @get("/providers", opt=PUBLIC)
    async def providers(self, settings: AppSettings) -> dict[str, Provider]:
        """The sign-in methods this server offers."""
        base = f"{settings.base_url}/api/auth"
        offered: dict[str, Provider] = {}
        if settings.google_configured:
            offered["google"] = Provider(
                id="google",
                name="Google",
                type="oidc",
                signin_url=f"{base}/signin/google",
                callback_url=f"{base}/callback/google",
            )
        if settings.email_signin_enabled:
            offered["email"] = Provider(
                id="email",
                name="Email",
                type="email",
                signin_url=f"{base}/signin/email",
                callback_url=f"{base}/callback/email",
            )
        if settings.dev_login_enabled:
            offered["dev-login"] = Provider(
                id="dev-login",
                name="Development login",
                type="credentials",
                signin_url=f"{base}/dev-login",
                callback_url=f"{base}/dev-login",
            )
        return offered

    @get("/csrf", opt=PUBLIC, cache=False)
    async def csrf(
        self, request: Request[Any, Any, Any], settings: AppSettings
    ) -> Response[CsrfToken]:
        """The CSRF token to send as `x-csrf-token`; sets its cookie when missing."""
        name = CookieNames.for_settings(settings).csrf
        token = cookies.csrf_token_of(request.cookies.get(name), settings.secret)
        if token is not None:
            return Response(CsrfToken(csrf_token=token))
        token, value = cookies.new_csrf_cookie_value(settings.secret)
        return Response(
            CsrfToken(csrf_token=token), cookies=[cookies.cookie(settings, name, value)]
        )

    @get(
        "/signin/google",
        opt=PUBLIC,
        cache=False,
        status_code=302,
        responses={
            **redirect("To Google (or to the sign-in error page when Google is unreachable)"),
            **problems(404, 429, s404="Google sign-in is not configured on this server"),
        },
    )
    async def signin_google(
        self,
        request: Request[Any, Any, Any],
        settings: AppSettings,
        google: NamedDependency[GoogleOIDC | None],
        callback_url: CallbackUrl = None,
    ) -> Response[Any]:
        """Redirect to Google with state, PKCE (S256) and a nonce kept in a sealed cookie."""
        if google is None:
            return problem(404, "Not Found", "Google sign-in is not configured on this server.")
        await _limit(request)
        state, verifier, nonce = (secrets.token_urlsafe(32) for _ in range(3))
        try:
            url = await google.authorization_url(state, verifier, nonce)
        except SignInFailed as exc:
            return _error_redirect(settings, exc.error)
        check = cookies.seal(
            settings.secret,
            {
                "provider": "google",
                "state": state,
                "verifier": verifier,
                "nonce": nonce,
                "callbackUrl": safe_callback_url(callback_url, settings.base_url),
            },
        )
        name = CookieNames.for_settings(settings).check
        return Redirect(
            url,
            cookies=[cookies.cookie(settings, name, check, max_age=cookies.CHECK_COOKIE_MAX_AGE)],
        )

    @get(
        "/callback/google",
        opt=PUBLIC,
        cache=False,
        status_code=302,
        responses={**redirect("To `callbackUrl`, or to the sign-in error page"), **problems(429)},
    )
    async def callback_google(
        self,
        request: Request[Any, Any, Any],
        settings: AppSettings,
        google: NamedDependency[GoogleOIDC | None],
        db_session: DbSession,
        code: FromQuery[str | None] = None,
        oauth_state: Annotated[str | None, QueryParameter(name="state", max_length=512)] = None,
        error: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """Check state and cookie, exchange the code, verify the ID token, sign the user in."""
        check_name = CookieNames.for_settings(settings).check
        if google is None:
            return _error_redirect(settings, "Configuration", check_name)
        await _limit(request)
        check = cookies.unseal(settings.secret, request.cookies.get(check_name))
        if error:
            return _error_redirect(settings, "AccessDenied", check_name)
        if (
            check is None
            or check.get("provider") != "google"
            or not oauth_state
            or not code
            or not secrets.compare_digest(oauth_state.encode(), check.get("state", "").encode())
        ):
            return _error_redirect(settings, "Verification", check_name)
        if not await SignInService(db_session, settings).claim_oauth_state(oauth_state):
            return _error_redirect(settings, "Verification", check_name)  # a replay
        try:
            tokens = await google.exchange_code(code, check["verifier"])
            claims = await google.verify_id_token(tokens["id_token"], check["nonce"])
            user = await SignInService(db_session, settings).user_for_google(claims, tokens)
        except SignInFailed as exc:
            await db_session.rollback()
            return _error_redirect(settings, exc.error, check_name)
        session = await SessionService(db_session, settings).create(user.id)
        response = _signed_in(settings, session, check.get("callbackUrl"))
        response.set_cookie(cookies.expired(settings, check_name))
        return response

    @get(
        "/session",
        opt=PUBLIC,
        cache=False,
        responses=success(AuthSession | None, "The session, or `null` when not signed in"),
    )
    async def session(self, maybe_identity: NamedDependency[Identity | None]) -> Response[Any]:
        """The current session as NextAuth shows it, or `null`."""
        if maybe_identity is None:
            return Response(b"null", media_type="application/json")
        return Response(
            AuthSession(
                user=_user(maybe_identity.user), expires=as_utc(maybe_identity.session.expires)
            )
        )

    @post("/signout", opt=PUBLIC, status_code=200)
    async def signout(
        self,
        settings: AppSettings,
        db_session: DbSession,
        maybe_identity: NamedDependency[Identity | None],
    ) -> Response[Done]:
        """End this session: its row is deleted and the cookie cleared."""
        if maybe_identity is not None:
            await SessionService(db_session, settings).end(maybe_identity.session.session_token)
        names = CookieNames.for_settings(settings)
        cleared = [cookies.expired(settings, name) for name in names.session_candidates()]
        return Response(Done(message="Signed out."), cookies=cleared)

    @get("/sessions", cache=False)
    async def sessions(
        self, settings: AppSettings, db_session: DbSession, identity: CurrentIdentity
    ) -> list[SessionInfo]:
        """Your live sessions; tokens are never shown."""
        rows = await SessionService(db_session, settings).list_for_user(identity.user_id)
        return [
            SessionInfo(
                id=row.id,
                created_at=as_utc(row.created_at) if row.created_at else None,
                expires=as_utc(row.expires),
                current=row.id == identity.session.id,
            )
            for row in rows
        ]

    @delete("/sessions/{session_id:str}", status_code=204)
    async def delete_session(
        self,
        settings: AppSettings,
        db_session: DbSession,
        identity: CurrentIdentity,
        session_id: FromPath[str],
    ) -> None:
        """Sign out one of your sessions (another user's id is simply not found)."""
        await SessionService(db_session, settings).delete_owned(identity.user_id, session_id)

    @post("/sessions/revoke-others", status_code=200)
    async def revoke_others(
        self, settings: AppSettings, db_session: DbSession, identity: CurrentIdentity
    ) -> RevokedSessions:
        """Sign out everywhere else."""
        count = await SessionService(db_session, settings).revoke_others(
            identity.user_id, identity.session.id
        )
        return RevokedSessions(revoked=count)

    # Always a problem: 400, or 403 for a refused sign-in.
    @get(
        "/error",
        opt=PUBLIC,
        cache=False,
        status_code=400,
        responses=problems(400, 403, s400="Why sign-in failed", s403="Sign-in was refused"),
    )
    async def error(self, error: FromQuery[str] = "Default") -> Response[Any]:
        """Explains a failed sign-in."""
        code = error if error in ERROR_MESSAGES else "Default"
        status = 403 if code in {"AccessDenied", "OAuthAccountNotLinked"} else 400
        return problem(status, "Sign-in Failed", ERROR_MESSAGES[code], error=code)


class EmailSignInController(Controller):
    """Sign-in by emailed link: only where email can be sent (SMTP_URL), or in development,
    where the message is written to DATA_DIR/outbox instead."""

    path = "/api/auth"
    tags = ["auth"]

    @post(
        "/signin/email",
        opt={**PUBLIC, "csrf": True, "signs_in": True},
        status_code=200,
        responses=problems(429),
    )
    async def signin_email(
        self,
        request: Request[Any, Any, Any],
        settings: AppSettings,
        db_session: DbSession,
        data: JSONBody[EmailSignIn],
    ) -> Done:
        """Email a one-time sign-in link. The answer is the same for known and unknown addresses."""
        email = normalize_email(data.email)
        await _limit(request, email)
        token = await SignInService(db_session, settings).create_email_token(email)
        callback = safe_callback_url(data.callback_url, settings.base_url)
        query = urlencode({"callbackUrl": callback, "token": token, "email": email})
        await send_sign_in_link(
            settings, email, f"{settings.base_url}/api/auth/callback/email?{query}"
        )
        return Done(message="If the address can receive email, a sign-in link is on its way.")

    @get(
        "/callback/email",
        opt=PUBLIC,
        cache=False,
        status_code=302,
        responses={**redirect("To `callbackUrl`, or to the sign-in error page"), **problems(429)},
    )
    async def callback_email(
        self,
        request: Request[Any, Any, Any],
        settings: AppSettings,
        db_session: DbSession,
        token: FromQuery[str] = "",
        email: FromQuery[str] = "",
        callback_url: CallbackUrl = None,
    ) -> Response[Any]:
        """Use the link's token once, make the user if new, and sign them in. The token is
        spent whatever the answer, a refused (429) one included."""
        try:
            address = normalize_email(email)
            user = await SignInService(db_session, settings).use_email_token(address, token)
        except SignInFailed as exc:
            return _error_redirect(settings, exc.error)
        except InvalidInput:
            return _error_redirect(settings, "Verification")
        await db_session.commit()
        await _limit(request)
        session = await SessionService(db_session, settings).create(user.id)
        return _signed_in(settings, session, callback_url)


@post(
    "/api/auth/dev-login",
    opt={**PUBLIC, "signs_in": True},
    tags=["auth"],
    status_code=200,
    responses=problems(429),
)
async def dev_login(
    request: Request[Any, Any, Any],
    settings: AppSettings,
    db_session: DbSession,
    data: JSONBody[DevLogin],
) -> Response[DevLoginResult]:
    """Development only: sign in as any email address without a provider."""
    email = normalize_email(data.email)
    await _limit(request, email)
    user = await SignInService(db_session, settings).user_for_email(
        email, verified=False, name=data.name
    )
    session = await SessionService(db_session, settings).create(user.id)
    result = DevLoginResult(
        user=_user(user), expires=as_utc(session.expires), session_token=session.session_token
    )
    return Response(
        result, cookies=[cookies.session_cookie(settings, session.session_token, session.expires)]
    )
