"""Work that stops when its client goes away (SECURITY.md, item 43).

Litestar runs a handler to its end even after the client has disconnected, so a slow query
would go on holding a pooled connection for nobody. `unless_disconnected` races the work with
the ASGI `http.disconnect` message and cancels the work when the client leaves first; asyncpg
answers the cancellation of a running query by sending PostgreSQL a cancel request, so the
server stops the statement too, and the connection goes back to the pool.

Only for requests without a body (a GET): the watcher reads the request's ASGI messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from litestar.connection import ASGIConnection

from app.lib.errors import ClientDisconnected

T = TypeVar("T")


async def _disconnected(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Returns when the server reports that the client has gone."""
    while True:
        message = await connection.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(
    connection: ASGIConnection[Any, Any, Any, Any], work: Coroutine[Any, Any, T]
) -> T:
    """The result of `work`; ClientDisconnected, with `work` cancelled, when the client
    disconnects before it ends."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(connection))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            # The cancellation reaches the query inside `work`; wait for it to unwind so that
            # the request's session is not closed while the query is still being cancelled.
            await asyncio.wait({task})
    if task.cancelled():
        raise ClientDisconnected("the client went away before the answer was ready")
    return task.result()
