"""The one file of a `multipart/form-data` upload, read from the request as it arrives.

Litestar's form parsing reads the whole body first; this reads the ASGI messages one at a time
through `multipart`'s push parser, so an upload costs one network chunk of memory at a time.
A client that goes away mid-body raises ClientDisconnected; a body that ends before its
closing boundary is a 400: either way the caller's transaction is rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from litestar import Request
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from app.lib.errors import ClientDisconnected, InvalidInput, UnsupportedMediaType

FIELD = "file"
# Other form fields are ignored, but not read without bound.
MAX_OTHER_FIELD_BYTES = 64 * 1024


class FileUpload:
    """`await open()` reads up to the file's headers (its name); `chunks()` then yields its
    bytes and reads the rest of the body, refusing a second file."""

    def __init__(self, request: Request[Any, Any, Any]) -> None:
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get("boundary")
        if content_type != "multipart/form-data" or not boundary:
            raise UnsupportedMediaType(
                f"Send the file as multipart/form-data in a field named `{FIELD}`."
            )
        try:
            self._parser = PushMultipartParser(boundary, max_segment_count=16)
        except MultipartError:
            raise InvalidInput("body: the multipart boundary is not valid") from None
        self._request = request
        self._events = self._parse()
        self.filename: str | None = None

    async def _body(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("the client went away during the upload")
            body = cast("bytes", message.get("body", b""))
            if body:
                yield body
            if not message.get("more_body", False):
                return

    async def _parse(self) -> AsyncIterator[MultipartSegment | bytes | None]:
        try:
            async for data in self._body():
                for event in self._parser.parse(data):
                    yield event
            for event in self._parser.parse(b""):
                yield event
            self._parser.close(check_complete=True)
        except MultipartError:
            raise InvalidInput(
                "body: not a complete multipart/form-data body (was the upload cut short?)"
            ) from None

    async def open(self) -> str | None:
        """Read up to the file part; its file name (as sent: not yet cleaned)."""
        segment: MultipartSegment | None = None
        async for event in self._events:
            if isinstance(event, MultipartSegment):
                segment = event
                if event.name == FIELD and event.filename is not None:
                    self.filename = str(event.filename)
                    return self.filename
            elif segment is not None and segment.bytes_received > MAX_OTHER_FIELD_BYTES:
                raise InvalidInput(f"body: a field other than `{FIELD}` is too large")
        raise InvalidInput(f"{FIELD}: required (a file in the field `{FIELD}`)")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, then the rest of the body is read (and checked)."""
        async for event in self._events:
            if event is None:
                break
            if isinstance(event, bytes | bytearray):
                yield bytes(event)
        async for event in self._events:
            if isinstance(event, MultipartSegment) and event.filename is not None:
                raise InvalidInput(f"{FIELD}: one file a request")
