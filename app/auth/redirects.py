"""Where a sign-in may send the browser afterwards: this site only."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit


def safe_callback_url(raw: str | None, base_url: str) -> str:
    """`raw` resolved against the base URL when it stays on the same origin, else the base URL.

    Refuses other hosts, scheme-relative `//host`, backslash tricks (`/\\host`, which browsers
    read as `//host`), and control characters.
    """
    fallback = base_url + "/"
    if not raw or any(ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        return fallback
    target = urlsplit(urljoin(fallback, raw))
    base = urlsplit(fallback)
    if (target.scheme, target.netloc.lower()) != (base.scheme, base.netloc.lower()):
        return fallback
    return target.geturl()
