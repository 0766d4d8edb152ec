"""Sign-in rules on the NextAuth tables: sessions, account linking, verification tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Account, Session, User, VerificationToken
from app.lib.errors import InvalidInput, NotFound, SignInFailed
from app.lib.time import utc_now
from app.settings import Settings

Row = TypeVar("Row", Session, User)
EMAIL_TOKEN_LIFETIME = timedelta(hours=24)
OAUTH_STATE_IDENTIFIER = "chatwithme:oauth-state"  # not an address: never an email's token
OAUTH_STATE_LIFETIME = timedelta(minutes=15)  # the check cookie's lifetime
MAX_EMAIL_LENGTH = 320
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(raw: str) -> str:
    """Auth.js's normalisation (trim, lowercase), refusing what cannot be an address."""
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise InvalidInput("email: not a valid email address")
    return email


def hash_verification_token(token: str, secret: str) -> str:
    """Auth.js stores sha256(token + secret) as hex, so either side can check the other's."""
    return hashlib.sha256(f"{token}{secret}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Resolved:
    session: Session
    user: User
    refreshed: bool


class SessionCache:
    """Sessions looked up in the last `ttl` seconds, so that a burst of requests costs one
    lookup (the lookup was a third of a conversation-list request's CPU).

    Revocation through this process (sign-out, session delete, revoke-others, account
    deletion) forgets the entries at once; the epoch makes a lookup that raced with a
    revocation leave nothing behind. Other processes notice within `ttl`: the reason it is
    short. Entries hold detached, read-only rows.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.epoch = 0
        self._entries: dict[str, tuple[float, Session, User]] = {}

    def get(self, token: str) -> tuple[Session, User] | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > self.ttl:
            self._entries.pop(token, None)
            return None
        return entry[1], entry[2]

    def put(self, token: str, session: Session, user: User, epoch: int) -> None:
        """Keep a lookup that started at `epoch`, unless something was revoked since."""
        if self.ttl <= 0 or epoch != self.epoch:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token] = (time.monotonic(), _copy(session), _copy(user))

    def forget(self, *, token: str | None = None, user_id: str | None = None) -> None:
        """Drop one token's entry, or every entry of a user."""
        self.epoch += 1
        if token is not None:
            self._entries.pop(token, None)
        if user_id is not None:
            for key in [k for k, e in self._entries.items() if e[2].id == user_id]:
                del self._entries[key]


def _copy(row: Row) -> Row:
    """A copy outside any ORM session: the request's own rows are expired by its rollback."""
    columns = sa_inspect(type(row)).column_attrs
    return type(row)(**{column.key: getattr(row, column.key) for column in columns})


# One per process; a cached session is only a few seconds from the database's word on it.
SESSION_CACHE = SessionCache()


# Built once: a request whose session is not cached looks it up with this.
_SESSION_AND_USER = (
    select(Session, User)
    .join(User, User.id == Session.user_id)
    .where(Session.session_token == bindparam("token"))
)


class SessionService:
    """Database sessions exactly as NextAuth's Prisma adapter keeps them."""

    def __init__(
        self, db: AsyncSession, settings: Settings, cache: SessionCache = SESSION_CACHE
    ) -> None:
        self.db = db
        self.max_age = timedelta(seconds=settings.auth_session_max_age)
        self.update_age = timedelta(seconds=settings.auth_session_update_age)
        self.cache = cache

    async def create(self, user_id: str) -> Session:
        """A new session with a 256-bit token from the CSPRNG; committed."""
        now = utc_now()
        row = Session(
            session_token=secrets.token_hex(32),
            user_id=user_id,
            expires=now + self.max_age,
            created_at=now,
        )
        self.db.add(row)
        await self.db.commit()
        return row

    async def resolve(self, token: str) -> Resolved | None:
        """The live session for `token`, extended at most once per `updateAge`."""
        now = utc_now()
        cached = self.cache.get(token)
        if cached is not None and not self._due(cached[0], now):
            return Resolved(cached[0], cached[1], refreshed=False)
        epoch = self.cache.epoch
        found = (await self.db.execute(_SESSION_AND_USER, {"token": token})).first()
        if found is None:
            return None
        session, user = found
        if session.expires <= now:
            await self.db.execute(delete(Session).where(Session.id == session.id))
            await self.db.commit()
            return None
        refreshed = self._due(session, now)
        if refreshed:
            session.expires = now + self.max_age
            await self.db.execute(
                update(Session).where(Session.id == session.id).values(expires=session.expires)
            )
        else:
            self.cache.put(token, session, user, epoch)
        return Resolved(session, user, refreshed)

    def _due(self, session: Session, now: datetime) -> bool:
        """Expired, or old enough to be extended: either way the database must say."""
        return session.expires - self.max_age + self.update_age <= now

    async def end(self, token: str) -> None:
        self.cache.forget(token=token)
        await self.db.execute(delete(Session).where(Session.session_token == token))
        await self.db.commit()
        self.cache.forget(token=token)

    async def list_for_user(self, user_id: str) -> list[Session]:
        rows = await self.db.scalars(
            select(Session)
            .where(Session.user_id == user_id, Session.expires > utc_now())
            .order_by(Session.created_at.desc().nulls_last(), Session.id)
        )
        return list(rows)

    async def delete_owned(self, user_id: str, session_id: str) -> None:
        deleted = await self.db.scalar(
            delete(Session)
            .where(Session.id == session_id, Session.user_id == user_id)
            .returning(Session.id)
        )
        if deleted is None:
            raise NotFound("No such session.")
        await self.db.commit()
        self.cache.forget(user_id=user_id)

    async def revoke_others(self, user_id: str, keep_session_id: str) -> int:
        result = await self.db.scalars(
            delete(Session)
            .where(Session.user_id == user_id, Session.id != keep_session_id)
            .returning(Session.id)
        )
        count = len(result.all())
        await self.db.commit()
        self.cache.forget(user_id=user_id)
        return count


class SignInService:
    """Who a sign-in is: NextAuth's account-linking rules for OAuth, email and dev sign-in."""

    def __init__(self, db: AsyncSession, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def _user_by_email(self, email: str) -> User | None:
        return await self.db.scalar(select(User).where(User.email == email))

    async def _google_user(self, subject: str) -> User | None:
        return await self.db.scalar(
            select(User)
            .join(Account, Account.user_id == User.id)
            .where(Account.provider == "google", Account.provider_account_id == subject)
        )

    async def user_for_google(self, claims: dict[str, Any], tokens: dict[str, Any]) -> User:
        """The user of a verified Google identity; creates user and account atomically."""
        subject = str(claims["sub"])
        for _ in range(2):  # a parallel callback may win the race: then look again
            user = await self._google_user(subject)
            if user is not None:
                return user
            raw_email = claims.get("email")
            if not isinstance(raw_email, str) or not raw_email:
                raise SignInFailed("AccessDenied", "the Google account has no email address")
            # An address Google has not verified proves nothing: such an identity would own
            # the address's user before its real owner arrives by email link (pre-hijacking).
            if claims.get("email_verified") is not True:
                raise SignInFailed("AccessDenied", "Google has not verified this email address")
            email = raw_email.strip().lower()
            existing = await self._user_by_email(email)
            if existing is not None and not self.settings.auth_allow_email_linking:
                # A parallel callback for this same identity may have committed its user and
                # account between the two reads above: then the user is this identity's own.
                linked = await self._google_user(subject)
                if linked is not None:
                    return linked
                raise SignInFailed(
                    "OAuthAccountNotLinked",
                    "this email belongs to an account that signs in another way",
                )
            try:
                async with self.db.begin_nested():
                    user = existing or User(
                        email=email,
                        name=_text(claims.get("name")),
                        image=_text(claims.get("picture")),
                        email_verified=utc_now(),
                    )
                    self.db.add(user)
                    await self.db.flush()
                    self.db.add(_google_account(user.id, subject, tokens))
                    await self.db.flush()
                return user
            except IntegrityError:
                continue
        raise SignInFailed("Verification", "the account changed during sign-in; try again")

    async def claim_oauth_state(self, state: str) -> bool:
        """Record an OAuth `state` as used, for every process; False when it already was (a
        replayed callback, refused before any token request). Kept as a verification token
        under an identifier no email can have, for as long as the check cookie lives."""
        now = utc_now()
        await self.db.execute(
            delete(VerificationToken).where(
                VerificationToken.identifier == OAUTH_STATE_IDENTIFIER,
                VerificationToken.expires <= now,
            )
        )
        claimed = await self.db.scalar(
            insert(VerificationToken)
            .values(
                identifier=OAUTH_STATE_IDENTIFIER,
                token=hash_verification_token(state, self.settings.secret),
                expires=now + OAUTH_STATE_LIFETIME,
            )
            .on_conflict_do_nothing()
            .returning(VerificationToken.token)
        )
        await self.db.commit()
        return claimed is not None

    async def create_email_token(self, email: str) -> str:
        """A one-time sign-in token for `email`; only its hash is stored."""
        token = secrets.token_hex(32)
        self.db.add(
            VerificationToken(
                identifier=email,
                token=hash_verification_token(token, self.settings.secret),
                expires=utc_now() + EMAIL_TOKEN_LIFETIME,
            )
        )
        await self.db.commit()
        return token

    async def use_email_token(self, email: str, token: str) -> User:
        """Consume the token (deleted by the statement that reads it) and return its user."""
        expires = await self.db.scalar(
            delete(VerificationToken)
            .where(
                VerificationToken.identifier == email,
                VerificationToken.token == hash_verification_token(token, self.settings.secret),
            )
            .returning(VerificationToken.expires)
        )
        if expires is None:
            raise SignInFailed("Verification", "the sign-in link is invalid or was already used")
        if expires <= utc_now():
            await self.db.commit()  # the expired token stays deleted
            raise SignInFailed("Verification", "the sign-in link has expired")
        await self._release_unproven_claim(email)
        return await self.user_for_email(email, verified=True)

    async def _release_unproven_claim(self, email: str) -> None:
        """A user whose address was never proven but who has OAuth accounts got the address
        from an identity provider's unverified claim (before that was refused): the link's
        owner must not join them. That user keeps its accounts and data under a placeholder
        address (`<id>@unverified.invalid`: the column is NOT NULL, and .invalid is reserved),
        and the link signs its owner into a user of their own."""
        claimed = await self.db.scalar(
            select(User.id).where(
                User.email == email,
                User.email_verified.is_(None),
                select(Account.id).where(Account.user_id == User.id).exists(),
            )
        )
        if claimed is not None:
            await self.db.execute(
                update(User)
                .where(User.id == claimed)
                .values(email=f"{claimed}@unverified.invalid", updated_at=utc_now())
            )

    async def user_for_email(self, email: str, *, verified: bool, name: str | None = None) -> User:
        """The user with this email, made if new; `verified` marks the address as proven."""
        for _ in range(2):
            user = await self._user_by_email(email)
            if user is None:
                try:
                    async with self.db.begin_nested():
                        user = User(email=email, name=name)
                        self.db.add(user)
                        await self.db.flush()
                except IntegrityError:
                    continue
            if verified and user.email_verified is None:
                user.email_verified = utc_now()
            return user
        raise SignInFailed("Verification", "the account changed during sign-in; try again")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _google_account(user_id: str, subject: str, tokens: dict[str, Any]) -> Account:
    expires_at = tokens.get("expires_at")
    return Account(
        user_id=user_id,
        type="oidc",
        provider="google",
        provider_account_id=subject,
        access_token=_text(tokens.get("access_token")),
        refresh_token=_text(tokens.get("refresh_token")),
        expires_at=int(expires_at) if isinstance(expires_at, int | float) else None,
        token_type=_text(tokens.get("token_type")),
        scope=_text(tokens.get("scope")),
        id_token=_text(tokens.get("id_token")),
    )
