"""The one map from errors to RFC 9457 problem responses (`application/problem+json`)."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.lib import errors
from app.lib.logs import redact_path

logger = logging.getLogger(__name__)
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]]*$")
_MISSING_FIELD = re.compile(r"^Object missing required field `([^`]+)`")
PROBLEM_JSON = "application/problem+json"
# SQLSTATEs of text PostgreSQL cannot store: NUL in text (22021), a \u0000 escape in jsonb (22P05).
UNSTORABLE_TEXT = frozenset({"22021", "22P05"})
# The server is shutting down, crashed or is starting up, or has no connection slot left.
SERVER_GONE = frozenset({"57P01", "57P02", "57P03", "53300"})

STATUS_OF: dict[type[errors.DomainError], int] = {
    errors.InvalidInput: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.StorageFull: 429,
    errors.RateLimited: 429,
    errors.ProviderError: 502,
    errors.ServiceUnavailable: 503,
}


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    if status == 400:  # the README's promise: every 400 lists what was refused
        extra.setdefault("errors", [{"field": None, "source": None, "message": detail}])
    body: dict[str, Any] = {"status": status, "title": title, "detail": detail, **extra}
    return Response(
        body,
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={"X-Content-Type-Options": "nosniff", **(headers or {})},
    )


def _domain_error(request: Request[Any, Any, Any], exc: errors.DomainError) -> Response[Any]:
    status = next((code for kind, code in STATUS_OF.items() if isinstance(exc, kind)), 400)
    retry_after = getattr(exc, "retry_after", None)  # RateLimited, TimedOut
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if status == 400:  # every 400 lists what was refused, as validation errors do
        return problem(status, exc.title, exc.detail, errors=[_field_of(request, exc.detail)])
    return problem(status, exc.title, exc.detail, headers=headers, **exc.extra)


def _field_of(request: Request[Any, Any, Any], detail: str) -> dict[str, Any]:
    """Services word input errors as `field: message`; the field's source is where it came."""
    field, separator, message = detail.partition(": ")
    if not separator or not _FIELD_NAME.match(field):
        return {"field": None, "source": None, "message": detail}
    if field in request.path_params:
        source = "path"
    elif field in request.query_params:
        source = "query"
    else:
        source = "body"
    return {"field": field, "source": source, "message": message}


def _validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    found = exc.extra if isinstance(exc.extra, list) else []
    fields = [_named(item) for item in found if isinstance(item, dict)]
    named = "; ".join(
        f"{f['field']}: {f['message']}" if f["field"] else f"{f['message']}" for f in fields
    )
    return problem(400, "Invalid Input", named or exc.detail, errors=fields)


def _named(item: dict[str, Any]) -> dict[str, Any]:
    """One of Litestar's validation errors, with a missing field named as itself: msgspec says
    "Object missing required field `message`" about the whole body (`data`)."""
    field, message = item.get("key"), item.get("message")
    missing = _MISSING_FIELD.match(message or "")
    if missing:
        name = missing.group(1)
        field = name if field in (None, "data") else f"{field}.{name}"
        message = "required"
    elif field == "data":  # the handler's parameter name for the body as a whole
        field = None
    return {"field": field, "source": item.get("source"), "message": message}


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    title = _TITLES.get(status, "Error")
    detail = exc.detail if exc.detail and exc.detail != title else _DETAILS.get(status, title)
    return problem(status, title, detail, headers=exc.headers or None)


def _database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.warning(
        "database unavailable during %s %s: %s: %s",
        request.method, redact_path(request.url.path), type(exc).__name__,
        str(exc).strip() or "(no text)",
    )  # fmt: skip
    return problem(
        503,
        "Service Unavailable",
        "The database is unavailable; try again shortly.",
        headers={"Retry-After": "1"},
    )


def _database_error(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[Any]:
    """A safety net behind the checks in app/lib/input.py, and outages the driver reports as
    plain errors (class 08, shutdown): the client's fault is a 400, an outage a 503."""
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    if sqlstate in UNSTORABLE_TEXT:
        message = "text must not contain NUL (\\u0000) characters"
        field = {"field": None, "source": None, "message": message}
        return problem(400, "Invalid Input", message, errors=[field])
    if sqlstate.startswith("08") or sqlstate in SERVER_GONE:
        return _database_unavailable(request, exc)
    if sqlstate == errors.STATEMENT_TIMEOUT:
        logger.warning("statement timeout in %s %s", request.method, redact_path(request.url.path))
        return _domain_error(request, errors.TimedOut())
    return _unexpected(request, exc)


def _client_disconnected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Nobody reads this answer; the status is for the access log (nginx's 499)."""
    logger.info("client went away during %s %s; its work was cancelled", request.method,
                redact_path(request.url.path))  # fmt: skip
    return problem(499, "Client Closed Request", str(exc))


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception(
        "unhandled error in %s %s", request.method, redact_path(request.url.path), exc_info=exc
    )
    return problem(500, "Internal Server Error", "Something went wrong on our side.")


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_DETAILS = {
    404: "No resource exists at this path.",
    405: "This method is not allowed on this path.",
    413: "The request body is too large.",
}

EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    errors.DomainError: _domain_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    OperationalError: _database_unavailable,
    InterfaceError: _database_unavailable,
    PoolTimeoutError: _database_unavailable,
    errors.DatabaseUnavailable: _database_unavailable,
    errors.ClientDisconnected: _client_disconnected,
    DBAPIError: _database_error,
    ConnectionError: _database_unavailable,
    Exception: _unexpected,
}
