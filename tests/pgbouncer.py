"""A real pgbouncer in transaction mode in front of the test PostgreSQL, for the tests that
run the app through a pooler. Skipped, with the reason, where pgbouncer is not installed
(.ci/run installs Debian's)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

START_DEADLINE = 15.0


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    debian = Path("/usr/sbin/pgbouncer")
    return str(debian) if debian.exists() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_address(server_url: str) -> tuple[str, int, str]:
    """Host (or unix socket folder), port and user of the test server."""
    url = make_url(server_url)
    host = url.query.get("host") or url.host or "127.0.0.1"
    if isinstance(host, tuple):
        host = host[-1]
    port = url.port
    if port is None and host.startswith("/"):
        sockets = sorted(Path(host).glob(".s.PGSQL.*"))
        sockets = [s for s in sockets if not s.name.endswith(".lock")]
        port = int(sockets[0].name.rsplit(".", 1)[1]) if sockets else 5432
    return host, port or 5432, url.username or "postgres"


class PgBouncer:
    """pgbouncer in transaction mode on 127.0.0.1:`port`, its pool `pool_size` server
    connections per database; `url()` gives a pooled URL as hosted services hand them out."""

    def __init__(self, binary: str, server_url: str, folder: Path, pool_size: int) -> None:
        self.binary = binary
        self.folder = folder
        self.port = _free_port()
        self.pool_size = pool_size
        self.host, self.server_port, self.user = _server_address(server_url)
        self.server_url = server_url
        self.process: subprocess.Popen[str] | None = None

    def url(self, database_url: str, *, flag: bool = True) -> str:
        """`database_url`'s database, reached through this pgbouncer."""
        name = make_url(database_url).database
        suffix = "?pgbouncer=true" if flag else ""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}{suffix}"

    def start(self) -> PgBouncer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        (self.folder / "users.txt").write_text(f'"{self.user}" ""\n"pgbouncer" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self.host} port={self.server_port} user={self.user}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.folder / 'users.txt'}\n"
            f"admin_users = {self.user}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\n"
            "max_client_conn = 1000\n"
            "max_db_connections = 0\n"
            "server_check_delay = 0\n"
            "query_wait_timeout = 60\n"
        )
        for path in self.folder.iterdir():
            path.chmod(0o644)
        command = [self.binary, str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            command[1:1] = ["-u", _unprivileged_user()]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read() if self.process.stdout else ""
                raise AssertionError(f"pgbouncer exited with {self.process.returncode}:\n{output}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("pgbouncer did not start listening in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def admin(self, command: str) -> None:
        """Run a command on pgbouncer's admin console (`RECONNECT`, `PAUSE`, `RESUME`)."""
        connection = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user=self.user, database="pgbouncer",
            statement_cache_size=0,
        )  # fmt: skip
        try:
            # No arguments: the simple query protocol, the only one the console speaks.
            await connection.execute(command)
        finally:
            await connection.close()


def _unprivileged_user() -> str:
    for name in ("embedded_postgres", "postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return "nobody"


@contextmanager
def running_pgbouncer(server_url: str, pool_size: int = 4) -> Iterator[PgBouncer]:
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    folder = Path(tempfile.mkdtemp(prefix="chatwithme-pgbouncer-"))
    bouncer = PgBouncer(binary, server_url, folder, pool_size).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(folder, ignore_errors=True)
