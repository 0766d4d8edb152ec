"""`chatwithme serve` and its one-line start-up errors, run as a real subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.db.embedded import running_postgres_pids
from tests.conftest import DatabaseFactory

CHATWITHME = str(Path(sys.executable).parent / "chatwithme")
START_DEADLINE = 90.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "APP_ENV"}}
    env.update(extra)
    return env


def _start(cwd: Path, port: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CHATWITHME, "serve", "--port", str(port)],
        cwd=cwd,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_healthy(process: subprocess.Popen[str], port: int) -> dict[str, object]:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"serve exited with {process.returncode}:\n{output}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("serve did not become healthy in time")


def _interrupt(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=60)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder of its own outside pytest's: as root, PostgreSQL runs as another user that
    must reach it, and a pytest session starting meanwhile makes its own folders private."""
    folder = Path(tempfile.mkdtemp(prefix="chatwithme-cli-"))
    yield folder
    for pid in running_postgres_pids(folder / ".data" / "postgres"):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def test_serve_starts_embedded_postgres_and_stops_it_on_ctrl_c(workdir: Path) -> None:
    port = _free_port()
    pgdata = workdir / ".data" / "postgres"
    for _ in range(2):  # the second run reuses the data folder
        process = _start(workdir, port)
        health = _wait_healthy(process, port)
        assert health["status"] == "healthy"
        assert health["checks"]["database"]["ok"] is True  # type: ignore[index]
        assert running_postgres_pids(pgdata)
        assert _interrupt(process) == 0
        assert running_postgres_pids(pgdata) == []
    assert (pgdata / "PG_VERSION").exists()


def test_serve_recovers_from_a_crash_that_left_postgres_running(workdir: Path) -> None:
    port = _free_port()
    pgdata = workdir / ".data" / "postgres"
    crashed = _start(workdir, port)
    _wait_healthy(crashed, port)
    crashed.kill()  # no chance to stop its database
    crashed.wait(timeout=30)
    assert running_postgres_pids(pgdata)

    process = _start(workdir, port)
    assert _wait_healthy(process, port)["status"] == "healthy"
    assert _interrupt(process) == 0
    assert running_postgres_pids(pgdata) == []


def test_serve_recovers_from_a_stale_pid_file(workdir: Path) -> None:
    port = _free_port()
    pgdata = workdir / ".data" / "postgres"
    first = _start(workdir, port)
    _wait_healthy(first, port)
    _interrupt(first)
    # The pid of a live process that is not PostgreSQL, as after a reboot reused the number.
    (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{pgdata}\n0\n5432\n\n\n\nready\n")

    process = _start(workdir, port)
    assert _wait_healthy(process, port)["status"] == "healthy"
    assert _interrupt(process) == 0


def _run_serve(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATWITHME, "serve", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], cause: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("chatwithme: error")]
    assert len(errors) == 1, result.stderr
    assert cause in errors[0]


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_serve(tmp_path, "--port", str(port))
    _assert_one_line_error(result, "already in use")


def test_invalid_database_url_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run_serve(tmp_path, DATABASE_URL="mysql://root@localhost/chat")
    _assert_one_line_error(result, "DATABASE_URL")


def test_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run_serve(
        tmp_path,
        "--port",
        str(_free_port()),
        DATABASE_URL=f"postgresql://u@127.0.0.1:{_free_port()}/db",
    )
    _assert_one_line_error(result, "cannot use the database")


def test_unwritable_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _run_serve(tmp_path, "--port", str(_free_port()), DATA_DIR=str(blocker / "data"))
    _assert_one_line_error(result, "not writable")


def test_serve_refuses_a_database_that_is_behind(
    tmp_path: Path, databases: DatabaseFactory
) -> None:
    empty = databases.create()
    result = _run_serve(tmp_path, "--port", str(_free_port()), DATABASE_URL=empty)
    _assert_one_line_error(result, "chatwithme db upgrade")


