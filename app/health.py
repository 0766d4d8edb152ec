"""`GET /api/health`: is the service and its database usable right now?"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Literal

from litestar import Response, get
from litestar.datastructures import State
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app import __version__
from app.chat.live import LiveAnswers
from app.db.engine import Database
from app.lib.openapi import success
from app.lib.schema import CamelStruct
from app.llm.router import ModelRouter

# Health must answer within 2 s even when the database hangs; this leaves room for the rest.
DATABASE_CHECK_DEADLINE = 1.5
# A notification line down for longer than this (a reconnect takes at most its backoff's
# bound of 5 s once the database is back) makes the service `degraded`.
RELAY_DOWN_DEGRADES_AFTER = 10.0

HealthStatus = Literal["healthy", "degraded", "unhealthy"]


class DatabaseCheck(CamelStruct, omit_defaults=True):
    ok: bool
    latency_ms: float
    error: str | None = None
    # Every pooled connection was in use for the whole check: busy, not broken.
    saturated: bool = False


class ProviderCheck(CamelStruct):
    configured: bool
    ok: bool
    consecutive_failures: int
    last_error: str | None
    last_error_at: datetime | None
    development: bool


class RelayCheck(CamelStruct, omit_defaults=True):
    """The LISTEN/NOTIFY line that follows and stops answers of other processes; while it is
    down they are followed by reading the saved rows (about once a second)."""

    ok: bool
    failed_connects: int
    down_seconds: float | None = None
    error: str | None = None


class ReplicaCheck(CamelStruct, omit_defaults=True):
    """One of DATABASE_REPLICA_URLS, as this process's last poll of it saw it. `ok`: reads
    may go there (up, in recovery, no more than DB_REPLICA_MAX_LAG behind); otherwise they
    go to the primary, and the service stays healthy."""

    name: str
    ok: bool
    # How long ago the primary first had WAL this replica has not replayed (None: unknown).
    lag_seconds: float | None = None
    error: str | None = None


class Checks(CamelStruct, omit_defaults=True):
    database: DatabaseCheck
    providers: dict[str, ProviderCheck]
    relay: RelayCheck | None = None
    replicas: list[ReplicaCheck] | None = None


class Health(CamelStruct):
    status: HealthStatus
    checks: Checks
    version: str
    timestamp: datetime


async def check_database(database: Database) -> DatabaseCheck:
    """Run `SELECT 1` with a deadline; never raises."""
    started = time.perf_counter()
    error: str | None = None
    saturated = False
    try:
        async with asyncio.timeout(DATABASE_CHECK_DEADLINE), database.session_maker() as session:
            await session.execute(text("SELECT 1"))
    except (TimeoutError, PoolTimeoutError):
        # Still waiting for a pooled connection means busy, not down: requests queue and
        # are served (or get 503 with Retry-After), and a load balancer should keep this one.
        saturated = database.pool_saturated()
        error = (
            "every pooled connection is in use"
            if saturated
            else f"no answer within {DATABASE_CHECK_DEADLINE:g} s"
        )
    except Exception as exc:  # any failure means "not usable"; the reason is reported
        error = type(exc).__name__
    latency = round((time.perf_counter() - started) * 1000, 2)
    return DatabaseCheck(ok=error is None, latency_ms=latency, error=error, saturated=saturated)


def relay_check(answers: LiveAnswers | None) -> RelayCheck | None:
    state = answers.relay_state() if answers is not None else None
    if state is None:
        return None
    up, down_for, failed, error = state
    return RelayCheck(
        ok=up,
        failed_connects=failed,
        down_seconds=None if up else round(down_for, 1),
        error=None if up else error,
    )


def replica_checks(database: Database) -> list[ReplicaCheck] | None:
    """From the watchers' last polls; health itself asks no replica."""
    if database.replicas is None:
        return None
    checks = []
    for name, usable, lag in database.replicas.replica_states():
        error = database.replicas.error_of(name)
        if error is None and not usable:
            error = "behind by more than DB_REPLICA_MAX_LAG" if lag is not None else "no lag yet"
        checks.append(
            ReplicaCheck(
                name=name,
                ok=usable,
                lag_seconds=None if lag is None else round(lag, 3),
                error=None if usable else error,
            )
        )
    return checks


def provider_checks(router: ModelRouter) -> dict[str, ProviderCheck]:
    """From what recent calls showed; health never calls a (paid) model API itself."""
    return {
        name: ProviderCheck(
            configured=state.configured,
            ok=not state.failing,
            consecutive_failures=state.consecutive_failures,
            last_error=state.last_error,
            last_error_at=(
                datetime.fromtimestamp(state.last_error_at, UTC) if state.last_error_at else None
            ),
            development=state.development,
        )
        for name, state in router.health.items()
    }


@get(
    "/api/health",
    # Sessionless: a caller's session is never looked up, so an outage reads as a health body.
    opt={"public": True, "sessionless": True},
    tags=["health"],
    summary="Service health",
    cache=False,
    responses=success(Health, "Unhealthy: the database is unusable", status=503),
)
async def health(state: State) -> Response[Health]:
    """200 when healthy or degraded (every model provider failing, every pooled database
    connection busy, or the notification line between processes down for a while), 503
    without a database."""
    database_check = await check_database(state.database)
    router: ModelRouter = state.router
    relay = relay_check(state.get("answers"))
    relay_down = (
        relay is not None and not relay.ok and (relay.down_seconds or 0) > RELAY_DOWN_DEGRADES_AFTER
    )
    status: HealthStatus = "healthy"
    if database_check.saturated or (database_check.ok and (router.all_failing or relay_down)):
        status = "degraded"
    elif not database_check.ok:
        status = "unhealthy"
    report = Health(
        status=status,
        checks=Checks(
            database=database_check,
            providers=provider_checks(router),
            relay=relay,
            replicas=replica_checks(state.database),
        ),
        version=__version__,
        timestamp=datetime.now(UTC),
    )
    return Response(report, status_code=200 if status != "unhealthy" else 503)
