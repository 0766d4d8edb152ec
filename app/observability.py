"""`GET /metrics` (Prometheus text) and the HTTP side of metrics and request ids.

Request counts and latency come from Litestar's Prometheus middleware, labelled with the
route template; the chat, provider and pool metrics live in `app.lib.metrics`.
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from app.chat.admission import ReleaseTurns
from app.lib.deps import AppSettings
from app.lib.metrics import POOLS, REPLICAS
from app.lib.problems import problem
from app.lib.request_id import RequestIdMiddleware

LATENCY_BUCKETS: list[str | float] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
]  # fmt: skip


def prometheus_config() -> PrometheusConfig:
    """Requests by method, route template and status; latency histograms per route."""
    return PrometheusConfig(
        app_name="chatwithme",
        prefix="chatwithme_http",
        group_path=True,  # the template (/api/conversations/{conversation_id}), not the path
        buckets=LATENCY_BUCKETS,
        exclude_opt_key="exclude_from_metrics",
    )


@get(
    "/metrics",
    opt={"public": True, "sessionless": True, "exclude_from_metrics": True},
    include_in_schema=False,
    cache=False,
    sync_to_thread=False,
)
def metrics(request: Request[Any, Any, Any], settings: AppSettings) -> Response[Any]:
    """Prometheus text exposition; needs `Authorization: Bearer METRICS_TOKEN` when it is set."""
    if settings.metrics_token and not _token_matches(request, settings.metrics_token):
        return problem(
            401,
            "Unauthorized",
            "Send the metrics token as `Authorization: Bearer <token>`.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    # The content type is set whole: Litestar would append a second charset to a text/ type.
    return Response(generate_latest(REGISTRY), headers={"content-type": CONTENT_TYPE_LATEST})


def _token_matches(request: Request[Any, Any, Any], token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.strip().encode(), token.encode()
    )


def observed(app: Litestar) -> Litestar:
    """Request ids around everything (the outermost handler, as Litestar wraps CORS), and the
    app's connection pool in the metrics."""
    app.asgi_handler = RequestIdMiddleware(ReleaseTurns(app.asgi_handler, app.state.chat_admission))
    database = app.state.database
    POOLS.watch(database.engine, database.reads)
    if database.replicas is not None:
        REPLICAS.watch(database.replicas)
        for replica in database.replicas.replicas:
            POOLS.watch(replica.database.engine, replica.database.reads)
    return app
