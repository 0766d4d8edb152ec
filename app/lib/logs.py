"""Logging set-up: text or JSON lines (LOG_FORMAT), each with the request id of the request
being handled. The same configuration is handed to uvicorn, so its access log follows."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, Literal

from app.lib.request_id import current_request_id

# Query parameters never logged with their value (by a part of the name, case-insensitive).
SECRET_PARAMETER_WORDS = ("token", "code", "state", "email", "secret", "key", "password", "session")
# `/s/{token}` and `/api/shared/{token}[/copy]`: the token is the link.
SHARE_TOKEN_IN_PATH = re.compile(r"^(/s/|/api/shared/)[^/?]+")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or "-" outside a request) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id.get() or "-"
        return True


class SecretQueryFilter(logging.Filter):
    """Blanks the values of secret query parameters in uvicorn's access log lines: magic-link
    tokens and addresses, OAuth codes and state; and share links' tokens in paths. A logged
    URL must sign no one in, nor open anyone's shared conversation."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            args = list(record.args)
            if len(args) == 5 and isinstance(args[2], str):
                path = redact_path(args[2])
                args[2] = redact_query(path) if "?" in path else path
                record.args = tuple(args)
        return True


def redact_path(path: str) -> str:
    """A request path fit for a log line: a share link's token blanked."""
    return SHARE_TOKEN_IN_PATH.sub(r"\1[redacted]", path)


def redact_query(path: str) -> str:
    """`path?query` with the value of every parameter whose name suggests a secret replaced."""
    base, _, query = path.partition("?")
    parts = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        secret = any(word in name.lower() for word in SECRET_PARAMETER_WORDS)
        parts.append(f"{name}{equals}[redacted]" if secret and equals else pair)
    return f"{base}?{'&'.join(parts)}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (and exc_info)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id.get(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            entry |= _access_fields(record.args)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _access_fields(args: tuple[Any, ...]) -> dict[str, Any]:
    """uvicorn's access record args: client, method, path, HTTP version, status."""
    if len(args) != 5:
        return {}
    client, method, path, _version, status = args
    return {"client": client, "method": method, "path": path, "status": status}


def logging_config(log_format: Literal["text", "json"], level: str = "info") -> dict[str, Any]:
    """A dictConfig for the app and uvicorn (pass it to uvicorn as `log_config`)."""
    formatter: dict[str, Any] = (
        {"()": "app.lib.logs.JsonFormatter"}
        if log_format == "json"
        else {"format": TEXT_FORMAT, "datefmt": "%Y-%m-%dT%H:%M:%S%z"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "filters": ["request_id", "secret_query"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "app.lib.logs.RequestIdFilter"},
            "secret_query": {"()": "app.lib.logs.SecretQueryFilter"},
        },
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            # uvicorn's own handlers would print in their format: let records reach the root.
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            "alembic.runtime.plugins": {"level": "WARNING"},
            # httpx logs every outgoing URL at INFO: a vendor's key may ride in a query string.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
