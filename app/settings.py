"""The one place where configuration is read: the process environment and `./.env`."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.db.pooler import transaction_pooled, with_pooler
from app.lib.errors import ConfigurationError

# Values copied from examples and tutorials; a production server must not run with them.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "your-secret", "your-secret-here", "development"}
)
MIN_SECRET_LENGTH = 32
SECRET_FILE_NAME = "auth_secret"  # noqa: S105 (a file name, not a secret)


class Settings(BaseSettings):
    """Typed settings; names are the environment variables of DESIGN.md."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    app_env: Literal["development", "production", "test"] = Field(
        default="development", validation_alias="APP_ENV"
    )
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # The same database without the pooler (Prisma's directUrl): migrations, LISTEN/NOTIFY.
    database_direct_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_DIRECT_URL", "DIRECT_URL")
    )
    # What DATABASE_URL goes through; unset: a pooler in transaction mode when the URL has
    # Prisma's ?pgbouncer=true (app/db/pooler.py).
    db_pooler: Literal["session", "transaction"] | None = Field(
        default=None, validation_alias="DB_POOLER"
    )
    # Streaming replicas (comma separated) for lists, pages, search, stats and exports; each
    # entry follows its own `?pgbouncer=true` (app/db/replicas.py).
    database_replica_urls: str | None = Field(
        default=None, validation_alias="DATABASE_REPLICA_URLS"
    )
    # A replica further behind than this (seconds) is skipped until it catches up.
    db_replica_max_lag: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="DB_REPLICA_MAX_LAG"
    )
    # How often each process reads the replicas' replayed WAL position (and the primary's).
    db_replica_poll: float = Field(default=0.2, ge=0.02, le=10, validation_alias="DB_REPLICA_POLL")
    data_dir: Path = Field(default=Path(".data"), validation_alias="DATA_DIR")
    auth_secret: str | None = Field(default=None, validation_alias="AUTH_SECRET")
    auth_url: str = Field(default="http://127.0.0.1:8000", validation_alias="AUTH_URL")
    auth_google_id: str | None = Field(
        default=None, validation_alias=AliasChoices("AUTH_GOOGLE_ID", "GOOGLE_CLIENT_ID")
    )
    auth_google_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("AUTH_GOOGLE_SECRET", "GOOGLE_CLIENT_SECRET")
    )
    auth_google_issuer: str = Field(
        default="https://accounts.google.com", validation_alias="AUTH_GOOGLE_ISSUER"
    )
    auth_dev_login: bool = Field(default=False, validation_alias="AUTH_DEV_LOGIN")
    # Proxies whose X-Forwarded-For / -Proto are believed (comma-separated IPs or CIDRs).
    trusted_proxies: str = Field(default="", validation_alias="TRUSTED_PROXIES")
    # Browser origins besides AUTH_URL's that may call the API with credentials (CORS).
    cors_allowed_origins: str = Field(default="", validation_alias="CORS_ALLOWED_ORIGINS")
    auth_allow_email_linking: bool = Field(
        default=False, validation_alias="AUTH_ALLOW_EMAIL_LINKING"
    )
    auth_cookie_name: str = Field(
        default="authjs.session-token",
        pattern=r"^[A-Za-z0-9._-]+$",
        validation_alias="AUTH_COOKIE_NAME",
    )
    auth_session_max_age: int = Field(
        default=30 * 24 * 3600, ge=60, validation_alias="AUTH_SESSION_MAX_AGE"
    )
    auth_session_update_age: int = Field(
        default=24 * 3600, ge=0, validation_alias="AUTH_SESSION_UPDATE_AGE"
    )
    auth_signin_limit: int = Field(default=10, ge=1, validation_alias="AUTH_SIGNIN_LIMIT")
    auth_signin_window: int = Field(default=600, ge=1, validation_alias="AUTH_SIGNIN_WINDOW")
    smtp_url: str | None = Field(default=None, validation_alias="SMTP_URL")
    email_from: str = Field(
        default="ChatWithMe <no-reply@localhost>", validation_alias="EMAIL_FROM"
    )
    groq_api_key: str | None = Field(default=None, validation_alias="GROQ_API_KEY")
    groq_base_url: str | None = Field(default=None, validation_alias="GROQ_BASE_URL")
    gemini_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY")
    )
    gemini_base_url: str | None = Field(default=None, validation_alias="GEMINI_BASE_URL")
    openai_compat_base_url: str | None = Field(
        default=None, validation_alias="OPENAI_COMPAT_BASE_URL"
    )
    openai_compat_api_key: str | None = Field(
        default=None, validation_alias="OPENAI_COMPAT_API_KEY"
    )
    openai_compat_models: str = Field(default="", validation_alias="OPENAI_COMPAT_MODELS")
    default_model: str | None = Field(default=None, validation_alias="DEFAULT_MODEL")
    models_file: Path | None = Field(default=None, validation_alias="MODELS_FILE")
    # The model that titles new conversations: an id or alias, `none` (first words only), or
    # unset: the cheapest available model.
    title_model: str | None = Field(default=None, validation_alias="TITLE_MODEL")
    llm_fallback: str = Field(default="auto", validation_alias="LLM_FALLBACK")
    llm_connect_timeout: float = Field(default=5.0, gt=0, validation_alias="LLM_CONNECT_TIMEOUT")
    llm_first_token_timeout: float = Field(
        default=30.0, gt=0, validation_alias="LLM_FIRST_TOKEN_TIMEOUT"
    )
    llm_token_gap_timeout: float = Field(
        default=30.0, gt=0, validation_alias="LLM_TOKEN_GAP_TIMEOUT"
    )
    llm_total_timeout: float = Field(default=300.0, gt=0, validation_alias="LLM_TOTAL_TIMEOUT")
    # Open streams per provider and process: the HTTP client's connection limit. Sized for
    # the capacity goal (issue 22: 1,000 answers at once); the groq SDK's own default is 100.
    llm_max_connections: int = Field(
        default=1200, ge=1, le=100_000, validation_alias="LLM_MAX_CONNECTIONS"
    )
    dev_echo_delay_ms: int = Field(default=20, ge=0, le=5000, validation_alias="DEV_ECHO_DELAY_MS")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    system_prompt: str = Field(
        default="You are ChatWithMe, a helpful assistant. Answer clearly and concisely.",
        validation_alias="SYSTEM_PROMPT",
    )
    chat_history_messages: int = Field(
        default=10, ge=0, le=500, validation_alias="CHAT_HISTORY_MESSAGES"
    )
    chat_context_margin: int = Field(default=256, ge=0, validation_alias="CHAT_CONTEXT_MARGIN")
    chat_max_message_chars: int = Field(
        default=32_000, ge=1, le=1_000_000, validation_alias="CHAT_MAX_MESSAGE_CHARS"
    )
    chat_max_title_chars: int = Field(
        default=200, ge=1, le=10_000, validation_alias="CHAT_MAX_TITLE_CHARS"
    )
    chat_store_retry_seconds: float = Field(
        default=120.0, gt=0, le=3600, validation_alias="CHAT_STORE_RETRY_SECONDS"
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, le=600, validation_alias="SHUTDOWN_GRACE_SECONDS"
    )
    # An answer's lease outlives a dead process by at most this long; then the sweep, run
    # this often by every process, closes it `incomplete` (`interrupted`).
    answer_lease_seconds: float = Field(
        default=30.0, ge=3, le=3600, validation_alias="ANSWER_LEASE_SECONDS"
    )
    answer_sweep_seconds: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="ANSWER_SWEEP_SECONDS"
    )
    # How often (seconds) each process folds the stats deltas into the rollups (revision 0015).
    stats_fold_seconds: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="STATS_FOLD_SECONDS"
    )
    # A running import's lease: renewed every third of it; one that ran out (its process was
    # killed) reads as `interrupted`.
    import_lease_seconds: float = Field(
        default=30.0, ge=1, le=3600, validation_alias="IMPORT_LEASE_SECONDS"
    )
    # The largest import file (POST /api/imports), written to DATA_DIR/imports while checked.
    import_max_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1024, validation_alias="IMPORT_MAX_BYTES"
    )
    # Attachments (POST /api/files): the largest file, the most a message carries, and the
    # bytes each user may keep (files sent twice by one user are stored and counted once).
    file_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, validation_alias="FILE_MAX_BYTES"
    )
    file_quota_bytes: int = Field(
        default=500 * 1024 * 1024, ge=1024, validation_alias="FILE_QUOTA_BYTES"
    )
    files_per_message: int = Field(default=5, ge=1, le=50, validation_alias="FILES_PER_MESSAGE")
    quota_daily_messages: int | None = Field(
        default=None, ge=1, validation_alias="QUOTA_DAILY_MESSAGES"
    )
    quota_daily_tokens: int | None = Field(
        default=None, ge=1, validation_alias="QUOTA_DAILY_TOKENS"
    )
    # How long a deleted conversation or message stays in the trash before it is purged.
    trash_retention_days: int = Field(
        default=30, ge=0, le=36_500, validation_alias="TRASH_RETENTION_DAYS"
    )
    chat_rate_limit: int = Field(default=20, ge=1, validation_alias="CHAT_RATE_LIMIT")
    # Starting an answer (its SQL: session lookup, question, answer row, lease) takes one of
    # this many turns (None: 2/3 of DB_POOL_SIZE), in arrival order; at most CHAT_START_QUEUE
    # wait, for at most CHAT_START_WAIT seconds, and at most CHAT_MAX_ANSWERS answers run at
    # once in a process. Past these: 503 + Retry-After, before anything is stored.
    chat_start_concurrency: int | None = Field(
        default=None, ge=1, le=1000, validation_alias="CHAT_START_CONCURRENCY"
    )
    chat_start_queue: int = Field(default=2000, ge=0, validation_alias="CHAT_START_QUEUE")
    chat_start_wait: float = Field(default=15.0, gt=0, le=600, validation_alias="CHAT_START_WAIT")
    chat_max_answers: int = Field(default=2000, ge=1, validation_alias="CHAT_MAX_ANSWERS")
    chat_rate_window: int = Field(default=60, ge=1, validation_alias="CHAT_RATE_WINDOW")
    db_pool_size: int = Field(default=10, ge=1, le=200, validation_alias="DB_POOL_SIZE")
    db_pool_timeout: float = Field(default=5.0, gt=0, le=60, validation_alias="DB_POOL_TIMEOUT")
    # The hot reads' own asyncpg pool (conversation list, message pages): app/db/reads.py.
    db_read_pool_size: int = Field(default=10, ge=1, le=200, validation_alias="DB_READ_POOL_SIZE")
    db_connect_timeout: float = Field(
        default=5.0, gt=0, le=60, validation_alias="DB_CONNECT_TIMEOUT"
    )
    # Every statement's time bound (PostgreSQL's statement_timeout), and search's, far shorter:
    # a search that runs past it is cancelled and answered 503 (SECURITY.md, item 43).
    db_statement_timeout: float = Field(
        default=15.0, gt=0, le=3600, validation_alias="DB_STATEMENT_TIMEOUT"
    )
    search_statement_timeout: float = Field(
        default=3.0, gt=0, le=3600, validation_alias="SEARCH_STATEMENT_TIMEOUT"
    )
    search_rate_limit: int = Field(default=30, ge=1, validation_alias="SEARCH_RATE_LIMIT")
    search_rate_window: int = Field(default=60, ge=1, validation_alias="SEARCH_RATE_WINDOW")
    # `serve`'s worker processes when `--workers` is not given (the usual PaaS variable).
    web_concurrency: int = Field(default=1, ge=1, le=64, validation_alias="WEB_CONCURRENCY")
    # Share links: reads (JSON, page, copy) per client IP and shares made per user, per window;
    # a snapshot's text bound.
    share_rate_limit: int = Field(default=60, ge=1, validation_alias="SHARE_RATE_LIMIT")
    share_rate_window: int = Field(default=60, ge=1, validation_alias="SHARE_RATE_WINDOW")
    share_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, validation_alias="SHARE_MAX_BYTES"
    )
    # Whole-account exports one user may have running at once (in this process).
    export_concurrency: int = Field(default=1, ge=1, le=10, validation_alias="EXPORT_CONCURRENCY")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", validation_alias="LOG_LEVEL"
    )
    log_format: Literal["text", "json"] = Field(default="text", validation_alias="LOG_FORMAT")
    # None: on outside production (see `metrics_on`).
    metrics_enabled: bool | None = Field(default=None, validation_alias="METRICS_ENABLED")
    metrics_token: str | None = Field(default=None, validation_alias="METRICS_TOKEN")
    # None: the API docs (/schema, Swagger UI, the OpenAPI document) outside production only.
    docs_enabled: bool | None = Field(default=None, validation_alias="DOCS_ENABLED")

    @field_validator(
        "database_url",
        "database_direct_url",
        "database_replica_urls",
        "db_pooler",
        "auth_secret",
        "auth_google_id",
        "auth_google_secret",
        "groq_api_key",
        "groq_base_url",
        "gemini_api_key",
        "gemini_base_url",
        "openai_compat_base_url",
        "openai_compat_api_key",
        "default_model",
        "models_file",
        "redis_url",
        "smtp_url",
        "metrics_enabled",
        "metrics_token",
        "docs_enabled",
        "quota_daily_messages",
        "chat_start_concurrency",
        "quota_daily_tokens",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`FOO=` in a .env file means "not set", as it does for NextAuth."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("cors_allowed_origins")
    @classmethod
    def _exact_origins(cls, value: str) -> str:
        for origin in _split_origins(value):
            _exact_origin(origin)
        return value

    @field_validator("log_level", "log_format", "app_env", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _production_needs_a_real_secret(self) -> Settings:
        if self.is_production and _is_placeholder(self.auth_secret):
            raise ValueError(
                "AUTH_SECRET must be set to a random value of at least "
                f"{MIN_SECRET_LENGTH} characters in production "
                '(for example: python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def google_configured(self) -> bool:
        return bool(self.auth_google_id and self.auth_google_secret)

    @property
    def base_url(self) -> str:
        """AUTH_URL without a trailing slash."""
        return self.auth_url.rstrip("/")

    @cached_property
    def cors_origins(self) -> tuple[str, ...]:
        """CORS_ALLOWED_ORIGINS as exact, lowercased origins (`scheme://host[:port]`)."""
        return tuple(_exact_origin(origin) for origin in _split_origins(self.cors_allowed_origins))

    @property
    def uses_https(self) -> bool:
        return self.auth_url.lower().startswith("https://")

    @property
    def email_signin_enabled(self) -> bool:
        """Email links are offered: with SMTP_URL, or outside production (written to a file)."""
        return self.smtp_url is not None or not self.is_production

    @property
    def dev_login_enabled(self) -> bool:
        return self.auth_dev_login and not self.is_production

    @property
    def metrics_on(self) -> bool:
        """`GET /metrics` is served: METRICS_ENABLED, or by default outside production."""
        if self.metrics_enabled is None:
            return not self.is_production
        return self.metrics_enabled

    @property
    def docs_on(self) -> bool:
        """`/schema` is served: DOCS_ENABLED, or by default outside production."""
        if self.docs_enabled is None:
            return not self.is_production
        return self.docs_enabled

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @model_validator(mode="after")
    def _pooler_flag_in_the_url(self) -> Settings:
        # One place decides: the URL carries ?pgbouncer=true exactly when it is pooled in
        # transaction mode, so every command given the URL alone knows it too.
        if self.database_url is not None and self.db_pooler is not None:
            self.database_url = with_pooler(self.database_url, self.db_pooler)
        return self

    @property
    def transaction_pooled(self) -> bool:
        """DATABASE_URL goes through a pooler in transaction mode."""
        return self.database_url is not None and transaction_pooled(self.database_url)

    @property
    def listen_url(self) -> str | None:
        """Where LISTEN/NOTIFY can hold a session: the direct URL, or DATABASE_URL unless it is
        pooled in transaction mode (then None: no LISTEN)."""
        if self.database_direct_url:
            return self.database_direct_url
        return None if self.transaction_pooled else self.database_url

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """DATABASE_REPLICA_URLS as a list (empty entries ignored)."""
        raw = self.database_replica_urls or ""
        return tuple(url.strip() for url in raw.split(",") if url.strip())

    def migrations_url(self, url: str) -> str:
        """Where migrations run: the direct URL when set, else `url` (DATABASE_URL's)."""
        return self.database_direct_url or url

    @cached_property
    def secret(self) -> str:
        """AUTH_SECRET, or in development one generated once and kept in DATA_DIR."""
        if self.auth_secret:
            return self.auth_secret
        return _development_secret(self.data_dir)


def _split_origins(value: str) -> list[str]:
    return [origin.strip() for origin in value.split(",") if origin.strip()]


def _exact_origin(origin: str) -> str:
    """`origin` as a browser sends it in `Origin`; ValueError for `*`, paths and other URLs."""
    if "*" in origin:
        raise ValueError(f"{origin!r}: a wildcard is not allowed, list exact origins")
    parts = urlsplit(origin)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme.lower() not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
        or port == -1
    ):
        raise ValueError(f"{origin!r} is not an origin like https://app.example.com[:port]")
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}[scheme]
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port not in {None, default} else "")


def _is_placeholder(secret: str | None) -> bool:
    return (
        secret is None
        or secret.strip().lower() in PLACEHOLDER_SECRETS
        or len(secret.strip()) < MIN_SECRET_LENGTH
    )


def _development_secret(data_dir: Path) -> str:
    path = data_dir / SECRET_FILE_NAME
    try:
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(secret, encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot keep the development AUTH_SECRET in {path}: {exc}"
        ) from exc
    return secret


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one readable ConfigurationError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from None
