"""Ids in the format of Prisma's `cuid()` (cuid v1).

Layout, 25 characters of lowercase base36:
    "c" + timestamp (8) + counter (4) + fingerprint (4) + random (8)
The timestamp makes ids sort by creation time; the counter keeps ids made in the same
millisecond apart and in order; the fingerprint (pid and host) and 40 random bits from the
CSPRNG keep processes and machines apart.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time

BASE = 36
BLOCK = 4
DISCRETE = BASE**BLOCK  # 1,679,616 values in one 4-character block
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(value: int) -> str:
    if value == 0:
        return "0"
    digits = []
    while value:
        value, rest = divmod(value, BASE)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def _pad(text: str, size: int) -> str:
    return text.rjust(size, "0")[-size:]


def _fingerprint() -> str:
    """Two characters from the pid, two from the host name, as the reference cuid does."""
    pid = _pad(_base36(os.getpid()), 2)
    hostname = socket.gethostname()
    host_sum = len(hostname) + BASE + sum(ord(ch) for ch in hostname)
    return pid + _pad(_base36(host_sum), 2)


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.counter = secrets.randbelow(DISCRETE)
        self.last_ms = 0
        self.fingerprint = _fingerprint()


_state = _State()
if hasattr(os, "register_at_fork"):
    # A forked worker must not share its parent's counter or pid fingerprint.
    os.register_at_fork(after_in_child=_state.reset)


def cuid() -> str:
    """A new collision-resistant id, 25 characters, starting with "c"."""
    with _state.lock:
        count = _state.counter
        _state.counter = (count + 1) % DISCRETE
        # Ids of one process stay in creation order even if the clock steps back or the
        # counter wraps within one millisecond: the timestamp then moves on by one.
        ms = max(time.time_ns() // 1_000_000, _state.last_ms)
        if count == 0 and ms == _state.last_ms:
            ms += 1
        _state.last_ms = ms
    timestamp = _pad(_base36(ms), 8)
    random_part = _pad(_base36(secrets.randbits(40)), 2 * BLOCK)
    return f"c{timestamp}{_pad(_base36(count), BLOCK)}{_state.fingerprint}{random_part}"


def is_cuid(value: str) -> bool:
    """True when `value` has the shape of a cuid v1 id."""
    return len(value) == 25 and value[0] == "c" and all(ch in _ALPHABET for ch in value)
