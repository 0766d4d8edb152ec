"""Schemathesis hooks for tests/ops/test_fuzz.py: sign in through dev-login, and again after a
401 (the fuzzer may sign itself out or delete its own account)."""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis

FUZZER_EMAIL = "fuzzer@example.com"


@schemathesis.auth()
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
