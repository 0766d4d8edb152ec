"""Schemathesis against the app's own OpenAPI document, through real HTTP, signed in.

The run fails on any 5xx and on any answer the document does not describe: an undocumented
status, content type or body. It is bounded (examples per operation, a deadline for the
whole run) and CI runs it; `CHATWITHME_SKIP_FUZZ=1` skips it locally.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import httpx
import pytest

from app.asgi import create_app
from app.db.engine import Database
from app.settings import Settings
from tests.conftest import http_client
from tests.hostile import hostile_values
from tests.ops.conftest import served, sign_in
from tests.ops.fuzz_hooks import FUZZER_EMAIL

pytestmark = pytest.mark.skipif(
    os.environ.get("CHATWITHME_SKIP_FUZZ") == "1", reason="CHATWITHME_SKIP_FUZZ=1"
)

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CONFIG = str(Path(__file__).parent / "schemathesis.toml")  # the checks, and what is pending
EXAMPLES = os.environ.get("CHATWITHME_FUZZ_EXAMPLES", "50")
SEED = os.environ.get("CHATWITHME_FUZZ_SEED", "20261122")
THROWAWAY_EMAIL = "fuzzer-throwaway@example.com"
DEADLINE_SECONDS = 420  # a hung run fails instead of holding CI


async def _conversations(base_url: str) -> dict[str, str]:
    """Ids of two chats by the fuzzer's user (see fuzz_hooks.py), and a throwaway user's token,
    for schemathesis.toml."""
    found: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        signed_in = await client.post("/api/auth/dev-login", json={"email": FUZZER_EMAIL})
        token = signed_in.json()["sessionToken"]
        for which in ("", "SPARE_"):
            chat = await client.post(
                "/api/chat",
                json={"message": "Hello there", "stream": False},
                headers={"authorization": f"Bearer {token}"},
            )
            assert chat.status_code == 200, chat.text
            found[f"FUZZ_{which}CONVERSATION_ID"] = chat.json()["conversationId"]
            found[f"FUZZ_{which}MESSAGE_ID"] = chat.json()["aiMessage"]["id"]
        client.cookies.clear()  # a cookie session would need a CSRF token for the next POST
        throwaway = await client.post("/api/auth/dev-login", json={"email": THROWAWAY_EMAIL})
        found["FUZZ_THROWAWAY_TOKEN"] = throwaway.json()["sessionToken"]
    return found


async def test_every_answer_is_documented_and_none_is_a_server_error(
    live_settings: Settings, tmp_path: Path
) -> None:
    settings = live_settings.model_copy(
        update={
            # The fuzzer sends thousands of requests: limits would turn most of them into 429s.
            "chat_rate_limit": 1_000_000,
            "auth_signin_limit": 1_000_000,
            "dev_echo_delay_ms": 0,
        }
    )
    database = Database.from_url(settings.database_url or "", settings)
    async with served(create_app(settings, database=database)) as base_url:
        ids = await _conversations(base_url)
        process = await asyncio.create_subprocess_exec(
            SCHEMATHESIS,
            "--config-file",
            CONFIG,
            "run",
            f"{base_url}/schema/openapi.json",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "1",
            "--max-redirects",
            "0",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--no-color",
            cwd=tmp_path,
            env={
                **os.environ,
                "FUZZ_BASE_URL": base_url,
                **ids,
                "SCHEMATHESIS_HOOKS": "tests.ops.fuzz_hooks",
                "PYTHONPATH": str(Path(__file__).parents[2]),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), DEADLINE_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"the fuzz run took longer than {DEADLINE_SECONDS} s")
    report = output.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(report)
    summary = re.findall(r"^.*(?:operations|test cases|passed|failed).*$", report, re.MULTILINE)
    print("\n".join(summary))
    assert process.returncode == 0, report[-20_000:]


CONTENT_TYPES = [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "multipart/form-data", "application/json; charset=latin-1", "application/json; charset=utf-16",
    "application/xml", "a/b/c;;;", "application/json;;;=", None,
]  # fmt: skip
BODIES = [
    b'{"title": "x", "message": "hi", "email": "fuzzer@example.com"}',
    b"title=x&message=hi",
    b'--x\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n--x--\r\n',
    b"\xff\xfe{\x00}\x00",
]
SWEPT = {"cursor", "before", "tz", "from", "to", "q", "tag"}


def _server_error_or_no_problem(response: httpx.Response) -> str | None:
    """What is wrong with an answer to a hostile request, if anything."""
    if response.status_code >= 500:
        return f"{response.status_code}: {response.text[:200]}"
    if response.status_code >= 400:
        body = response.json()
        if not {"status", "title", "detail"} <= body.keys():
            return f"{response.status_code} without a problem body: {response.text[:200]}"
    return None


async def test_hostile_cursors_zones_instants_and_content_types_get_no_server_error(
    live_settings: Settings,
) -> None:
    """Every query parameter the API decodes itself, found in the OpenAPI document, with each
    value of tests/hostile.py; every operation with a body, with odd content types. No 5xx,
    and every 4xx is a problem."""
    settings = live_settings.model_copy(
        update={"chat_rate_limit": 1_000_000, "search_rate_limit": 1_000_000}
    )
    database = Database.from_url(settings.database_url or "", settings)
    async with http_client(create_app(settings, database=database)) as client:
        client.headers["authorization"] = f"Bearer {await sign_in(client, 'hostile@example.com')}"
        chat = await client.post("/api/chat", json={"message": "Hello there", "stream": False})
        assert chat.status_code == 200, chat.text
        ids = {
            "conversation_id": chat.json()["conversationId"],
            "message_id": chat.json()["aiMessage"]["id"],
            "reaction": "like",
        }
        document = (await client.get("/schema/openapi.json")).json()
        wrong: list[str] = []
        swept: set[str] = set()
        for path, operations in document["paths"].items():
            if path.startswith("/api/auth/"):  # sign-out would end the sweep's session
                continue
            url = path.format_map({name: ids.get(name, "x") for name in _names(path)})
            for method, operation in operations.items():
                query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
                base = {"q": "hello"} if "q" in query else {}
                for name in query if method == "get" else ():
                    for value in hostile_values(name):
                        response = await client.get(url, params={**base, name: value})
                        if problem := _server_error_or_no_problem(response):
                            wrong.append(f"GET {url} {name}={value[:60]!r}: {problem}")
                        swept.add(name)
                if "requestBody" not in operation or method == "delete":
                    continue
                for content_type in CONTENT_TYPES:
                    for body in BODIES:
                        headers = {"content-type": content_type} if content_type else {}
                        response = await client.request(method, url, content=body, headers=headers)
                        if problem := _server_error_or_no_problem(response):
                            wrong.append(f"{method.upper()} {url} {content_type}: {problem}")
    assert swept >= SWEPT, swept
    assert not wrong, "\n".join(wrong)


def _names(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)
