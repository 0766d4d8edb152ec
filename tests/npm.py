"""Pinned npm packages for tests that run real JavaScript clients against the API.

`npm ci` installs a test folder's `package.json` + `package-lock.json` once into pytest's cache
folder, and again only when the lock file changes; parallel runs wait for each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest


def require_node() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: the JavaScript client cannot be run")


def npm_install(packages: Path, folder: Path) -> Path:
    """`npm ci` the pinned packages of `packages` into `folder` (kept between runs)."""
    lock = (packages / "package-lock.json").read_bytes()
    stamp = folder / "installed.sha256"
    wanted = hashlib.sha256(lock).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # another test run may be installing
        if stamp.exists() and stamp.read_text() == wanted:
            return folder
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(packages / name, folder / name)
        # No install scripts: none is needed (Prisma's would only download engines).
        done = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=folder, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}{done.stderr}"
        stamp.write_text(wanted)
    return folder


def cache_folder(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Path:
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir(name)) if cache else tmp_path_factory.mktemp(name)
