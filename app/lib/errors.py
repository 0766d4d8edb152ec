"""Domain errors, defined once. `app.lib.problems` maps them to HTTP problem responses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    title = "Error"
    extra: dict[str, Any]  # more members of the problem body

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = {}


class NotFound(DomainError):
    """The resource does not exist, or belongs to someone else."""

    title = "Not Found"


class Forbidden(DomainError):
    title = "Forbidden"


class Unauthorized(DomainError):
    title = "Unauthorized"


class Conflict(DomainError):
    title = "Conflict"


class PayloadTooLarge(DomainError):
    title = "Payload Too Large"


class InvalidInput(DomainError):
    title = "Invalid Input"


class UnsupportedMediaType(DomainError):
    """A body or file of a type this route does not take (a file's type is read from its
    bytes)."""

    title = "Unsupported Media Type"


class StorageFull(DomainError):
    """The user's stored files would pass FILE_QUOTA_BYTES: a 429 with no Retry-After, as
    waiting frees nothing (deleting conversations whose files are purged does)."""

    title = "Storage Quota Exceeded"


class ProviderError(DomainError):
    """A model provider failed; `detail` is safe to show (no vendor body, no key)."""

    title = "Provider Error"


class RateLimited(DomainError):
    """Too many requests; `retry_after` is in whole seconds."""

    title = "Too Many Requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class QuotaExceeded(RateLimited):
    """A daily budget of the user is used up; `extra` names it, its limit and when it resets."""

    title = "Quota Exceeded"

    def __init__(self, detail: str, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after)
        self.extra = extra


class ServiceUnavailable(DomainError):
    """A dependency (the database) is unreachable or saturated; the client may retry."""

    title = "Service Unavailable"


class Busy(ServiceUnavailable):
    """This process is serving as much as it can (answers at once, or starts waiting);
    `retry_after` is in whole seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


# The SQLSTATE of a statement cancelled for running past its statement_timeout.
STATEMENT_TIMEOUT = "57014"


class TimedOut(ServiceUnavailable):
    """A statement ran past its time bound and was cancelled (SQLSTATE 57014); the connection
    is fine. `retry_after` is in whole seconds."""

    def __init__(
        self,
        detail: str = "The request's database work ran past its time limit and was stopped.",
        retry_after: int = 1,
    ) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class ClientDisconnected(Exception):
    """The client went away before its answer was ready, and the work for it was stopped."""


class DatabaseUnavailable(Exception):
    """The database could not be reached at all (no socket, refused, timed out, starting up).

    Raised by the engine's connect hook (app/db/engine.py) in place of the driver's OSError,
    so that only failures of the database connection are mapped to 503.
    """


class SignInFailed(DomainError):
    """A sign-in attempt failed; `error` is the Auth.js error code shown on the error page."""

    title = "Sign-in Failed"

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error


class ConfigurationError(Exception):
    """Start-up cannot go on; the message is one line naming the cause."""