def test_seed_demo_creates_a_user_with_conversations_and_a_working_session(
    tmp_path: Path, databases: DatabaseFactory
) -> None:
    from app.db import migrate
    from tests.conftest import in_thread

    url = databases.create()
    in_thread(migrate.upgrade, url)
    runs = [
        subprocess.run(
            [CHATWITHME, "seed-demo"], cwd=tmp_path, env=_env(DATABASE_URL=url),
            capture_output=True, text=True, timeout=120,
        )
        for _ in range(2)
    ]  # fmt: skip
    tokens = []
    for run in runs:
        assert run.returncode == 0, run.stderr
        line = next(x for x in run.stdout.splitlines() if x.startswith("session token: "))
        tokens.append(line.removeprefix("session token: "))
    assert tokens[0] != tokens[1]

    import asyncio

    import asyncpg

    async def check() -> tuple[int, int]:
        from app.db.url import to_libpq

        conn = await asyncpg.connect(to_libpq(url))
        try:
            conversations = await conn.fetchval(
                'SELECT count(*) FROM conversations c JOIN users u ON u.id = c."userId" '
                "WHERE u.email = 'demo@chatwithme.local'"
            )
            sessions = await conn.fetchval(
                'SELECT count(*) FROM sessions WHERE "sessionToken" = ANY($1::text[])', tokens
            )
            return conversations, sessions
        finally:
            await conn.close()

    assert in_thread(asyncio.run, check()) == (3, 2)  # seeded once, a session per run


def _run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATWITHME, *args], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=120
    )


