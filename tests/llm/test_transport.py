"""The providers' HTTP transport (app/llm/transport.py): aiohttp under httpx, against real
HTTP/1.1 servers on 127.0.0.1, on asyncio's and uvloop's event loops. The SDKs and the router
tell failures apart by httpx's exception classes, so each kind of failure is checked here."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.llm.transport import Transport, transport_for

LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=10)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[None]], None]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(main: Awaitable[None]) -> None:
        with asyncio.Runner(loop_factory=factory) as loop:
            loop.run(main)  # type: ignore[arg-type]

    return runner


async def _request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def _response(body: bytes, *, close: bool = False) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n"
    return (head + ("connection: close\r\n" if close else "") + "\r\n").encode() + body


async def _serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def test_a_keep_alive_connection_the_server_closed_while_idle_is_not_reused(
    run: Callable[[Awaitable[None]], None],
) -> None:
    """The server answers with keep-alive, then closes the connection: the next request must
    notice and connect again rather than fail on the dead connection."""
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _request_head(reader)
        writer.write(_response(b"hello"))
        await writer.drain()
        writer.close()  # no `connection: close`: the client thinks it can keep it

    async def main() -> None:
        server = await _serve(handler)
        async with httpx.AsyncClient(transport=Transport(LIMITS)) as client:
            url = f"http://127.0.0.1:{_port(server)}/"
            for _ in range(3):
                response = await client.get(url)
                assert response.text == "hello"
                await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        server.close()
        assert connections == 3

    run(main())


def test_a_kept_connection_is_reused(run: Callable[[Awaitable[None]], None]) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await _request_head(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(_response(b"again"))
            await writer.drain()

    async def main() -> None:
        server = await _serve(handler)
        async with httpx.AsyncClient(transport=Transport(LIMITS)) as client:
            for _ in range(5):
                assert (await client.get(f"http://127.0.0.1:{_port(server)}/")).text == "again"
        server.close()
        assert connections == 1

    run(main())


def test_a_stalled_read_is_httpx_read_timeout_and_a_refused_connect_is_connect_error(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(5)  # then nothing

    async def main() -> None:
        server = await _serve(handler)
        timeout = httpx.Timeout(5.0, read=0.3)
        async with httpx.AsyncClient(transport=Transport(LIMITS), timeout=timeout) as client:
            async with client.stream("GET", f"http://127.0.0.1:{_port(server)}/") as response:
                pieces = []
                with pytest.raises(httpx.ReadTimeout):
                    async for piece in response.aiter_bytes():
                        pieces.append(piece)
                assert pieces == [b"first"]
            port = _port(server)
            server.close()
            await server.wait_closed()
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")

    run(main())


def test_a_connection_dropped_mid_body_is_a_read_error(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        writer.transport.abort()

    async def main() -> None:
        server = await _serve(handler)
        async with httpx.AsyncClient(transport=Transport(LIMITS)) as client:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await client.get(f"http://127.0.0.1:{_port(server)}/")
        server.close()

    run(main())


def test_a_server_that_hangs_up_before_answering_is_not_a_timeout(
    run: Callable[[Awaitable[None]], None],
) -> None:
    """httpx_aiohttp maps every aiohttp connection error to httpx.ConnectTimeout; the router
    would report a hang-up as the provider being slow."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.close()

    async def main() -> None:
        server = await _serve(handler)
        async with httpx.AsyncClient(transport=Transport(LIMITS)) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{_port(server)}/")
        server.close()

    run(main())


def test_a_large_body_arrives_whole_to_a_slow_reader(
    run: Callable[[Awaitable[None]], None],
) -> None:
    body = bytes(range(256)) * 16 * 1024  # 4 MiB, past the reader's buffer limits

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(_response(body, close=True))
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await _serve(handler)
        url = f"http://127.0.0.1:{_port(server)}/"
        async with (
            httpx.AsyncClient(transport=Transport(LIMITS)) as client,
            client.stream("GET", url) as response,
        ):
            received = bytearray()
            async for piece in response.aiter_raw():
                received += piece
                await asyncio.sleep(0)  # a slow reader
        assert bytes(received) == body
        server.close()

    run(main())


def test_a_request_body_larger_than_the_socket_buffer_is_sent_whole(
    run: Callable[[Awaitable[None]], None],
) -> None:
    body = b"x" * (8 * 1024 * 1024)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _request_head(reader)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await asyncio.sleep(0.2)  # the client's buffers fill meanwhile
        got = await reader.readexactly(length)
        writer.write(_response(str(len(got)).encode()))
        await writer.drain()

    async def main() -> None:
        server = await _serve(handler)
        async with httpx.AsyncClient(transport=Transport(LIMITS)) as client:
            response = await client.post(f"http://127.0.0.1:{_port(server)}/", content=body)
        assert response.text == str(len(body))
        server.close()

    run(main())


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_verifies_the_server_and_streams(
    run: Callable[[Awaitable[None]], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose certificate is trusted (by SSL_CERT_FILE, which httpx's SSL context
    reads) answers; an untrusted one is refused as a connect error, not a timeout."""
    cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _request_head(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the refused handshake
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for word in (b"over ", b"tls"):
            writer.write(b"%x\r\n%s\r\n" % (len(word), word))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def main(trusted: bool) -> None:
        server = await _serve(handler, server_context)
        url = f"https://localhost:{_port(server)}/"
        async with httpx.AsyncClient(transport=Transport(LIMITS)) as client:
            if trusted:
                response = await client.get(url)
                assert response.text == "over tls"
                assert response.extensions["http_version"] == b"HTTP/1.1"
            else:
                with pytest.raises(httpx.ConnectError):
                    await client.get(url)
        server.close()

    run(main(trusted=False))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    run(main(trusted=True))


def test_a_proxy_in_the_environment_leaves_the_client_to_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(transport_for(LIMITS), Transport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert transport_for(LIMITS) is None
