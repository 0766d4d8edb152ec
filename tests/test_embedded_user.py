"""The embedded server's system user is made once when many processes start at once."""

from __future__ import annotations

import os
import pwd
import subprocess
import uuid
from concurrent.futures import ProcessPoolExecutor

import pytest

from app.db.embedded import _ensure_system_user

pytestmark = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0, reason="only root makes a system user"
)


def _make_and_look_up(name: str) -> int:
    _ensure_system_user(name)
    return pwd.getpwnam(name).pw_uid


def test_eight_processes_making_the_user_at_once_all_get_one_uid() -> None:
    # Without the lock, eight `useradd`s at once gave seven uids for one name, and a server
    # started as one of them could not look itself up.
    name = f"cwm{uuid.uuid4().hex[:12]}"
    try:
        with ProcessPoolExecutor(8) as pool:
            uids = list(pool.map(_make_and_look_up, [name] * 8))
        assert len(set(uids)) == 1
        assert uids[0] == pwd.getpwnam(name).pw_uid
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
