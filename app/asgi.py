"""The application factory."""

from __future__ import annotations

import gc
from datetime import timedelta
from typing import Any

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders, ResponseHeader, State
from litestar.di import Provide
from litestar.types import Message, Scope

from app import __version__
from app.auth import cookies
from app.auth.controllers import AuthController, EmailSignInController, dev_login
from app.auth.google import GoogleOIDC
from app.auth.guard import authenticate, current_identity, optional_identity
from app.auth.origins import cors_config, drop_foreign_cors_headers
from app.chat.admission import Admission
from app.chat.controllers import (
    ConversationController,
    MessageController,
    chat,
    resume_chat,
    stop_chat,
)
from app.chat.flow import ChatFlow
from app.chat.live import LiveAnswers
from app.chat.trash import TrashPurger
from app.db.engine import Database
from app.db.routing import provide_reads
from app.db.session import close_request_session, provide_db_session
from app.files.controllers import FileController
from app.health import health
from app.imports.controllers import ImportController
from app.imports.service import Importer
from app.lib.headers import response_rules
from app.lib.input import CheckedRequest
from app.lib.openapi import openapi_config
from app.lib.problems import EXCEPTION_HANDLERS
from app.lib.rate_limit import rate_limiter
from app.llm.controllers import list_models
from app.llm.router import ModelRouter
from app.observability import metrics, observed, prometheus_config
from app.organize.controllers import LabelController, TagController
from app.search.controllers import search_conversations
from app.settings import Settings, load_settings
from app.shares.controllers import ShareController, SharedController, create_share
from app.stats.controllers import my_stats
from app.stats.fold import StatsFolder
from app.users.controllers import UserController
from app.users.exports import ExportSlots
from app.web.controllers import web_router

MAX_BODY_BYTES = 1024 * 1024
# Sign-ins for one address from all IPs, as a multiple of AUTH_SIGNIN_LIMIT (per address and IP).
SIGNIN_ADDRESS_CAP = 10


def _redis(url: str | None) -> Any | None:
    """A shared Redis client for rate limits, when REDIS_URL is set."""
    if url is None:
        return None
    from redis.asyncio import Redis

    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


async def freeze_startup_objects() -> None:
    """Keep what start-up made (modules, the app, compiled statements) out of the garbage
    collector's full passes: each walked all of it, about 75 ms with the event loop stopped,
    every second or so under load. Those objects live as long as the process anyway."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    model_router: ModelRouter | None = None,
) -> Litestar:
    """Build the Litestar app; `database` lets tests hand in a connection-bound one.

    Each request gets one database session (`db_session`), committed when its handler returns
    and rolled back when it raises (app/db/session.py).
    """
    settings = settings or load_settings()
    database = database or Database.from_settings(settings)
    google = GoogleOIDC.from_settings(settings)
    router = model_router or ModelRouter.from_settings(settings)
    redis = _redis(settings.redis_url)

    async def refresh_session_cookie(message: Message, scope: Scope) -> None:
        """Re-send the session cookie when the guard extended the session (sliding expiry)."""
        session = scope.get("state", {}).get("refreshed_session")
        if session is not None and message["type"] == "http.response.start":
            cookie = cookies.session_cookie(settings, session.session_token, session.expires)
            MutableScopeHeaders.from_message(message).add("set-cookie", cookie.to_header(header=""))

    answers = LiveAnswers(
        database,
        router,
        # LISTEN needs a session: not through a transaction pooler (then the saved rows).
        settings.listen_url,
        store_retry_seconds=settings.chat_store_retry_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        lease=timedelta(seconds=settings.answer_lease_seconds),
        sweep_seconds=settings.answer_sweep_seconds,
        write_slots=max(1, settings.db_pool_size // 4),
    )
    flow = ChatFlow(settings, answers)
    admission = Admission(settings, answers)
    purger = TrashPurger(database, timedelta(days=settings.trash_retention_days))
    folder = StatsFolder(database, settings.stats_fold_seconds)
    importer = Importer(database, settings.data_dir / "imports")
    handlers: list[Any] = [
        health,
        AuthController,
        list_models,
        chat,
        resume_chat,
        stop_chat,
        search_conversations,
        my_stats,
        ConversationController,
        MessageController,
        LabelController,
        TagController,
        UserController,
        create_share,
        ShareController,
        SharedController,
        ImportController,
        FileController,
        web_router(),
    ]
    if settings.email_signin_enabled:
        handlers.append(EmailSignInController)
    if settings.dev_login_enabled:
        handlers.append(dev_login)
    if settings.metrics_on:
        handlers.append(metrics)

    app = Litestar(
        route_handlers=handlers,
        middleware=[prometheus_config().middleware] if settings.metrics_on else [],
        # One guard: Litestar copies the route handler for every guard it calls.
        guards=[authenticate],
        request_class=CheckedRequest,
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False, use_cache=True),
            "google": Provide(lambda: google, sync_to_thread=False, use_cache=True),
            "router": Provide(lambda: router, sync_to_thread=False, use_cache=True),
            "flow": Provide(lambda: flow, sync_to_thread=False, use_cache=True),
            "db_session": Provide(provide_db_session),
            "identity": Provide(current_identity, sync_to_thread=False),
            "maybe_identity": Provide(optional_identity, sync_to_thread=False),
            "reads": Provide(provide_reads, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[
            close_request_session,
            refresh_session_cookie,
            drop_foreign_cors_headers(settings),
            response_rules(settings),
        ],
        cors_config=cors_config(settings),
        on_startup=[
            *([database.reads.start] if database.reads is not None else []),
            *([database.replicas.start] if database.replicas is not None else []),
            answers.start,
            purger.start,
            folder.start,
            freeze_startup_objects,
        ],
        # Answers in flight first: they still need the model router and the database.
        on_shutdown=[
            purger.aclose,
            folder.aclose,
            importer.aclose,
            answers.aclose,
            router.aclose,
            *([redis.aclose] if redis is not None else []),
            *([database.replicas.close] if database.replicas is not None else []),
            *([database.reads.close] if database.reads is not None else []),
            # A connection-bound database belongs to the test that made it.
            *([] if database.one_connection else [database.engine.dispose]),
        ],
        state=State(
            {
                "settings": settings,
                "database": database,
                "router": router,
                "answers": answers,
                "stats_folder": folder,
                "importer": importer,
                "signin_ip_limiter": rate_limiter(
                    redis, "signin-ip", settings.auth_signin_limit * 3, settings.auth_signin_window
                ),
                "signin_email_limiter": rate_limiter(
                    redis, "signin-email", settings.auth_signin_limit, settings.auth_signin_window
                ),
                "signin_address_cap": rate_limiter(
                    redis,
                    "signin-address",
                    settings.auth_signin_limit * SIGNIN_ADDRESS_CAP,
                    settings.auth_signin_window,
                ),
                "chat_limiter": rate_limiter(
                    redis, "chat", settings.chat_rate_limit, settings.chat_rate_window
                ),
                "search_limiter": rate_limiter(
                    redis, "search", settings.search_rate_limit, settings.search_rate_window
                ),
                "share_limiter": rate_limiter(
                    redis, "share", settings.share_rate_limit, settings.share_rate_window
                ),
                "export_slots": ExportSlots(settings.export_concurrency),
                "chat_admission": admission,
            }
        ),
        response_headers=[ResponseHeader(name="X-Content-Type-Options", value="nosniff")],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=openapi_config(settings, __version__) if settings.docs_on else None,
    )
    return observed(app)
