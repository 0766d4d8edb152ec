"""Schemathesis hooks for tests/ops/test_fuzz.py: sign in through dev-login, and again after a
401 (the fuzzer may sign itself out). Deleting the account uses a throwaway user's token
instead (schemathesis.toml), so the fuzzer's conversations outlive it. Query parameters the
API decodes itself (cursors, `tz`, `from`, `to`) often get hostile values."""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis
from hypothesis import strategies as st

from tests.hostile import strategy_for

FUZZER_EMAIL = "fuzzer@example.com"
# Queries that reach past `q`'s own checks, so that the other parameters are decoded.
SEARCHABLE = st.sampled_from(
    ["hello", "hello OR there", "-" * 40 + "hello", '"hello there"', "hello tag:x pinned:false",
     "archived:false", "model:dev-echo after:2026-01-01"]
)  # fmt: skip


@schemathesis.auth().skip_for(method="DELETE", path="/api/users/me")
class DevLogin:
    def get(self, case: Any, context: Any) -> str:
        response = httpx.post(
            f"{os.environ['FUZZ_BASE_URL']}/api/auth/dev-login",
            json={"email": FUZZER_EMAIL, "name": "Fuzzer"},
        )
        response.raise_for_status()
        return str(response.json()["sessionToken"])

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> Any:
    """Half of the generated queries get hostile cursors, time zones and instants
    (tests/hostile.py) in the parameters the API decodes itself, which the document can only
    call strings."""
    names = [parameter.name for parameter in context.operation.query] if context.operation else []
    hostile = {name: found for name in names if (found := strategy_for(name)) is not None}
    if not hostile:
        return st.just(query)
    if "q" in names:
        hostile["q"] = SEARCHABLE
    overlay = st.fixed_dictionaries({}, optional=hostile)
    return st.one_of(st.just(query), overlay.map(lambda extra: {**(query or {}), **extra}))
