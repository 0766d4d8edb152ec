"""Ranked conversation search inside PostgreSQL, always scoped to the caller in SQL.

Full text first: `websearch_to_tsquery` (words, "phrases", -excluded, OR) on the stored
`searchVector` columns, with English stemming and accents removed. Conversations are ranked by
their best message (or title) rank, a little for how many messages match, and a recency boost.
When full text finds nothing, trigram word similarity finds partial words and typos in the
caller's most recent messages (a bounded set: its cost does not grow with the account).
A `-word` or `-"phrase"` leaves out every conversation whose title or any current message
matches it, in both modes. Snippets are made only for the returned page.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import SEARCH_CONFIG
from app.lib.cursors import Ranked, encode_ranked
from app.lib.errors import STATEMENT_TIMEOUT, InvalidInput, TimedOut
from app.lib.pagination import clamp
from app.lib.time import as_utc, to_naive_utc, utc_now
from app.search import schemas
from app.search.query import parse as parse_query

MAX_QUERY = 256
MAX_PAGE = 50
MATCHES_PER_CONVERSATION = 3
FILTERED_SNIPPET_CHARS = 160  # a search of filters alone shows this much of each message
FUZZY_THRESHOLD = 0.3  # a swapped pair of letters (recieve/receive) scores 0.375
# Fuzzy mode compares the start of the query with the start of the caller's latest messages
# only. Word similarity's cost grows with both texts' lengths: `lorm ipsm` over 36,000 messages
# of 2.5 KB took 36 s, and a 232-character query over 2,000 of them 4.6 s. These bound a fuzzy
# search to about 0.8 s for a short query and 1.3 s for the longest, at any account size.
FUZZY_SCAN_MESSAGES = 2000
FUZZY_SCAN_CHARS = 2500
FUZZY_QUERY_CHARS = 64
# ts_headline marks matches with these control characters; the text is HTML-escaped after,
# then they become <mark> tags, so nothing from a message can inject markup.
START, STOP = "\x02", "\x03"
HEADLINE = (
    f"StartSel={START}, StopSel={STOP}, MaxFragments=2, MinWords=6, MaxWords=20, "
    'FragmentDelimiter=" … "'
)
TITLE_HEADLINE = f"StartSel={START}, StopSel={STOP}, HighlightAll=true"  # the whole title


# A conversation with the tag named by `:tag_N`, in any case.
TAGGED = (
    'AND EXISTS (SELECT 1 FROM conversation_tags ct JOIN tags t ON t.id = ct."tagId" '
    'WHERE ct."conversationId" = c.id AND t."userId" = :uid '
    "AND lower(t.name) = lower(:tag_{index}))"
)


@dataclass(frozen=True, slots=True)
class Filters:
    """Message filters (`role`, `model`, `since`, `until`: which messages count) and
    conversation filters (`tags`, `pinned`, `archived`: which conversations)."""

    role: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    tags: tuple[str, ...] = ()
    pinned: bool | None = None
    archived: bool | None = None

    @property
    def any(self) -> bool:
        """Whether messages are filtered (then titles alone match nothing)."""
        return any(v is not None for v in (self.role, self.model, self.since, self.until))

    def sql(self) -> str:
        parts = []
        if self.role:
            parts.append("AND m.role = :role")
        if self.model:
            parts.append("AND m.model = :model")
        if self.since:
            parts.append('AND m."createdAt" >= :since')
        if self.until:
            parts.append('AND m."createdAt" < :until')
        return " ".join(parts)

    def conversation_sql(self) -> str:
        """Conditions on the conversation `c` (constants and bound names only)."""
        parts = []
        if self.pinned is not None:
            parts.append(f'AND c."pinnedAt" IS {"NOT " if self.pinned else ""}NULL')
        if self.archived is not None:
            parts.append(f'AND c."archivedAt" IS {"NOT " if self.archived else ""}NULL')
        for index in range(len(self.tags)):
            parts.append(TAGGED.format(index=index))
        return " ".join(parts)

    def params(self) -> dict[str, Any]:
        tags = {f"tag_{index}": name for index, name in enumerate(self.tags)}
        return {
            "role": self.role, "model": self.model, "since": self.since, "until": self.until,
            **tags,
        }  # fmt: skip


def validate(
    q: str | None, role: str | None, model: str | None, since: str | None, until: str | None
) -> tuple[str, Filters]:
    """(the words of `q`, maybe none, and every filter: parameters and those written in `q`)."""
    query = (q or "").strip()
    if not query:
        raise InvalidInput("q: must not be empty")
    if len(query) > MAX_QUERY:
        raise InvalidInput(f"q: longer than {MAX_QUERY} characters")
    words, asked = parse_query(query)
    words = fold_negations(words)
    if role is not None and role not in ("user", "assistant"):
        raise InvalidInput("role: must be user or assistant")
    if model is not None and (not model.strip() or len(model) > 200):
        raise InvalidInput("model: must be a model id")
    if asked.model and model and asked.model != model:
        raise InvalidInput("q: model: names another model than the model parameter")
    start, end = _when("from", since), _when("to", until)
    if start and end and start >= end:
        raise InvalidInput("from: must be before to")
    start = max(filter(None, (start, asked.after)), default=None)
    end = min(filter(None, (end, asked.before)), default=None)
    if start and end and start >= end:
        raise InvalidInput("q: after:/before: leave no time between from and to")
    filters = Filters(role, model or asked.model, start, end, tuple(asked.tags), asked.pinned,
                      asked.archived)  # fmt: skip
    return words, filters


def _when(name: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name}: not an ISO 8601 date or time") from None
    try:
        return to_naive_utc(when)
    except OverflowError:  # an offset moves it past 9999-12-31 or before 0001-01-01 in UTC
        raise InvalidInput(f"{name}: out of range (years 1 to 9999 in UTC)") from None


# A `-` where websearch_to_tsquery reads an operand negates the word or "phrase" after it
# (`foo-bar` is one word); a quoted phrase is skipped whole, since a `-` inside it is text.
_NEGATION = re.compile(r'("[^"]*"?)|(?:^|(?<=[\s!&|()<:]))(-+)\s*("[^"]*"?|[^\s"!&|()<:]+)')
# Dashes in a row where an operand may start, with only what websearch_to_tsquery skips
# between them (spaces, operator characters): each one is a NOT, and more than 32 NOTs in a
# row overflow its stack ("tsquery stack too small", a 500).
_NOT_RUN = re.compile(r"(?<![\w-])-(?:[\s!&|()<:]*-)+")


def fold_negations(query: str) -> str:
    """The query with each run of NOTs cut to one or two, which mean the same: `---x` is
    `-x`, `----x` is `--x` (that is `x`; two keep an `OR` after them a word, as it was)."""
    return _NOT_RUN.sub(lambda run: "-" if run.group().count("-") % 2 else "--", query)


@dataclass(frozen=True, slots=True)
class Terms:
    """A query as websearch_to_tsquery reads it, for what SQL alone cannot do with it."""

    query: str
    rest: str  # without the excluded terms: the text for trigram similarity
    excluded: str | None  # the excluded terms as one websearch query: `a OR "b c"`


def split_terms(query: str) -> Terms:
    excluded: list[str] = []

    def take(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return match.group(1)
        dashes, term = match.group(2), match.group(3)
        if len(dashes) % 2 == 0:  # `--word` is a double negation: the word itself
            return " " + term
        closed = term.startswith('"') and (len(term) == 1 or not term.endswith('"'))
        excluded.append(term + '"' if closed else term)
        return " "

    rest = _NEGATION.sub(take, query)
    return Terms(query, " ".join(rest.replace('"', " ").split()), " OR ".join(excluded) or None)


def _excluding(terms: Terms) -> tuple[str, str]:
    """(CTE, condition on `c` and `g.cid`) leaving out conversations that match `excluded`.

    The excluded conversations come from the GIN index in one scan, not per candidate."""
    if terms.excluded is None:
        return "", ""
    cte = f"""
            ex AS (
                SELECT DISTINCT m."conversationId" AS cid
                FROM messages m
                WHERE m."userId" = :uid AND m."supersededAt" IS NULL AND m."deletedAt" IS NULL
                  AND m."searchVector" @@ websearch_to_tsquery('{SEARCH_CONFIG}', :excluded)
            ),"""  # noqa: S608 (constants only)
    condition = f"""
              AND NOT c."searchVector" @@ websearch_to_tsquery('{SEARCH_CONFIG}', :excluded)
              AND NOT EXISTS (SELECT 1 FROM ex WHERE ex.cid = g.cid)"""  # noqa: S608
    return cte, condition


def _snippet(marked: str) -> str:
    escaped = html.escape(marked, quote=False)
    return escaped.replace(START, "<mark>").replace(STOP, "</mark>")


def _trigrams(word: str) -> set[str]:
    """pg_trgm's trigrams of one word: lower case, padded with two spaces before, one after."""
    padded = f"  {word.lower()} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def _fuzzy_snippet(content: str, query: str, width: int = 80) -> str:
    """Mark the word closest to a query word (most trigrams shared), with some text around it."""
    words = list(re.finditer(r"\w+", content))
    if not words:
        return html.escape(content[: 2 * width], quote=False)
    wanted = [_trigrams(w) for w in re.findall(r"\w+", query)] or [_trigrams(query)]

    def closeness(word: re.Match[str]) -> float:
        mine = _trigrams(word.group())
        return max(len(mine & theirs) / len(mine | theirs) for theirs in wanted)

    best = max(words, key=closeness)
    start, end = max(0, best.start() - width), min(len(content), best.end() + width)
    marked = content[start : best.start()] + START + best.group() + STOP + content[best.end() : end]
    return ("… " if start else "") + _snippet(marked) + (" …" if end < len(content) else "")


