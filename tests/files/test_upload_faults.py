"""Uploads that fail half-way, through real HTTP to uvicorn: the client leaving mid-body and
the database connection dying mid-upload store nothing (the file is stored in one short
transaction once its bytes are all in), the client gets a 503 problem where it is still there
to read one, and the next upload works; a slow upload holds no connection meanwhile."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.files.conftest import MIB, count, person, png

BOUNDARY = "faultsBoundary"


def head(name: str = "a.png") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()


TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_a_client_that_leaves_mid_upload_leaves_nothing_stored(
    web: httpx.AsyncClient, base_url: str, engine: AsyncEngine
) -> None:
    ann = await person(engine, "ann-faults@example.com")
    data = png(seed=1) + os.urandom(int(2.5 * MIB))
    body = head() + data + TAIL
    address = urlsplit(base_url)
    _reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(
        (
            f"POST /api/files HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Authorization: Bearer {ann.token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[: int(1.6 * MIB)]  # past the first chunk: a row and a chunk were written
    )
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()  # gone, 0.9 MiB short
    await writer.wait_closed()
    await asyncio.sleep(1.0)
    assert await count(engine, "files", ann.user_id) == 0
    assert await count(engine, "file_chunks", ann.user_id) == 0
    # Nothing half-written holds the file's hash: the same file uploads whole next time.
    again = await web.post(
        "/api/files", files={"file": ("a.png", data, "image/png")}, headers=ann.auth
    )
    assert again.status_code == 201, again.text
    assert await count(engine, "file_chunks", ann.user_id) == 3


async def test_the_database_dropping_mid_upload_is_a_503_and_stores_nothing(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bo = await person(engine, "bo-faults@example.com")
    data = png(seed=2) + os.urandom(int(2.5 * MIB))

    async def body() -> AsyncIterator[bytes]:
        yield head() + data[: int(1.5 * MIB)]
        await asyncio.sleep(0.5)  # the server is spooling the body
        async with engine.connect() as admin:  # every app connection to this database
            await admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        yield data[int(1.5 * MIB) :] + TAIL

    headers = {**bo.auth, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    failed = await web.post("/api/files", content=body(), headers=headers)
    assert failed.status_code == 503, failed.text
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert "retry-after" in failed.headers
    assert await count(engine, "files", bo.user_id) == 0
    assert await count(engine, "file_chunks", bo.user_id) == 0
    # The app recovers by itself: the next upload is stored.
    again = await web.post(
        "/api/files", files={"file": ("a.png", data, "image/png")}, headers=bo.auth
    )
    assert again.status_code == 201, again.text


async def test_a_slow_upload_holds_no_database_connection_while_it_is_sent(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Review finding: the upload kept a pooled connection and an open transaction for as
    long as the client took to send, so ten slow uploads held the whole pool (503 for
    everyone). The bytes are now spooled first, and stored in one short transaction."""
    cy = await person(engine, "cy-faults@example.com")
    data = png(seed=3) + os.urandom(int(1.5 * MIB))
    held: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield head() + data[:MIB]
        await asyncio.sleep(0.5)  # the server has read past the first chunk and waits
        async with engine.connect() as admin:
            held.append(
                await admin.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid() "
                        "AND state LIKE 'idle in transaction%'"
                    )
                )
                or 0
            )
        yield data[MIB:] + TAIL

    headers = {**cy.auth, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    stored = await web.post("/api/files", content=body(), headers=headers)
    assert stored.status_code == 201, stored.text
    assert held == [0]
    assert stored.json()["size"] == len(data)
    assert await count(engine, "file_chunks", cy.user_id) == 2
