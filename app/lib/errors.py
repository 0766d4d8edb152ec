"""Domain errors, defined once. `app.lib.problems` maps them to HTTP problem responses."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    title = "Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The resource does not exist, or belongs to someone else."""

    title = "Not Found"


class Forbidden(DomainError):
    title = "Forbidden"


class Unauthorized(DomainError):
    title = "Unauthorized"


class Conflict(DomainError):
    title = "Conflict"


class InvalidInput(DomainError):
    title = "Invalid Input"


class ProviderError(DomainError):
    """A model provider failed; `detail` is safe to show (no vendor body, no key)."""

    title = "Provider Error"


class ServiceUnavailable(DomainError):
    """A dependency (the database) is unreachable or saturated; the client may retry."""

    title = "Service Unavailable"


class ConfigurationError(Exception):
    """Start-up cannot go on; the message is one line naming the cause."""