def test_a_second_command_uses_the_running_server_and_leaves_it_running(workdir: Path) -> None:
    port = _free_port()
    pgdata = workdir / ".data" / "postgres"
    process = _start(workdir, port)
    _wait_healthy(process, port)

    current = _run(workdir, "db", "current")
    assert current.returncode == 0, current.stderr
    assert "current: " in current.stdout
    seeded = _run(workdir, "seed-demo")
    assert seeded.returncode == 0, seeded.stderr
    token = next(
        line.removeprefix("session token: ")
        for line in seeded.stdout.splitlines()
        if line.startswith("session token: ")
    )

    # The server of `serve` is still up, and serves what seed-demo stored through it.
    health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["checks"]["database"]["ok"] is True
    listed = httpx.get(
        f"http://127.0.0.1:{port}/api/conversations",
        headers={"authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert listed.status_code == 200
    assert len(listed.json()["conversations"]) == 3
    assert running_postgres_pids(pgdata)

    assert _interrupt(process) == 0  # its owner stops it
    assert running_postgres_pids(pgdata) == []


def test_sigterm_stops_serve_and_its_embedded_postgres(workdir: Path) -> None:
    port = _free_port()
    pgdata = workdir / ".data" / "postgres"
    process = _start(workdir, port)
    _wait_healthy(process, port)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert running_postgres_pids(pgdata) == []


def _port_in_time_wait() -> int:
    """A port whose last connection the server side closed first, as after a restart with
    idle keep-alive connections: it sits in TIME_WAIT for a minute."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first
        assert client.recv(1) == b""
        client.close()
    return port


def test_serve_starts_on_a_port_whose_last_connection_is_in_time_wait(
    tmp_path: Path, databases: DatabaseFactory
) -> None:
    from app.db import migrate
    from tests.conftest import in_thread

    url = databases.create()
    in_thread(migrate.upgrade, url)
    port = _port_in_time_wait()
    with socket.socket() as plain, pytest.raises(OSError, match="in use"):
        plain.bind(("127.0.0.1", port))  # what the old free-port check did

    process = _start(tmp_path, port, DATABASE_URL=url)
    assert _wait_healthy(process, port)["status"] == "healthy"
    assert _interrupt(process) == 0


def test_port_sets_the_default_auth_url(tmp_path: Path, databases: DatabaseFactory) -> None:
    from app.db import migrate
    from tests.conftest import in_thread

    url = databases.create()
    in_thread(migrate.upgrade, url)
    port = _free_port()
    env = {k: v for k, v in _env(DATABASE_URL=url, AUTH_DEV_LOGIN="1").items() if k != "AUTH_URL"}
    process = subprocess.Popen(
        [CHATWITHME, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_healthy(process, port)
        origin = f"http://127.0.0.1:{port}"
        providers = httpx.get(f"{origin}/api/auth/providers", timeout=5).json()
        assert providers["email"]["signinUrl"] == f"{origin}/api/auth/signin/email"
        signed_in = httpx.post(
            f"{origin}/api/auth/dev-login", json={"email": "ada@example.com"}, timeout=5
        )
        assert signed_in.status_code == 200
        # A request from the server's own origin, with the session cookie, is accepted.
        session = httpx.get(
            f"{origin}/api/auth/session",
            cookies=signed_in.cookies,
            headers={"origin": origin},
            timeout=5,
        )
        assert session.status_code == 200, session.text
        assert session.json()["user"]["email"] == "ada@example.com"
    finally:
        assert _interrupt(process) == 0


def test_an_explicit_auth_url_is_kept(tmp_path: Path, databases: DatabaseFactory) -> None:
    from app.db import migrate
    from tests.conftest import in_thread

    url = databases.create()
    in_thread(migrate.upgrade, url)
    port = _free_port()
    process = _start(tmp_path, port, DATABASE_URL=url, AUTH_URL="https://chat.example.com")
    try:
        _wait_healthy(process, port)
        providers = httpx.get(f"http://127.0.0.1:{port}/api/auth/providers", timeout=5).json()
        assert providers["email"]["signinUrl"] == "https://chat.example.com/api/auth/signin/email"
    finally:
        assert _interrupt(process) == 0


@pytest.mark.parametrize(
    "origins", ["*", "https://app.example.com/path", "app.example.com", "https://*.example.com"]
)
def test_a_wildcard_or_malformed_cors_origin_is_a_one_line_error(
    tmp_path: Path, origins: str
) -> None:
    result = _run_serve(tmp_path, "--port", str(_free_port()), CORS_ALLOWED_ORIGINS=origins)
    _assert_one_line_error(result, "CORS_ALLOWED_ORIGINS")


def _dev_logins(port: int, count: int) -> list[int]:
    """Dev-logins for different addresses, each claiming another X-Forwarded-For address."""
    return [
        httpx.post(
            f"http://127.0.0.1:{port}/api/auth/dev-login",
            json={"email": f"user{i}@example.com"},
            headers={"x-forwarded-for": f"203.0.113.{i + 1}"},
            timeout=5,
        ).status_code
        for i in range(count)
    ]


def test_forwarded_addresses_count_only_from_trusted_proxies_and_secrets_stay_out_of_the_log(
    tmp_path: Path, databases: DatabaseFactory
) -> None:
    from app.db import migrate
    from tests.conftest import in_thread

    url = databases.create()
    in_thread(migrate.upgrade, url)
    limits = {"DATABASE_URL": url, "AUTH_DEV_LOGIN": "1", "AUTH_SIGNIN_LIMIT": "1"}  # 3 per IP
    port = _free_port()
    process = _start(tmp_path, port, **limits)
    try:
        _wait_healthy(process, port)
        # A local client cannot choose its address: all four count against 127.0.0.1.
        assert _dev_logins(port, 4) == [200, 200, 200, 429]
        link = "/api/auth/callback/email?token=f00dfacecafe1234&email=ada%40example.com"
        httpx.get(f"http://127.0.0.1:{port}{link}", timeout=5)
    finally:
        assert _interrupt(process) == 0
    log = process.stdout.read() if process.stdout else ""
    assert "/api/auth/callback/email?token=[redacted]&email=[redacted]" in log
    assert "f00dfacecafe1234" not in log and "ada%40example.com" not in log
    assert "203.0.113." not in log

    port = _free_port()
    process = _start(tmp_path, port, **limits, TRUSTED_PROXIES="127.0.0.1")
    try:
        _wait_healthy(process, port)
        # Behind a trusted proxy each forwarded address has a limit of its own.
        assert _dev_logins(port, 4) == [200, 200, 200, 200]
    finally:
        assert _interrupt(process) == 0
    assert "203.0.113.4" in (process.stdout.read() if process.stdout else "")
