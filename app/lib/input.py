"""Input that cannot be stored or decoded is refused at the boundary, with a 400 naming the field.

PostgreSQL text cannot hold NUL (U+0000), and a JSON body that is not UTF-8 or is nested
absurdly deep cannot be decoded. Left alone, each surfaces as a 500 from inside a query or the
JSON decoder, possibly after part of the request was already written.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler

NUL = "\x00"
# In valid JSON a NUL can only be written as this escape, so bodies without it need no walk.
NUL_ESCAPE = b"\\u0000"
NUL_MESSAGE = "must not contain NUL (\\u0000) characters"


def refused(field: str | None, source: str, message: str) -> ValidationException:
    """A 400 whose `errors` list names the field, as Litestar's own validation errors do."""
    return ValidationException(
        detail=f"{field}: {message}" if field else message,
        extra=[{"key": field, "source": source, "message": message}],
    )


def nul_path(value: Any) -> str | None:
    """Where the first NUL sits in a decoded JSON value (`title`, `messages[2].content`), if any.

    Walks with an explicit stack: the value may be nested as deep as the decoder allowed.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return path or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                if NUL in key:
                    return path or "body"
                stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return None


class CheckedRequest(Request[Any, Any, Any]):
    """The app's request class: its JSON body is declared as JSON (415 otherwise), UTF-8,
    decodable, and free of NUL."""

    async def json(self) -> Any:
        media_type, _ = self.content_type
        if media_type != "application/json" and not media_type.endswith("+json"):
            # A form or text/plain body is what a cross-site page can send without a preflight.
            raise HTTPException(
                status_code=415,
                detail=f"Send the body as application/json (not {media_type or 'untyped'}).",
            )
        try:
            value = await super().json()
        except UnicodeDecodeError as exc:
            raise refused(None, "body", f"the body is not valid UTF-8 (byte {exc.start})") from None
        except RecursionError:
            raise refused(None, "body", "the JSON body is nested too deeply") from None
        if NUL_ESCAPE in await self.body():
            field = nul_path(value)
            if field is not None:
                raise refused(field, "body", NUL_MESSAGE)
        return value


async def refuse_nul_parameters(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Path and query parameters holding a NUL are a 400 (the first check of the app's guard,
    before anything reaches the database)."""
    for key, value in connection.path_params.items():
        if isinstance(value, str) and NUL in value:
            raise refused(key, "path", NUL_MESSAGE)
    for key, value in connection.query_params.multi_items():
        if NUL in key or (isinstance(value, str) and NUL in value):
            raise refused(key.replace(NUL, ""), "query", NUL_MESSAGE)
