"""Page-size clamping (cursors are app/lib/cursors.py)."""

from __future__ import annotations


def clamp(limit: int | None, default: int, maximum: int) -> int:
    if limit is None:
        return default
    return max(1, min(limit, maximum))
