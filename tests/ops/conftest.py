"""Fixtures for operations tests: the app served by uvicorn on loopback, against a database of
its own (requests commit), as a load balancer or a scraper would reach it."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar

from app.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def served(app: Litestar, **config: Any) -> AsyncIterator[str]:
    """The base URL of `app` served by uvicorn in this event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def live_settings(settings: Settings, own_database_url: str) -> Settings:
    return settings.model_copy(
        update={"database_url": own_database_url, "auth_dev_login": True, "metrics_enabled": True}
    )


async def sign_in(client: httpx.AsyncClient, email: str) -> str:
    """A session token from dev-login (the app must have AUTH_DEV_LOGIN on); the client keeps
    no cookie, so only requests that send the token are signed in."""
    response = await client.post("/api/auth/dev-login", json={"email": email})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return str(response.json()["sessionToken"])


def sample(scrape: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text scrape (0 when it is not there yet)."""
    for line in scrape.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series == name or series.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', series[len(name) :]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(value)
    return 0.0
