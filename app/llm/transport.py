"""The providers' HTTP transport: aiohttp's connection pool and HTTP parser under httpx.

The SDKs (groq, google-genai) and the OpenAI-compatible client speak httpx; what carries their
requests is a transport, httpx's interface for one. httpx's own (httpcore's pool, h11's parser
in pure Python, anyio around every read) cost most of reading an answer's stream: at a token a
chunk, h11's state machine and httpcore's events around it were a fifth of the event loop
(issue 22). `httpx_aiohttp.AiohttpTransport`, the transport the groq and openai SDKs ship as
their `aiohttp` option, carries the same requests on aiohttp's pool and its C parser (llhttp).

`Transport` corrects one thing of it: its error map turns every aiohttp connection error into
`httpx.ConnectTimeout` (the first match of a parent class wins), so a refused connection, a
refused certificate or a server that hung up read as timeouts to the SDKs and the router.

Proxies from the environment (HTTP(S)_PROXY) are read by httpx only when a client makes its
own transport: `transport_for` gives None then, and the clients make httpx's.
"""

from __future__ import annotations

import asyncio
import urllib.request

import aiohttp
import httpx
import httpx_aiohttp


class Transport(httpx_aiohttp.AiohttpTransport):
    """aiohttp under httpx, its connection errors told apart from its timeouts."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, asyncio.TimeoutError):
                raise
            if isinstance(cause, aiohttp.ClientConnectorError):
                raise httpx.ConnectError(str(exc), request=request) from cause
            raise httpx.RemoteProtocolError(str(exc), request=request) from cause


def transport_for(limits: httpx.Limits) -> Transport | None:
    """This module's transport, or None where httpx's own must be used (a proxy is set in the
    environment, which httpx reads only for a client without a transport given)."""
    if any(scheme in urllib.request.getproxies() for scheme in ("http", "https", "all")):
        return None
    return Transport(limits)
