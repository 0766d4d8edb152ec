"""Fixtures for the files tests: the app served by uvicorn on loopback (real HTTP, real
multipart bodies), against a database of its own whose rows these tests read."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.asgi import create_app
from app.settings import Settings
from tests.auth.conftest import make_session, make_user
from tests.ops.conftest import served

MIB = 1024 * 1024


def png(width: int = 2, height: int = 2, seed: int = 0) -> bytes:
    """A real PNG (`seed` changes its pixels, so its hash)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes([seed % 256, 0, 0] * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))  # fmt: skip


PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")  # fmt: skip


@dataclass
class Person:
    user_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@pytest.fixture
def files_settings(settings: Settings, own_database_url: str) -> Settings:
    # Small limits, so that passing them costs little: 3 MiB a file (three chunks), 5 MiB
    # a user.
    return settings.model_copy(
        update={
            "database_url": own_database_url,
            "file_max_bytes": 3 * MIB,
            "file_quota_bytes": 5 * MIB,
        }
    )


@pytest.fixture
async def base_url(files_settings: Settings) -> AsyncIterator[str]:
    async with served(create_app(files_settings)) as url:
        yield url


@pytest.fixture
async def web(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        yield client


async def person(engine: AsyncEngine, email: str) -> Person:
    async with engine.begin() as connection:
        user_id = await make_user(connection, email)
        return Person(user_id, await make_session(connection, user_id))


async def upload(
    web: httpx.AsyncClient,
    who: Person,
    data: bytes,
    name: str = "picture.png",
    content_type: str = "image/png",
) -> httpx.Response:
    return await web.post(
        "/api/files", files={"file": (name, data, content_type)}, headers=who.auth
    )


async def count(engine: AsyncEngine, table: str, user_id: str) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(
            text(f'SELECT count(*) FROM {table} WHERE "userId" = :u'), {"u": user_id}
        )
        return int(found or 0)
