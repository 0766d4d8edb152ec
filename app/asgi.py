"""The application factory."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar
from litestar.datastructures import ResponseHeader, State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from app import __version__
from app.db.engine import Database
from app.health import health
from app.lib.problems import EXCEPTION_HANDLERS
from app.settings import Settings, load_settings

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Litestar:
    """Build the Litestar app; `database` lets tests hand in a connection-bound one.

    The SQLAlchemy plugin gives each request one session, committed when the response is 2xx
    and rolled back otherwise, and disposes of the engine at shutdown.
    """
    settings = settings or load_settings()
    database = database or Database.from_settings(settings)
    sqlalchemy = SQLAlchemyAsyncConfig(
        engine_instance=database.engine,
        session_maker=database.session_maker,
        before_send_handler="autocommit",
        session_dependency_key="db_session",
        set_default_exception_handler=False,
    )

    return Litestar(
        route_handlers=[health],
        plugins=[SQLAlchemyPlugin(config=sqlalchemy)],
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"settings": settings, "database": database}),
        response_headers=[ResponseHeader(name="X-Content-Type-Options", value="nosniff")],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="ChatWithMe API",
            version=__version__,
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
    )
