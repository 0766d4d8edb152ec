"""examples/nextjs in a real browser: Chromium (Debian's, driven by Playwright) against the
example built with `next build` and run with `next start`, and the API beside it (uvicorn on
loopback, the `dev-echo` model slowed down), on one real PostgreSQL database.

Sign-in is Auth.js's own email flow: the link is read from a local SMTP catcher (aiosmtpd).
Two deployments run side by side, each with its own API process and `next start`:
- same origin: the browser only sees http://localhost:NEXT; Next.js `rewrites` forward
  /api/chat, /api/conversations, ... to the API, whose AUTH_URL is the Next.js origin;
- cross origin (same site): the page calls http://localhost:API directly, the API has
  CORS_ALLOWED_ORIGINS=http://localhost:NEXT and AUTH_URL=its own origin.
Cookies ignore ports, so localhost:NEXT and localhost:API share authjs.session-token and
authjs.csrf-token (one AUTH_SECRET for both sides); 127.0.0.1 is another site.

Skipped when node, npm or Chromium is missing. `npm ci` runs once into pytest's cache folder
(again only when package-lock.json changes); `next build` runs once per test run (the rewrites'
target port is fixed at build time). Run alone with `pytest -m example -n 0`.
"""

from __future__ import annotations

import asyncio
import fcntl
import http.server
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import uvicorn
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from app.asgi import create_app
from app.db import migrate
from app.db.url import to_libpq
from app.settings import Settings
from tests.conftest import TEST_SECRET, DatabaseFactory, in_thread
from tests.npm import cache_folder, npm_install

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nextjs"
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node") is not None and shutil.which("npm") is not None
NOT_COPIED = {"node_modules", ".next", "generated", "package.json", "package-lock.json"}
WORD_DELAY_MS = 50
ANSWER_DONE = 30_000  # ms
# Auth.js's link (provider "nodemailer") and the API's own (provider "email").
LINK = re.compile(r"(http://\S+/api/auth/callback/(?:nodemailer|email)\?[^\s\"'<>]+)")
CHAT_URL = re.compile(r"/chat/([A-Za-z0-9]{16})$")
LONG = " ".join(f"word{i}" for i in range(60))

pytestmark = [
    pytest.mark.example,
    pytest.mark.skipif(not NODE, reason="node and npm are not installed: no Next.js example"),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed (apt-get install -y chromium); browser tests skipped",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*"),
]


# -- the mail catcher ----------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.links: dict[str, str] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                body = part.get_payload(decode=True)
                found = LINK.search(body.decode() if isinstance(body, bytes) else "")
                if found:
                    for to in envelope.rcpt_tos:
                        self.links[to.lower()] = found.group(1)
        return "250 Message accepted for delivery"

    async def link_for(self, email: str) -> str:
        for _ in range(200):
            if link := self.links.pop(email.lower(), None):
                return link
            await asyncio.sleep(0.05)
        raise AssertionError(f"no sign-in email for {email}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listener() -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    return listener, int(listener.getsockname()[1])


# -- the example: installed, built, started ----------------------------------------------


def _copy_sources(folder: Path) -> None:
    """The example's files next to the installed node_modules (the build needs them there)."""
    for path in EXAMPLE.rglob("*"):
        relative = path.relative_to(EXAMPLE)
        if relative.parts[0] in NOT_COPIED or not path.is_file():
            continue
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _node_env(folder: Path) -> dict[str, str]:
    empty_engine = folder / "no-engine"
    empty_engine.touch()
    empty_engine.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRISMA_", "NEXT_", "AUTH_"))}
    return env | {
        # Installed without scripts, so no engine was downloaded; Prisma 7's client needs none
        # (driver adapter) and `prisma generate` must not try to fetch one.
        "PRISMA_SCHEMA_ENGINE_BINARY": str(empty_engine),
        "PRISMA_QUERY_ENGINE_LIBRARY": str(empty_engine),
        "CHECKPOINT_DISABLE": "1",
        "PRISMA_HIDE_UPDATE_MESSAGE": "1",
        "NEXT_TELEMETRY_DISABLED": "1",
    }


def _run(folder: Path, env: dict[str, str], *command: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [str(folder / "node_modules" / ".bin" / command[0]), *command[1:]],
        cwd=folder, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"
    return time.monotonic() - started


@dataclass
class NextApp:
    url: str  # as the browser reaches it: http://localhost:PORT
    process: subprocess.Popen[bytes]
    log: Path


def _start_next(
    folder: Path, env: dict[str, str], port: int, public_api: str, log: Path
) -> NextApp:
    url = f"http://localhost:{port}"
    env = env | {"AUTH_URL": url, "CHATWITHME_PUBLIC_API_URL": public_api, "NODE_ENV": "production"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(folder / "node_modules" / ".bin" / "next"), "start", "-H", "127.0.0.1",
             "-p", str(port)],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"next start exited:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/auth/providers", timeout=5):
                return NextApp(url, process, log)
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise AssertionError(f"next start did not answer:\n{log.read_text()}")


def _api_settings(
    database_url: str, data_dir: Path, auth_url: str, cors: str = "", smtp_url: str | None = None
) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=database_url,
        data_dir=data_dir,
        auth_secret=TEST_SECRET,  # the same AUTH_SECRET as the Next.js app's
        auth_url=auth_url,
        cors_allowed_origins=cors,
        smtp_url=smtp_url,
        email_from="ChatWithMe API <api@example.test>",
        groq_api_key=None,
        gemini_api_key=None,
        openai_compat_base_url=None,
        dev_echo_delay_ms=WORD_DELAY_MS,
    )