def _fuzzy_text(rest: str) -> str:
    """The query's first FUZZY_QUERY_CHARS characters, cut between words where it can be."""
    if len(rest) <= FUZZY_QUERY_CHARS:
        return rest
    return rest[: FUZZY_QUERY_CHARS + 1].rsplit(" ", 1)[0][:FUZZY_QUERY_CHARS]


# SQLSTATEs of a query text beyond what PostgreSQL parses (statement_too_complex,
# program_limit_exceeded); a NOT run overflowing websearch_to_tsquery's stack is XX000.
QUERY_TOO_COMPLEX = frozenset({"54000", "54001"})


def _beyond_tsquery_limits(exc: DBAPIError) -> bool:
    """Whether PostgreSQL refused the query text itself (not the data, nor an outage)."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in QUERY_TOO_COMPLEX or "tsquery stack too small" in str(exc.orig)


# The recency boost: 2 for a conversation updated at `as_of` (or after it, as on later pages),
# 1.5 at 30 days before it, towards 1 for older ones. Without greatest(), one updated 30 days
# after an `as_of` (which comes back in the cursor) divided by zero.
SCORE = """
    round(((g.best + ln(1 + g.hits) * 0.01)
           * (1 + 1 / (1 + greatest(0, extract(epoch FROM (:as_of - c."updatedAt")))
                           / 2592000)))::numeric, 6)
