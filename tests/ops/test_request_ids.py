"""Request ids: on every response (`X-Request-ID`) and on every log line of the request."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.asgi import create_app
from app.settings import Settings
from tests.conftest import CHATWITHME_BIN, TEST_SECRET
from tests.ops.conftest import free_port, served, sign_in

GENERATED = re.compile(r"^[0-9a-f]{32}$")


async def test_every_response_carries_a_request_id(live_settings: Settings) -> None:
    async with (
        served(create_app(live_settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        token = await sign_in(client, "request-ids@example.com")
        answers = [
            await client.get("/api/health"),
            await client.get("/api/no-such-route"),  # 404 from routing, before any handler
            await client.get("/api/conversations"),  # 401 from the guard
            await client.post(
                "/api/conversations",
                content=b"{",
                headers={**_bearer(token), "content-type": "application/json"},
            ),
        ]
        async with client.stream(
            "POST", "/api/chat", json={"message": "Hi", "stream": True}, headers=_bearer(token)
        ) as streamed:
            await streamed.aread()
            answers.append(streamed)
    assert [a.status_code for a in answers] == [200, 404, 401, 400, 200]
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(GENERATED.match(i) for i in ids)
    assert len(set(ids)) == len(ids)


async def test_a_sane_incoming_request_id_is_kept_and_any_other_replaced(
    live_settings: Settings,
) -> None:
    sent = {
        "edge-7f3a.b_c-9": True,
        "x" * 128: True,
        "x" * 129: False,  # too long
        "has space": False,
        "semi;colon": False,
        "": False,
    }
    async with (
        served(create_app(live_settings)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        for value, kept in sent.items():
            answer = await client.get("/api/health", headers={"x-request-id": value})
            got = answer.headers["x-request-id"]
            assert (got == value) is kept, value
            assert kept or GENERATED.match(got)
            assert answer.headers.get_list("x-request-id") == [got]


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _serve(database_url: str, tmp_path: Path, log_format: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path),
        "AUTH_SECRET": TEST_SECRET,
        "APP_ENV": "development",
        "LOG_FORMAT": log_format,
        "LOG_LEVEL": "info",
        "SMTP_URL": "",
        "GROQ_API_KEY": "",
        "GEMINI_API_KEY": "",
        "OPENAI_COMPAT_BASE_URL": "",
    }
    process = subprocess.Popen(
        [CHATWITHME_BIN, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"serve did not start: {process.communicate()[1]}")


def _email_sign_in(url: str, request_id: str) -> None:
    """A request whose handler logs (the development sign-in link) and is access-logged."""
    with httpx.Client(base_url=url) as client:
        csrf = client.get("/api/auth/csrf").json()["csrfToken"]
        answer = client.post(
            "/api/auth/signin/email",
            json={"email": "logs@example.com"},
            headers={"x-csrf-token": csrf, "x-request-id": request_id},
        )
        assert answer.status_code == 200, answer.text


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    return stderr


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_log_lines_of_a_request_carry_its_id(
    own_database_url: str, tmp_path: Path, log_format: str
) -> None:
    process, url = _serve(own_database_url, tmp_path, log_format)
    try:
        _email_sign_in(url, f"trace-{log_format}-1")
    finally:
        stderr = _stop(process)
    lines = [line for line in stderr.splitlines() if f"trace-{log_format}-1" in line]
    if log_format == "json":
        entries = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert entries, stderr
        assert all(
            {"time", "level", "logger", "message", "request_id"} <= e.keys() for e in entries
        )
        mine = [e for e in entries if e["request_id"] == "trace-json-1"]
        loggers = {e["logger"] for e in mine}
        assert "app.auth.mailer" in loggers  # the handler's own line
        access = next(e for e in mine if e["logger"] == "uvicorn.access")
        assert access["status"] == 200
        assert access["path"] == "/api/auth/signin/email"
    else:
        assert any("app.auth.mailer" in line for line in lines), stderr
        assert any("uvicorn.access" in line for line in lines), stderr
        assert all(not line.startswith("{") for line in stderr.splitlines())
