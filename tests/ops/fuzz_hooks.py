"""Schemathesis hooks for tests/ops/test_fuzz.py: sign in through dev-login, and again after a
401 (the fuzzer may sign itself out). Deleting the account uses a throwaway user's token
instead (schemathesis.toml), so the fuzzer's conversations outlive it."""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis

FUZZER_EMAIL = "fuzzer@example.com"


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