class Api:
    """The API served by uvicorn in the test's event loop, on a socket bound beforehand."""

    def __init__(self, settings: Settings, listener: socket.socket) -> None:
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
        self.listener = listener
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.listener]))
        while not self.server.started:  # uvicorn offers no event to wait on
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.listener.close()


@dataclass
class Stack:
    database_url: str
    mailbox: Mailbox
    same_origin: NextApp  # rewrites to its API; the browser sees only this origin
    cross_origin: NextApp  # calls `api` directly
    api: str  # the cross-origin deployment's API, as the browser reaches it
    elsewhere_port: int  # a static page on an origin that is not allowed


class _Elsewhere(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>elsewhere</title><p>Another origin</p>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, str], int, socket.socket, int]]:
    """`npm ci` (cached), `prisma generate` and `next build` with the rewrites pointing at a
    port reserved for the same-origin deployment's API. Yields the folder, the environment,
    the Next.js port of that deployment, the API's listening socket and its port."""
    folder = npm_install(EXAMPLE, cache_folder(request, tmp_path_factory, "nextjs-example"))
    env = _node_env(folder)
    api_listener, api_port = _listener()
    next_port = _free_port()
    # One build in this folder at a time; the Prisma 7 test works in it too (same lock).
    with (folder / ".build-lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        _copy_sources(folder)
        generate = _run(folder, env, "prisma", "generate")
        build = _run(
            folder, env | {"CHATWITHME_API_URL": f"http://127.0.0.1:{api_port}"}, "next", "build"
        )
    print(f"prisma generate {generate:.1f} s, next build {build:.1f} s")
    yield folder, env, next_port, api_listener, api_port


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    built: tuple[Path, dict[str, str], int, socket.socket, int],
    databases: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    folder, env, same_port, same_api_listener, _ = built
    database_url = databases.create()
    in_thread(migrate.upgrade, database_url)
    mailbox = Mailbox()
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    smtp_port = _free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    logs = tmp_path_factory.mktemp("next-logs")
    cross_listener, cross_api_port = _listener()
    cross_port = _free_port()
    same_url, cross_url = f"http://localhost:{same_port}", f"http://localhost:{cross_port}"
    cross_api = f"http://localhost:{cross_api_port}"
    apis = [
        # Same origin: AUTH_URL is the origin the browser uses, the Next.js one.
        Api(_api_settings(database_url, logs / "api-same", same_url), same_api_listener),
        # Cross origin: the API's own origin, and the Next.js origin allowed.
        Api(
            _api_settings(
                database_url,
                logs / "api-cross",
                cross_api,
                cross_url,
                smtp_url=f"smtp://127.0.0.1:{smtp_port}",
            ),
            cross_listener,
        ),
    ]
    for api in apis:
        await api.start()
    node_env = env | {
        "AUTH_SECRET": TEST_SECRET,
        "AUTH_TRUST_HOST": "true",
        "DATABASE_URL": to_libpq(database_url),
        "EMAIL_SERVER": f"smtp://127.0.0.1:{smtp_port}",
        "EMAIL_FROM": "ChatWithMe <chat@example.test>",
    }
    elsewhere = http.server.ThreadingHTTPServer(("", 0), _Elsewhere)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    apps: list[NextApp] = []
    try:
        apps.append(
            await asyncio.to_thread(_start_next, folder, node_env, same_port, "", logs / "same.log")
        )
        apps.append(
            await asyncio.to_thread(
                _start_next, folder, node_env, cross_port, cross_api, logs / "cross.log"
            )
        )
        yield Stack(database_url, mailbox, apps[0], apps[1], cross_api, elsewhere.server_address[1])
    finally:
        for app in apps:
            app.process.terminate()
            try:
                app.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.process.kill()
            print(f"--- {app.url} log:\n{app.log.read_text()[-3000:]}")
        elsewhere.shutdown()
        for api in apis:
            await api.stop()
        smtp.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(
    browser: Browser, request: pytest.FixtureRequest
) -> AsyncIterator[BrowserContext]:
    """A fresh browser (no cookies); console errors are printed, the last screen kept."""
    ctx = await browser.new_context(viewport={"width": 1100, "height": 760})
    errors: list[str] = []
    ctx.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield ctx
    ARTIFACTS.mkdir(exist_ok=True)
    for i, page in enumerate(ctx.pages):
        await page.screenshot(path=str(ARTIFACTS / f"nextjs-{request.node.name}-{i}.png"))
    await ctx.close()
    print("browser console errors:", errors)


# -- steps ----------------------------------------------------------------------------------


async def _rows(url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        return [dict(r) for r in await connection.fetch(query, *args)]
    finally:
        await connection.close()


async def sign_in(page: Page, stack: Stack, base: str) -> str:
    """Auth.js's email flow: ask for a link on the example, open the link from the mail."""
    email = f"{uuid.uuid4().hex[:10]}@example.test"
    await page.goto(f"{base}/")
    await page.locator("#email").fill(email)
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await page.wait_for_url(re.compile(r"/api/auth/verify-request"))
    link = await stack.mailbox.link_for(email)
    assert link.startswith(f"{base}/api/auth/callback/nodemailer?")
    await page.goto(link)
    await page.wait_for_url(re.compile(r"/chat/[A-Za-z0-9]{16}$"))
    return email


def last_answer(page: Page) -> Any:
    return page.locator("#messages article.assistant").last


async def send(page: Page, text: str) -> None:
    await page.locator("#composer").fill(text)
    await page.locator("#composer").press("Enter")


async def answered(page: Page, status: str = "complete") -> None:
    await expect(page.locator("#chat-status")).to_have_attribute(
        "data-status", "ready", timeout=ANSWER_DONE
    )
    await expect(last_answer(page)).to_have_attribute("data-status", status, timeout=ANSWER_DONE)


async def chat_through(page: Page, stack: Stack, base: str) -> None:
    """Sign in, chat, reload mid-answer, Stop, a second turn, the list and search."""
    email = await sign_in(page, stack, base)
    found = CHAT_URL.search(page.url)
    assert found, page.url
    chat_id = found.group(1)
    await expect(page.locator("#chat-status")).to_have_attribute("data-status", "ready")

    # 1. An answer streams through (not held back until it ends), and survives a reload.
    await send(page, f"zebra {LONG}")
    await expect(last_answer(page)).to_contain_text("You said", timeout=ANSWER_DONE)
    partial = await last_answer(page).inner_text()
    assert "of this conversation" not in partial  # seen while it was being written
    await page.reload()
    await expect(last_answer(page)).to_contain_text(
        "(message 1 of this conversation).", timeout=ANSWER_DONE
    )
    await answered(page)
    await expect(page.locator("#messages article.assistant")).to_have_count(1)
    await expect(page.locator("#messages article.user")).to_have_count(1)

    # 2. Stop: the API stops the answer and keeps what was written, as cancelled.
    await send(page, f"stop me {LONG}")
    # The new answer, not the first one (which also says "You said"), is being written.
    await expect(page.locator("#messages article.assistant")).to_have_count(2, timeout=ANSWER_DONE)
    await expect(last_answer(page)).to_contain_text("You said", timeout=ANSWER_DONE)
    await page.locator("#stop").click()
    await answered(page, "cancelled")
    await expect(last_answer(page)).not_to_contain_text("word59")

    # 3. A second turn: only the new message is sent, the API counts the whole history.
    await send(page, "And one more thing")
    await expect(last_answer(page)).to_contain_text(
        '"And one more thing" (message 3 of this conversation).', timeout=ANSWER_DONE
    )
    await answered(page)

    # 4. The conversation list and search come from the API.
    await expect(page.locator(f'#conversations a[href="/chat/{chat_id}"]')).to_have_count(1)
    await page.locator("#search-input").fill("zebra")
    await page.locator("#search-input").press("Enter")
    await expect(page.locator(f'#search-results a[href="/chat/{chat_id}"]')).to_have_count(1)

    rows = await _rows(
        stack.database_url,
        'SELECT m.role, m.status, u.email FROM messages m JOIN users u ON u.id = m."userId" '
        'WHERE m."conversationId" = $1 ORDER BY m."createdAt"',
        chat_id,
    )
    assert [(r["role"], r["status"]) for r in rows] == [
        ("user", "complete"), ("assistant", "complete"),
        ("user", "complete"), ("assistant", "cancelled"),
        ("user", "complete"), ("assistant", "complete"),
    ]  # fmt: skip
    assert {r["email"] for r in rows} == {email}


# -- the tests ------------------------------------------------------------------------------


async def test_same_origin_through_rewrites(stack: Stack, context: BrowserContext) -> None:
    page = await context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await chat_through(page, stack, stack.same_origin.url)
    # The browser talked to the Next.js origin only.
    assert all(u.startswith(stack.same_origin.url) for u in requests), requests


async def test_cross_origin_with_cors(stack: Stack, context: BrowserContext) -> None:
    page = await context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await chat_through(page, stack, stack.cross_origin.url)
    assert any(u.startswith(f"{stack.api}/api/chat") for u in requests), requests


# A page on an origin the API does not allow tries what a hostile page would: a JSON POST
# (preflighted), a "simple" POST that needs no preflight, and a read.
HOSTILE = """async ([api, id]) => {
  const parts = [{ type: "text", text: "from elsewhere" }];
  const message = { id: "m-" + id, role: "user", parts };
  const body = JSON.stringify({ id, message });
  const out = {};
  try {
    const r = await fetch(api + "/api/chat", { method: "POST", credentials: "include",
      headers: { "content-type": "application/json" }, body });
    out.json = r.status;
  } catch (e) { out.json = "failed"; }
  try {
    const r = await fetch(api + "/api/chat", { method: "POST", credentials: "include",
      mode: "no-cors", headers: { "content-type": "text/plain" }, body });
    out.simple = r.type;
  } catch (e) { out.simple = "failed"; }
  try {
    const r = await fetch(api + "/api/conversations", { credentials: "include" });
    out.read = r.status;
  } catch (e) { out.read = "failed"; }
  return out;
}"""


async def test_an_origin_that_is_not_allowed_gets_nothing(
    stack: Stack, context: BrowserContext
) -> None:
    page = await context.new_page()
    email = await sign_in(page, stack, stack.cross_origin.url)  # the cookies are in the browser
    ids = []
    # localhost:OTHER is the same site (the session cookie goes along: the Origin rule and
    # CORS must stop it); 127.0.0.1 is another site (SameSite=Lax keeps the cookie back).
    for host in ("localhost", "127.0.0.1"):
        await page.goto(f"http://{host}:{stack.elsewhere_port}/")
        chat_id = ("elsewhere" + host.replace(".", "") + "x" * 16)[:16]
        ids.append(chat_id)
        seen = await page.evaluate(HOSTILE, [stack.api, chat_id])
        # The preflight is refused, the simple POST's answer is unreadable, the read is blocked.
        assert seen == {"json": "failed", "simple": "opaque", "read": "failed"}, (host, seen)
    stored = await _rows(
        stack.database_url,
        'SELECT c.id FROM conversations c JOIN users u ON u.id = c."userId" '
        "WHERE c.id = ANY($1::text[]) OR u.email = $2",
        ids, email,
    )  # fmt: skip
    assert stored == []


def _cookie(cookies: list[Any], name: str) -> str | None:
    return next((c["value"] for c in cookies if c["name"] == name), None)


async def test_one_sign_in_two_frontends(stack: Stack, context: BrowserContext) -> None:
    """Auth.js's session works on the API's own page, one CSRF cookie serves both sides, an
    Auth.js sign-out ends the session for both, and the API's own sign-in works on Next.js."""
    next_url = stack.cross_origin.url
    page = await context.new_page()
    # The API makes the CSRF cookie first; Auth.js, with the same secret, must keep it.
    await page.goto(f"{stack.api}/api/auth/csrf")
    csrf = _cookie(await context.cookies(), "authjs.csrf-token")
    assert csrf and csrf.split("|")[0] in await page.content()
    email = await sign_in(page, stack, next_url)
    await send(page, "Asked on Next.js")
    await answered(page)
    before = await context.cookies()
    session = _cookie(before, "authjs.session-token")
    assert session and _cookie(before, "authjs.csrf-token") == csrf

    # The API's own page, in the same browser: signed in by the cookie Auth.js set.
    api_page = await context.new_page()
    await api_page.goto(f"{stack.api}/")
    await expect(api_page.locator("#app")).to_be_visible()
    await expect(api_page.locator("#conversation-list")).to_contain_text("Asked on Next.js")
    await api_page.locator("#composer-input").fill("Asked on the API's page")
    await api_page.locator("#composer-input").press("Enter")
    await expect(api_page.locator("#message-list article.assistant").last).to_have_attribute(
        "data-status", "complete", timeout=ANSWER_DONE
    )
    after = await context.cookies()
    # One CSRF cookie for both (same name, same AUTH_SECRET): neither side replaced it.
    assert (_cookie(after, "authjs.csrf-token"), _cookie(after, "authjs.session-token")) == (
        csrf, session,
    )  # fmt: skip

    # Back on Next.js: another turn, then Auth.js's own sign-out page, whose POST Auth.js
    # checks against that same CSRF cookie.
    await page.goto(f"{next_url}/chat")
    await page.wait_for_url(CHAT_URL)
    await send(page, "Back on Next.js")
    await answered(page)
    await page.goto(f"{next_url}/api/auth/signout")
    await page.get_by_role("button", name="Sign out").click()
    await page.goto(f"{next_url}/")
    await expect(page.locator("#email")).to_be_visible()
    # Auth.js checked its sign-out against the API-made cookie, and kept it.
    assert _cookie(await context.cookies(), "authjs.csrf-token") == csrf
    sessions = await _rows(
        stack.database_url,
        'SELECT s.id FROM sessions s JOIN users u ON u.id = s."userId" WHERE u.email = $1',
        email,
    )
    assert sessions == []
    await api_page.reload()
    await expect(api_page.locator("#signin")).to_be_visible()

    # The other way round: the API's own email sign-in, then Next.js (Auth.js) knows the user.
    await api_page.locator("#email-address").fill(email)
    await api_page.get_by_role("button", name="Email me a sign-in link").click()
    link = await stack.mailbox.link_for(email)
    assert link.startswith(f"{stack.api}/api/auth/callback/email?")
    await api_page.goto(link)
    await expect(api_page.locator("#app")).to_be_visible()
    await page.goto(f"{next_url}/")
    await expect(page.locator("#signed-in")).to_contain_text(email)
