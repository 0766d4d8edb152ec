"""Hostile values for the query parameters the API decodes itself: cursors (`cursor`,
`before`), time zones (`tz`), instants (`from`, `to`), search filters (in `q`) and tag ids
(`tag`). A fixed list for the explicit sweep
in tests/ops/test_fuzz.py, and hypothesis strategies for the schemathesis run (fuzz_hooks.py).
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

CURSOR_PARAMETERS = frozenset({"cursor", "before"})
ZONE_PARAMETERS = frozenset({"tz"})
INSTANT_PARAMETERS = frozenset({"from", "to"})
QUERY_PARAMETERS = frozenset({"q"})  # the filters written in a search (issue 23 item 4)
TAG_PARAMETERS = frozenset({"tag"})


def b64(raw: str | bytes) -> str:
    """A cursor as the API writes them: URL-safe base64 without padding."""
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _ranked(score: Any, row_id: Any = "c1", as_of: Any = "2026-01-01T00:00:00", *mode: Any) -> str:
    return b64(json.dumps([score, row_id, as_of, *mode]))


_seeded = random.Random(20261202)
CURSORS: list[str] = [
    "",
    "=",
    "====",
    "not base64!",
    "é",
    "A",  # one character: no whole byte
    "x" * 5000,
    b64("[" * 3000 + "]" * 3000),
    b64("{" * 50 + "}" * 50),
    b64("2026-01-01T00:00:00Z|x"),  # aware
    b64("2026-01-01T00:00:00+14:00|x"),
    b64("0001-01-01T00:00:00+05:00|x"),  # before year 1 in UTC
    b64("9999-12-31T23:59:59-05:00|x"),  # after 9999 in UTC
    b64("2026-01-01T00:00:00|\x00"),
    b64("2026-01-01T00:00:00\x00|x"),
    b64("2026-01-01T00:00:00|"),
    b64("2026-01-01T00:00:00"),
    b64("|"),
    b64("x" * 300 + "|" + "y" * 300),
    b64(b"\xff\xfe\x00|\x80"),
    b64("2026-01-01T00:00:00|" + "\u202e" * 10),
    _ranked("1e999999"),
    _ranked("1e-999999"),
    _ranked("NaN"),
    _ranked("-Infinity"),
    _ranked(1e308),
    _ranked(10**200),
    _ranked("1", "c1", "2026-01-01T00:00:00+02:00"),
    _ranked("1", "c1", "0001-01-01T00:00:00+05:00"),
    _ranked("1", "c1", "2026-01-01T00:00:00", "fuzzy"),
    _ranked("1", "c1", "2026-01-01T00:00:00", "other"),
    _ranked("1", "c1", "2026-01-01T00:00:00", "fuzzy", "more"),
    _ranked("1", "\x00"),
    _ranked("1", ["nested"]),
    _ranked(True, "c1"),
    _ranked(None, None, None),
    b64(json.dumps({"score": 1})),
    b64("[]"),
    b64("null"),
    *(b64(_seeded.randbytes(_seeded.randint(1, 300))) for _ in range(8)),
]

ZONES: list[str] = [
    "posixrules",
    "localtime",
    "right/UTC",
    "posix/UTC",
    "posix/Europe/Berlin",
    "Factory",
    "EST",
    "UTC+5",
    "GMT+5",
    "<+03>-3",
    "europe/berlin",
    "../../../../etc/passwd",
    "/etc/localtime",
    "Europe/Berlin\x00",
    "Europe/Berlin ",
    "",
    "x" * 5000,
]

INSTANTS: list[str] = [
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01",
    "9999-12-31T23:59:59.999999",
    "2026-01-01T00:00:00+23:59",
    "2026-01-01T00:00:00Z",
    "2026-13-01",
    "1e999999",
    "",
    "x" * 5000,
]


# Search filters with values no search can use: each is a 400 on q
# (tests/search/test_search_filters.py), never a 500.
QUERIES: list[str] = [
    "tag:",
    'tag:""',
    'tag:"',
    'tag:"unclosed',
    "tag:" + "x" * 41,
    "hello " + " ".join(f"tag:t{i}" for i in range(11)),
    "pinned:maybe",
    "pinned:",
    "archived:1",
    "pinned:true pinned:false",
    "model:",
    "model:" + "x" * 201,
    "model:a<b>",
    "before:2026-13-01",
    "before:2026-02-30",
    "after:0000-01-01",
    "after:20260101",
    "before:1e999999",
    "after:\uff12\uff10\uff12\uff16-01-01",
    "before:2026-01-01 after:2026-02-01",
    "before:2026-01-01 before:2026-02-01",
]
# Odd but valid searches: answered (200), never a 500.
ODD_QUERIES: list[str] = [
    "tag:\u202e" * 3,  # one name
    "after:9999-12-31",
    "before:0001-01-01",
    "tag:x pinned:true archived:true model:m before:2026-01-01 after:2025-01-01",
    "-tag:x",  # a NOT of the word `tag:x`
    "tag:" + "-" * 40,
    "tag:x " + "-" * 40,
]
# Tag ids for the list's `tag` filter.
TAG_IDS: list[str] = ["", "x" * 5000, "\u202e", "../x", "' OR 1=1 --", "%", "*"]


def hostile_values(name: str) -> list[str]:
    """The fixed hostile values for a query parameter of this name (none for other names)."""
    if name in CURSOR_PARAMETERS:
        return CURSORS
    if name in ZONE_PARAMETERS:
        return ZONES
    if name in INSTANT_PARAMETERS:
        return INSTANTS
    if name in QUERY_PARAMETERS:
        return QUERIES + ODD_QUERIES
    if name in TAG_PARAMETERS:
        return TAG_IDS
    return []


# Strategies for the schemathesis run: the same kinds of values, drawn at random.
_offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_datetimes = st.datetimes(timezones=st.none() | st.just(UTC) | _offsets)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)
_scores = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1e999999", "1e-999999", "-0", "0.0000001", "999999999"]),
    st.integers(),
    st.floats(),
)
_ids = st.text(max_size=80) | st.from_regex(r"\A[a-z0-9]{25}\Z")
_stamps = _datetimes.map(lambda at: at.isoformat()) | st.text(max_size=40)


def cursors() -> st.SearchStrategy[str]:
    """Cursors of both kinds, random bytes, deep nesting and plain text."""
    keyset = st.tuples(_stamps, _ids).map(lambda pair: b64(f"{pair[0]}|{pair[1]}"))
    ranked = st.tuples(
        _scores, _ids, _stamps, st.lists(st.sampled_from(["fulltext", "fuzzy", "x"]), max_size=2)
    ).map(lambda parts: _ranked(parts[0], parts[1], parts[2], *parts[3]))
    nested = st.integers(min_value=1, max_value=6000).map(lambda n: b64("[" * n + "]" * n))
    return st.one_of(
        keyset,
        ranked,
        nested,
        st.binary(max_size=400).map(b64),
        _json_values.map(lambda value: b64(json.dumps(value))),
        st.text(max_size=100),
        st.sampled_from(CURSORS),
    )


def zones() -> st.SearchStrategy[str]:
    return st.one_of(st.timezone_keys(), st.sampled_from(ZONES), st.text(max_size=40))


def instants() -> st.SearchStrategy[str]:
    return st.one_of(
        _datetimes.map(lambda at: at.isoformat()),
        st.dates().map(lambda day: day.isoformat()),
        st.sampled_from(INSTANTS),
        st.text(max_size=40),
    )


def strategy_for(name: str) -> st.SearchStrategy[str] | None:
    if name in CURSOR_PARAMETERS:
        return cursors()
    if name in ZONE_PARAMETERS:
        return zones()
    if name in INSTANT_PARAMETERS:
        return instants()
    return None
