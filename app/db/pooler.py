"""Working through a connection pooler in transaction mode (pgbouncer `pool_mode=transaction`,
the pooled URLs of Supabase, Neon, Vercel Postgres, RDS Proxy).

Such a pooler lends a server connection for one transaction; the next transaction of the same
client connection may run on another server connection, shared with other processes. So:

- No statement is kept prepared. asyncpg's cache would name statements `__asyncpg_stmt_N__`,
  a name another process reuses ("already exists") and one the next server connection never
  saw ("does not exist", also after the pooler recycles its connections). With both caches
  off, asyncpg prepares each statement anonymously and parses it again in the same message
  batch (one Sync) as its Bind and Execute, so nothing outlives a round trip.
- Nothing is set for the session: a pooler refuses unknown startup parameters, and a session
  `SET` would stay on a server connection that other clients then use. The statement time
  bound (and the `?schema=` search path) is set with `set_config(..., true)`, which lasts one
  transaction, at the start of each transaction.
- LISTEN needs a session of its own: it is held on the direct URL (DATABASE_DIRECT_URL), or
  not at all (app/chat/live.py then falls back to reading the saved rows).

The pooled URL says so with Prisma's `?pgbouncer=true`; DB_POOLER=transaction adds that flag to
DATABASE_URL when settings are read (and DB_POOLER=session removes it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

FLAG = "pgbouncer"

# SQLAlchemy's asyncpg dialect: its own statement cache (named statements) off, and asyncpg's.
ENGINE_CONNECT_ARGS: dict[str, Any] = {
    "prepared_statement_cache_size": 0,
    "statement_cache_size": 0,
}
# asyncpg.connect / create_pool on their own.
DRIVER_CONNECT_ARGS: dict[str, Any] = {"statement_cache_size": 0}


def transaction_pooled(raw_url: str) -> bool:
    """The URL goes through a pooler in transaction mode (`?pgbouncer=true`)."""
    values = [v for k, v in parse_qsl(urlsplit(raw_url.strip()).query) if k == FLAG]
    return bool(values) and values[-1].lower() in {"true", "1", "yes", "on"}


def with_pooler(raw_url: str, pooler: str | None) -> str:
    """`raw_url` with the flag set for DB_POOLER=transaction, removed for session; unchanged
    when DB_POOLER is not set."""
    if pooler is None:
        return raw_url
    # Only the query changes (parsed with urllib: settings must not import SQLAlchemy).
    parts = urlsplit(raw_url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != FLAG]
    if pooler == "transaction":
        query.append((FLAG, "true"))
    return urlunsplit(parts._replace(query=urlencode(query, safe="/:")))


def engine_connect_args(raw_url: str) -> dict[str, Any]:
    """`connect_args` for a SQLAlchemy engine on `raw_url`."""
    return dict(ENGINE_CONNECT_ARGS) if transaction_pooled(raw_url) else {}


def driver_connect_args(raw_url: str) -> dict[str, Any]:
    """Options for `asyncpg.connect(raw_url)`."""
    return dict(DRIVER_CONNECT_ARGS) if transaction_pooled(raw_url) else {}


def per_transaction_sql(settings: dict[str, str]) -> str:
    """One statement that sets `settings` until the end of the current transaction."""
    calls = ", ".join(
        f"set_config({_literal(name)}, {_literal(value)}, true)" for name, value in settings.items()
    )
    return f"SELECT {calls}"


def _literal(value: str) -> str:
    # standard_conforming_strings is on (PostgreSQL's default since 9.1): only quotes double.
    return "'" + value.replace("'", "''") + "'"
