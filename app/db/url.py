"""Turn the database URLs people already have (Prisma, NextAuth, libpq) into asyncpg ones."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from app.lib.errors import ConfigurationError

_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"}
# Prisma connection-string options that are instructions to Prisma's engine, not to libpq.
_PRISMA_ONLY = {"schema", "connection_limit", "pool_timeout", "pgbouncer", "statement_cache_size",
                "socket_timeout", "connect_timeout"}  # fmt: skip
# What else a URL may carry: SQLAlchemy hands every query option to asyncpg.connect as a
# keyword, and asyncpg takes these (sslmode becomes ssl). Any other (libpq's application_name,
# channel_binding, sslrootcert...) would fail every connection with a TypeError.
_ASYNCPG_OPTIONS = {"host", "port", "user", "password", "passfile", "database", "ssl",
                    "direct_tls", "target_session_attrs", "krbsrvname", "gsslib"}  # fmt: skip


def to_async_url(raw: str, name: str = "DATABASE_URL") -> URL:
    """Parse `postgres://`, `postgresql://` or `postgresql+asyncpg://` URLs for asyncpg;
    `name` is the setting errors name."""
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise ConfigurationError(
            f"{name} is not a valid URL (expected postgresql://user:password@host:5432/db)"
        ) from None
    if url.drivername not in _SCHEMES:
        raise ConfigurationError(
            f"{name} must be a PostgreSQL URL (postgresql://...), not {url.drivername}://"
        )
    if not url.database:
        raise ConfigurationError(f"{name} names no database (postgresql://host/DATABASE)")
    query = {k: v for k, v in url.query.items() if k not in _PRISMA_ONLY}
    if "sslmode" in query:
        # asyncpg takes libpq's sslmode values under the name "ssl".
        query["ssl"] = query.pop("sslmode")
    unknown = sorted(set(query) - _ASYNCPG_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"{name} option {', '.join(unknown)} is not supported (asyncpg takes sslmode, "
            "host, port, user, password, passfile, target_session_attrs; PGSSLROOTCERT in the "
            "environment names a CA file; channel_binding: remove it, sslmode still applies)"
        )
    return url.set(drivername="postgresql+asyncpg", query=query)


def to_libpq(raw: str) -> str:
    """The same URL for asyncpg (or psql): plain `postgresql://`, options translated."""
    url = to_async_url(raw).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def search_path_of(raw: str) -> str | None:
    """The Prisma `?schema=` option, which selects the PostgreSQL schema."""
    schema = make_url(raw.strip()).query.get("schema")
    if isinstance(schema, tuple):
        schema = schema[-1]
    return schema if schema and schema != "public" else None


def display(url: URL) -> str:
    """The URL without its password, for logs and error messages."""
    return url.render_as_string(hide_password=True)
