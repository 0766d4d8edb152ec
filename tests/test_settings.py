"""Settings: read from the environment and .env, refuse unsafe production configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.db.url import search_path_of, to_async_url
from app.lib.errors import ConfigurationError
from app.settings import Settings, load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No inherited variables, and a working directory without a .env file."""
    for name in [
        "APP_ENV", "DATABASE_URL", "DATA_DIR", "AUTH_SECRET", "AUTH_GOOGLE_ID",
        "GOOGLE_CLIENT_ID", "AUTH_GOOGLE_SECRET", "GOOGLE_CLIENT_SECRET",
        "GEMINI_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY", "DATABASE_DIRECT_URL", "DIRECT_URL",
        "DB_POOLER",
    ]:  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_production_without_auth_secret_refuses_to_start(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ConfigurationError, match="AUTH_SECRET"):
        load_settings()


@pytest.mark.parametrize("placeholder", ["changeme", "secret", "short-but-not-a-placeholder"])
def test_production_with_a_placeholder_secret_refuses_to_start(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("AUTH_SECRET", placeholder)
    with pytest.raises(ConfigurationError, match="AUTH_SECRET"):
        load_settings()


def test_production_with_a_real_secret_starts(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "PRODUCTION")
    monkeypatch.setenv("AUTH_SECRET", "k" * 43)
    settings = load_settings()
    assert settings.is_production
    assert settings.secret == "k" * 43


def test_development_secret_is_generated_once_and_kept(clean_env: Path) -> None:
    first = load_settings(data_dir=clean_env / "data").secret
    second = load_settings(data_dir=clean_env / "data").secret
    assert len(first) >= 32
    assert first == second
    assert (clean_env / "data" / "auth_secret").stat().st_mode & 0o077 == 0


def test_dotenv_file_is_read_and_environment_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text(
        "GROQ_API_KEY=from-file\nDATA_DIR=/srv/chat\nGOOGLE_CLIENT_ID=legacy-id\nREDIS_URL=\n"
    )
    monkeypatch.setenv("GROQ_API_KEY", "from-env")
    settings = load_settings()
    assert settings.groq_api_key == "from-env"
    assert settings.data_dir == Path("/srv/chat")
    assert settings.auth_google_id == "legacy-id"  # the NextAuth v4 name is read too
    assert settings.redis_url is None  # an empty value means "not set"


def test_invalid_values_name_the_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "lots")
    with pytest.raises(ConfigurationError, match="DB_POOL_SIZE"):
        load_settings()


def test_embedded_database_is_used_without_database_url(clean_env: Path) -> None:
    assert load_settings().uses_embedded_database
    assert not Settings(_env_file=None, database_url="postgres://h/db").uses_embedded_database  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://user:pw@db.example:5432/chat",
        "postgresql://user:pw@db.example:5432/chat",
        "postgresql+asyncpg://user:pw@db.example:5432/chat",
    ],
)
def test_prisma_and_libpq_urls_are_accepted(raw: str) -> None:
    url = to_async_url(raw)
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.username) == ("db.example", 5432, "chat", "user")


def test_prisma_only_url_options_are_translated() -> None:
    raw = "postgresql://u@h/chat?schema=tenant&connection_limit=5&sslmode=require"
    url = to_async_url(raw)
    assert dict(url.query) == {"ssl": "require"}
    assert search_path_of(raw) == "tenant"
    assert search_path_of("postgresql://u@h/chat?schema=public") is None


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("not a url", "not a valid URL"),
        ("mysql://u@h/db", "PostgreSQL URL"),
        ("postgresql://u@h", "names no database"),
        # Neon's URLs carry channel_binding=require; asyncpg.connect has no such keyword.
        ("postgresql://u@h/db?sslmode=require&channel_binding=require", "channel_binding"),
        ("postgresql://u@h/db?application_name=x", "application_name is not supported"),
    ],
)
def test_bad_database_urls_get_a_clear_error(raw: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        to_async_url(raw)


def test_prismas_pgbouncer_flag_means_a_transaction_pooler(clean_env: Path) -> None:
    assert not load_settings().transaction_pooled  # the embedded database
    for flagged in ("postgresql://u@pool:6543/db?pgbouncer=true", "postgres://pool/db?pgbouncer=1"):
        settings = Settings(_env_file=None, database_url=flagged)  # type: ignore[call-arg]
        assert settings.transaction_pooled
        # Without a direct URL there is no LISTEN line; migrations go through the pooled URL.
        assert settings.listen_url is None
        assert settings.migrations_url(flagged) == flagged
        # The flag is Prisma's, not libpq's: asyncpg never sees it.
        assert "pgbouncer" not in to_async_url(flagged).query


def test_db_pooler_sets_or_clears_the_flag_in_database_url(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@pool:6543/db?schema=app")
    monkeypatch.setenv("DB_POOLER", "transaction")
    settings = load_settings()
    assert settings.transaction_pooled
    assert settings.database_url == "postgresql://u@pool:6543/db?schema=app&pgbouncer=true"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@pool:5432/db?pgbouncer=true")
    monkeypatch.setenv("DB_POOLER", "session")
    assert not load_settings().transaction_pooled
    monkeypatch.setenv("DB_POOLER", "statement")
    with pytest.raises(ConfigurationError, match="DB_POOLER"):
        load_settings()


@pytest.mark.parametrize("name", ["DATABASE_DIRECT_URL", "DIRECT_URL"])
def test_the_direct_url_carries_migrations_and_listen(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@pool:6543/db?pgbouncer=true")
    monkeypatch.setenv(name, "postgresql://u@primary:5432/db")
    settings = load_settings()
    assert settings.listen_url == "postgresql://u@primary:5432/db"
    assert settings.migrations_url(settings.database_url or "") == "postgresql://u@primary:5432/db"