"""


class SearchService:
    def __init__(self, db: AsyncSession, user_id: str, timeout_seconds: float = 3.0) -> None:
        self.db = db
        self.user_id = user_id
        self.timeout_seconds = timeout_seconds

    async def _bounded(self) -> None:
        """Every statement of this search gets `timeout_seconds` and a plan of its own (for
        this transaction only); past it PostgreSQL cancels the statement and `search` raises
        TimedOut."""
        # Plans made for each search's own values: after its fifth run a statement got a
        # generic plan, which for filters (`model:`, `after:`) read all of a heavy user's
        # messages (100,000): 1 ms became 200 to 490 ms. Planning takes 0.5 to 4 ms.
        await self.db.execute(
            text(
                "SELECT set_config('statement_timeout', :ms, true), "
                "set_config('plan_cache_mode', 'force_custom_plan', true)"
            ),
            {"ms": str(round(self.timeout_seconds * 1000))},
        )

    async def search(
        self, query: str, filters: Filters, limit: int | None, after: Ranked | None
    ) -> schemas.SearchPage:
        """One page of results; TimedOut (503) when a statement runs past the timeout."""
        size = clamp(limit, 20, MAX_PAGE)
        terms = split_terms(query)
        if after is not None and (after.mode == "filters") != (not query):
            raise InvalidInput("cursor: from a search with other words")
        await self._bounded()
        try:
            if not query:
                return await self._filtered(filters, size, after)
            return await self._page(query, terms, filters, size, after)
        except DBAPIError as exc:
            if _beyond_tsquery_limits(exc):
                raise InvalidInput(
                    "q: too many operators or nested too deeply for full-text search"
                ) from None
            if getattr(exc.orig, "sqlstate", None) != STATEMENT_TIMEOUT:
                raise
            raise TimedOut(
                f"The search ran past its {self.timeout_seconds:g} s limit and was stopped; "
                "try rarer or more words, a date range or a role.",
                retry_after=max(1, round(self.timeout_seconds)),
            ) from exc

    async def _page(
        self, query: str, terms: Terms, filters: Filters, size: int, after: Ranked | None
    ) -> schemas.SearchPage:
        if after is not None and after.mode == "fuzzy":
            return await self._fuzzy(terms, filters, size, after)
        as_of = after.as_of if after else utc_now()
        rows = await self._fulltext(terms, filters, size, after, as_of)
        if not rows and after is None:
            return await self._fuzzy(terms, filters, size, None)
        page = rows[:size]
        matches = await self._fulltext_matches(query, filters, [r.cid for r in page])
        next_cursor = (
            encode_ranked(Ranked(page[-1].score, page[-1].cid, as_of)) if len(rows) > size else None
        )
        return schemas.SearchPage(
            results=[self._result(r, matches.get(r.cid, [])) for r in page],
            next_cursor=next_cursor,
            mode="fulltext",
        )

    def _result(self, row: Any, matches: list[schemas.Match]) -> schemas.SearchResult:
        return schemas.SearchResult(
            conversation=schemas.FoundConversation(
                row.cid,
                row.title,
                as_utc(row.updated_at),
                pinned_at=as_utc(row.pinned_at) if row.pinned_at else None,
                archived_at=as_utc(row.archived_at) if row.archived_at else None,
            ),
            score=float(row.score),
            matches=matches,
        )

    async def _filtered(
        self, filters: Filters, size: int, after: Ranked | None
    ) -> schemas.SearchPage:
        """Filters and no words: the conversations they select (with a message they select,
        when they filter messages), newest activity first, as the list pages."""
        messages = ""
        if filters.any:
            messages = f"""
              AND EXISTS (
                SELECT 1 FROM messages m
                WHERE m."conversationId" = c.id AND m."userId" = :uid
                  AND m."supersededAt" IS NULL AND m."deletedAt" IS NULL {filters.sql()})"""  # noqa: S608
        keyset = ""
        if after is not None:
            keyset = 'AND (c."updatedAt", c.id) < (:after_at, :after_id)'
        statement = text(f"""
            SELECT c.id AS cid, c.title, c."updatedAt" AS updated_at, c."pinnedAt" AS pinned_at,
                   c."archivedAt" AS archived_at, 0 AS score
            FROM conversations c
            WHERE c."userId" = :uid AND c."deletedAt" IS NULL
              {filters.conversation_sql()} {messages} {keyset}
            ORDER BY c."updatedAt" DESC, c.id DESC
            LIMIT :size
        """)  # noqa: S608 (constants and bound names only)
        params = {
            "uid": self.user_id, "size": size + 1, "after_at": after.as_of if after else None,
            "after_id": after.conversation_id if after else None, **filters.params(),
        }  # fmt: skip
        rows = list((await self.db.execute(statement, params)).all())
        page = rows[:size]
        next_cursor = (
            encode_ranked(Ranked(Decimal(0), page[-1].cid, page[-1].updated_at, "filters"))
            if len(rows) > size
            else None
        )
        found = await self._filtered_matches(filters, [r.cid for r in page])
        return schemas.SearchPage(
            results=[self._result(r, found.get(r.cid, [])) for r in page],
            next_cursor=next_cursor,
            mode="filters",
        )

    async def _filtered_matches(
        self, filters: Filters, conversation_ids: list[str]
    ) -> dict[str, list[schemas.Match]]:
        """With message filters, the latest three messages they select in each conversation
        of the page (their first words as the snippet, nothing marked); none otherwise."""
        if not filters.any or not conversation_ids:
            return {}
        statement = text(f"""
            SELECT r.id, r.cid, r.role, r.created_at, left(r.content, :chars) AS start
            FROM unnest(CAST(:ids AS text[])) AS p(cid)
            CROSS JOIN LATERAL (
                SELECT m.id, m."conversationId" AS cid, m.role, m."createdAt" AS created_at,
                       m.content
                FROM messages m
                WHERE m."conversationId" = p.cid AND m."userId" = :uid
                  AND m."supersededAt" IS NULL AND m."deletedAt" IS NULL {filters.sql()}
                ORDER BY m."createdAt" DESC, m.id DESC
                LIMIT :per
            ) r
        """)  # noqa: S608 (constants and bound names only)
        rows = await self.db.execute(
            statement,
            {"ids": conversation_ids, "uid": self.user_id, "per": MATCHES_PER_CONVERSATION,
             "chars": FILTERED_SNIPPET_CHARS, **filters.params()},
        )  # fmt: skip
        found: dict[str, list[schemas.Match]] = {}
        for row in rows:
            start = row.start if len(row.start) < FILTERED_SNIPPET_CHARS else row.start + " …"
            found.setdefault(row.cid, []).append(
                schemas.Match("message", row.id, row.role, as_utc(row.created_at), _snippet(start))
            )
        return found

    async def _fulltext(
        self, terms: Terms, filters: Filters, size: int, after: Ranked | None, as_of: datetime
    ) -> list[Any]:
        titles = (
            ""
            if filters.any
            else """
            UNION ALL
            SELECT c.id AS cid, ts_rank_cd(c."searchVector", q.tsq, 32) * 2 AS rank
            FROM conversations c, q
            WHERE c."userId" = :uid AND c."deletedAt" IS NULL AND c."searchVector" @@ q.tsq"""
        )
        keyset = ""
        if after is not None:
            keyset = f"AND ({SCORE}, g.cid) < (CAST(:after_score AS numeric), :after_id)"
        excluded_cte, excluded = _excluding(terms)
        statement = text(f"""
            WITH q AS (SELECT websearch_to_tsquery('{SEARCH_CONFIG}', :query) AS tsq),
            hits AS (
                SELECT m."conversationId" AS cid, ts_rank_cd(m."searchVector", q.tsq, 32) AS rank
                FROM messages m, q
                WHERE m."userId" = :uid AND m."searchVector" @@ q.tsq
                  AND m."supersededAt" IS NULL AND m."deletedAt" IS NULL {filters.sql()}
                {titles}
            ),{excluded_cte}
            g AS (SELECT cid, max(rank) AS best, count(*) AS hits FROM hits GROUP BY cid)
            SELECT g.cid, c.title, c."updatedAt" AS updated_at, c."pinnedAt" AS pinned_at,
                   c."archivedAt" AS archived_at, {SCORE} AS score
            FROM g JOIN conversations c
                ON c.id = g.cid AND c."userId" = :uid AND c."deletedAt" IS NULL
            WHERE true {filters.conversation_sql()} {excluded} {keyset}
            ORDER BY score DESC, g.cid DESC
            LIMIT :size
        """)  # noqa: S608 (no user input is formatted in; all values are bound)
        params = {
            "query": terms.query, "excluded": terms.excluded, "uid": self.user_id,
            "size": size + 1, "as_of": as_of, "after_score": after.score if after else None,
            "after_id": after.conversation_id if after else None, **filters.params(),
        }  # fmt: skip
        return list((await self.db.execute(statement, params)).all())

    async def _fulltext_matches(
        self, query: str, filters: Filters, conversation_ids: list[str]
    ) -> dict[str, list[schemas.Match]]:
        """The matching title (when no filter narrows the search to messages), then up to
        three best matching messages, for each conversation on the page."""
        if not conversation_ids:
            return {}
        titles = (
            ""
            if filters.any
            else f"""
            SELECT 0 AS place, NULL AS id, c.id AS cid, NULL AS role, NULL AS created_at,
                   ts_headline('{SEARCH_CONFIG}', c.title, q.tsq, :title_headline) AS marked
            FROM conversations c, q
            WHERE c."userId" = :uid AND c."deletedAt" IS NULL AND c.id = ANY(:ids)
              AND c."searchVector" @@ q.tsq
            UNION ALL"""  # noqa: S608
        )
        statement = text(f"""
            WITH q AS (SELECT websearch_to_tsquery('{SEARCH_CONFIG}', :query) AS tsq),
            ranked AS (
                SELECT m.id, m."conversationId" AS cid, m.role, m."createdAt", m.content,
                       row_number() OVER (PARTITION BY m."conversationId"
                           ORDER BY ts_rank_cd(m."searchVector", q.tsq, 32) DESC,
                                    m."createdAt" DESC) AS place
                FROM messages m, q
                WHERE m."userId" = :uid AND m."conversationId" = ANY(:ids)
                  AND m."searchVector" @@ q.tsq AND m."supersededAt" IS NULL
                  AND m."deletedAt" IS NULL {filters.sql()}
            )
            SELECT * FROM ({titles}
            SELECT r.place, r.id, r.cid, r.role, r."createdAt" AS created_at,
                   ts_headline('{SEARCH_CONFIG}', r.content, q.tsq, :headline) AS marked
            FROM ranked r, q
            WHERE r.place <= :per
            ) found
            ORDER BY cid, place
        """)  # noqa: S608
        rows = await self.db.execute(
            statement,
            {"query": query, "uid": self.user_id, "ids": conversation_ids, "headline": HEADLINE,
             "title_headline": TITLE_HEADLINE, "per": MATCHES_PER_CONVERSATION,
             **filters.params()},
        )  # fmt: skip
        found: dict[str, list[schemas.Match]] = {}
        for row in rows:
            found.setdefault(row.cid, []).append(
                schemas.Match(
                    source="message" if row.id else "title",
                    message_id=row.id,
                    role=row.role,
                    created_at=as_utc(row.created_at) if row.created_at else None,
                    snippet=_snippet(row.marked),
                )
            )
        return found

    async def _fuzzy(
        self, terms: Terms, filters: Filters, size: int, after: Ranked | None
    ) -> schemas.SearchPage:
        """Trigram word similarity over the caller's messages: partial words ("postgre") and
        typos ("recieve"), without the excluded terms, in keyset pages like full text.

        One statement: each candidate message's similarity is computed once, and both the
        ranking of conversations and their best three messages are taken from it."""
        if not terms.rest:
            return schemas.SearchPage(results=[], next_cursor=None, mode="fuzzy")
        fuzzy_text = _fuzzy_text(terms.rest)
        # The candidates are the caller's latest FUZZY_SCAN_MESSAGES messages (by the
        # (userId, createdAt) index), each compared once, on its first FUZZY_SCAN_CHARS
        # characters. The trigram index would find matches anywhere in the history, but it
        # rechecks every row sharing a few trigrams with the query: 36 s for `lorm ipsm`
        # over 36,000 lorem-ipsum messages.
        keyset = "AND (g.score, g.cid) < (CAST(:after_score AS numeric), :after_id)"
        excluded_cte, excluded = _excluding(terms)
        statement = text(f"""
            WITH recent AS MATERIALIZED (
                SELECT m.id, m."conversationId" AS cid, m.role, m."createdAt" AS created_at,
                       word_similarity(:text, left(m.content, :scan_chars)) AS rank
                FROM messages m
                WHERE m."userId" = :uid
                  AND m."supersededAt" IS NULL AND m."deletedAt" IS NULL {filters.sql()}
                ORDER BY m."createdAt" DESC
                LIMIT :scan
            ),
            hits AS MATERIALIZED (SELECT * FROM recent WHERE rank >= :threshold),{excluded_cte}
            g AS (SELECT cid, round(max(rank)::numeric, 6) AS score FROM hits GROUP BY cid),
            page AS (
                SELECT g.cid, c.title, c."updatedAt" AS updated_at, c."pinnedAt" AS pinned_at,
                       c."archivedAt" AS archived_at, g.score
                FROM g JOIN conversations c
                    ON c.id = g.cid AND c."userId" = :uid AND c."deletedAt" IS NULL
                WHERE true {filters.conversation_sql()} {excluded} {keyset if after else ""}
                ORDER BY g.score DESC, g.cid DESC
                LIMIT :size
            ),
            best AS (
                SELECT h.id, h.cid, h.role, h.created_at,
                       row_number() OVER (PARTITION BY h.cid
                           ORDER BY h.rank DESC, h.created_at DESC) AS place
                FROM hits h JOIN page p ON p.cid = h.cid
            )
            SELECT p.cid, p.title, p.updated_at, p.pinned_at, p.archived_at, p.score,
                   coalesce(json_agg(json_build_array(b.id, b.role, b.created_at, m.content)
                                     ORDER BY b.place), '[]') AS matches
            FROM page p
            JOIN best b ON b.cid = p.cid AND b.place <= :per
            JOIN messages m ON m.id = b.id
            GROUP BY p.cid, p.title, p.updated_at, p.pinned_at, p.archived_at, p.score
            ORDER BY p.score DESC, p.cid DESC
        """)  # noqa: S608
        params = {
            "text": fuzzy_text, "excluded": terms.excluded, "uid": self.user_id,
            "size": size + 1, "after_score": after.score if after else None,
            "after_id": after.conversation_id if after else None,
            "per": MATCHES_PER_CONVERSATION, "scan": FUZZY_SCAN_MESSAGES,
            "scan_chars": FUZZY_SCAN_CHARS, "threshold": FUZZY_THRESHOLD, **filters.params(),
        }  # fmt: skip
        rows = list((await self.db.execute(statement, params)).all())
        page = rows[:size]
        as_of = after.as_of if after else utc_now()
        next_cursor = (
            encode_ranked(Ranked(page[-1].score, page[-1].cid, as_of, "fuzzy"))
            if len(rows) > size
            else None
        )
        return schemas.SearchPage(
            results=[self._result(r, self._fuzzy_matches(r.matches, terms.rest)) for r in page],
            next_cursor=next_cursor,
            mode="fuzzy",
        )

    @staticmethod
    def _fuzzy_matches(found: list[list[Any]], query: str) -> list[schemas.Match]:
        return [
            schemas.Match("message", message_id, role,
                          as_utc(datetime.fromisoformat(created_at)),
                          _fuzzy_snippet(content, query))
            for message_id, role, created_at, content in found
        ]  # fmt: skip
