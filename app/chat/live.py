"""Answers being generated: they outlive the request that started them, and any app process can
follow or stop them.

- A `LiveAnswer` runs in a task of its own. The assistant row exists from the start (status
  `streaming`); its text is saved as it grows (at most `SAVE_SECONDS` or `SAVE_CHARS` behind),
  in one transaction a second for all answers of the process, which also renews their
  conversations' leases; the last write sets one of `complete`, `incomplete`, `error`,
  `cancelled` and releases the lease, retried while the database is away.
- Readers (`follow`) get what was generated so far, then the rest live, then an `Ended`. A
  reader that goes away changes nothing for the answer.
- Other processes reach an answer through PostgreSQL: LISTEN/NOTIFY on one channel carries
  "follow from offset", "text at offset", "ended" and "stop", and the saved partial text is the
  fallback when a notification is lost. Works with no Redis, and needs no extra service.
- An answer whose process died (its lease ran out with the row still `streaming`) is closed
  `incomplete` (`interrupted`) by a sweep that every process runs every few seconds, which
  also tells the followers ("ended").
- The notification line, the saves and the sweep reconnect with jittered, bounded backoff
  (app/lib/backoff.py), and none of these background tasks dies of an unexpected exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import Select, and_, bindparam, case, exists, select, text, update
from sqlalchemy.orm import aliased

from app.chat import schemas
from app.chat.history import Window
from app.chat.services import message_schema
from app.db.engine import Database
from app.db.models import Conversation, Message, Timestamp
from app.db.url import to_libpq
from app.lib import metrics
from app.lib.backoff import Backoff, keep_running
from app.lib.gates import Gate
from app.lib.time import utc_now
from app.llm.router import Generation, ModelRouter
from app.llm.types import ModelInfo, ProviderFailure, Sampling

logger = logging.getLogger(__name__)

CHANNEL = "chatwithme_answers"
# Text reaches readers in batches: the first at once, then at most this often...
BATCH_SECONDS = 0.03
# ...or as soon as this much is waiting. With more than BATCH_ANSWERS answers at once in the
# process the interval grows with their number, up to BATCH_MAX_SECONDS: sending a frame
# costs about as much as everything else a token does, so under load frames carry more text
# rather than the process falling behind (issue 22).
BATCH_CHARS = 512
BATCH_ANSWERS = 100
BATCH_MAX_SECONDS = 0.25
# The saved partial is at most this far behind the generated text.
SAVE_SECONDS = 1.0
SAVE_CHARS = 4096
# The conversation's lease outlives a dead process by at most this long (ANSWER_LEASE_SECONDS);
# it is renewed at every save, and at least this often (or a third of the lease, if shorter).
LEASE = timedelta(seconds=30)
LEASE_RENEWAL = 5.0
# How often each process looks for answers whose lease ran out (ANSWER_SWEEP_SECONDS).
SWEEP_SECONDS = 5.0
# Connecting the notification line is given up after this long (and tried again).
CONNECT_SECONDS = 5.0
# Notifications waiting to be sent; more are dropped (the saved rows are the fallback).
OUTBOX_SIZE = 10_000
# One NOTIFY payload must stay under PostgreSQL's 8000 bytes: 1000 characters escaped as JSON
# take at most 6000.
NOTIFY_CHARS = 1000
# How long the stream waits for the final write before ending anyway (the write goes on).
STREAM_WAITS_FOR_STORE = 2.0
# A write that takes longer than this is given up (and retried, for the last one): a hung
# database must not hold an answer's end.
WRITE_SECONDS = 5.0
# What the last write of an answer sets; the rest was written when it began.
FINAL_COLUMNS = (
    "content", "model", "provider", "status", "prompt_tokens", "completion_tokens",
    "tokens_estimated", "time_to_first_token_ms", "total_time_ms", "finish_reason",
    "error_code", "attempts", "reasoning",
)  # fmt: skip
# The notification line's name in pg_stat_activity (it may run around a pooler: see
# docs/deploy.md, "Connection budget").
LISTEN_SETTINGS = {"application_name": "chatwithme-listen"}
# A reader in another process looks at the saved row this often when no notification comes.
POLL_SECONDS = 1.0


def _final_write() -> Select[tuple[str]]:
    """The last write of an answer: its row, and the release of the conversation's lease, in
    one statement of two data-modifying CTEs. Built once, with bound parameters: building it
    for each answer was about a sixth of an answer's CPU."""
    values: dict[str, Any] = {
        # Prefixed: a parameter named as a column of `conversations` (`model`) would be added
        # to the SET of its UPDATE.
        name: bindparam(f"set_{name}", type_=getattr(Message, name).type)
        for name in FINAL_COLUMNS
    }
    # A stop made through the database wins over the status this process saw.
    values["status"] = case((Message.status == "cancelled", "cancelled"), else_=values["status"])
    answer_id = bindparam("answer_id", type_=Message.id.type)
    conversation_id = bindparam("conversation_id", type_=Message.conversation_id.type)
    other = aliased(Message)
    answered = (
        update(Message)
        .where(Message.id == answer_id)
        .values(**values)
        .returning(Message.status)
        .cte("answered")
    )
    released = (
        update(Conversation)
        .where(
            Conversation.id == conversation_id,
            # Release only our own lease: not one a newer generation took after ours had
            # expired while the database was away.
            ~exists().where(
                and_(
                    other.conversation_id == conversation_id,
                    other.status == "streaming",
                    other.id != answer_id,
                )
            ),
        )
        .values(updated_at=bindparam("now", type_=Timestamp), generating_until=None)
        .returning(Conversation.id)
        .cte("released")
    )
    return select(answered.c.status).add_cte(released)


FINAL_WRITE = _final_write()


SAVE_TEXTS = text(
    "UPDATE messages AS m SET content = v.content "
    "FROM unnest(CAST(:ids AS text[]), CAST(:texts AS text[])) AS v(id, content) "
    "WHERE m.id = v.id AND m.status = 'streaming'"
)
# Renews the leases of the answers still `streaming`, and says where each answer stands: the
# others were stopped through the database (`cancelled`) or closed by the sweep.
RENEW_LEASES = text(
    "WITH renewed AS ("
    'UPDATE conversations AS c SET "generatingUntil" = :until FROM messages AS m '
    """WHERE m.id = ANY(CAST(:ids AS text[])) AND m.status = 'streaming' """
    'AND c.id = m."conversationId" RETURNING m.id'
    ") SELECT m.id, m.status FROM messages AS m WHERE m.id = ANY(CAST(:ids AS text[]))"
)
# The sweep: answers still `streaming` in conversations whose lease ran out lost their process.
# They are closed as `start_generation` closes them, the lease is released, and every process
# is told ("ended", at commit). One statement on the partial index of leases (revision 0011);
# a conversation another transaction holds (a new question taking it) is left for next time.
SWEEP = text(
    "WITH expired AS ("
    'SELECT id FROM conversations WHERE "generatingUntil" < :now '
    'ORDER BY "generatingUntil" LIMIT 500 FOR UPDATE SKIP LOCKED'
    "), closed AS ("
    """UPDATE messages AS m SET status = 'incomplete', "errorCode" = 'interrupted' """
    "FROM expired AS e "
    """WHERE m."conversationId" = e.id AND m.status = 'streaming' """
    "RETURNING m.id, m.model, m.provider"
    "), released AS ("
    'UPDATE conversations AS c SET "generatingUntil" = NULL FROM expired AS e '
    "WHERE c.id = e.id RETURNING c.id"
    ") SELECT id, model, provider, pg_notify(:channel, "
    "json_build_object('k', 'e', 'm', id, 'p', 'sweep')::text) FROM closed"
)


@dataclass(frozen=True, slots=True)
class Text:
    """Generated text starting at character `offset` of the answer."""

    offset: int
    text: str


@dataclass(frozen=True, slots=True)
class Thought:
    """The model's reasoning starting at character `offset` of it (apart from the answer)."""

    offset: int
    text: str


@dataclass(frozen=True, slots=True)
class Titled:
    """The conversation got a title from the title model while the answer was running."""

    title: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The answer's final state; `failure` names what went wrong (None when complete)."""

    message: schemas.Message
    failure: str | None


Piece = Text | Thought | Titled | Ended


@dataclass(frozen=True, slots=True)
class Question:
    """What a generation needs: who asked, where, which rows, and the prompt."""

    user_id: str
    conversation_id: str
    user_message: schemas.Message
    answer_id: str
    answer_created_at: datetime
    model: ModelInfo
    window: Window
    sampling: Sampling = field(default_factory=Sampling)
    system_prompt: str | None = None


class LiveAnswer:
    """One answer being generated in this process."""

    def __init__(self, answers: LiveAnswers, question: Question) -> None:
        self.answers = answers
        self.question = question
        self.parts: list[str] = []
        self.length = 0
        self._pending: list[str] = []
        self.published = 0
        # The reasoning, batched as the text is; not relayed to other processes (they get
        # it from the stored row once the answer has ended).
        self.thoughts: list[str] = []
        self._pending_thoughts: list[str] = []
        self.thoughts_published = 0
        self.title: str | None = None
        self._last_publish = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._readers: set[asyncio.Queue[Piece]] = set()
        self.relayed_from: int | None = None  # a reader in another process wants text from here
        self.saved = 0  # characters of the text saved in the row
        self.generating = True
        self.ended: Ended | None = None
        self.stored = asyncio.Event()
        self.stop_reason: str | None = None
        self._generation: Generation | None = None
        self._consumer: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.question.answer_id

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"answer {self.id}")

    def stop(self, reason: str = "cancelled") -> None:
        """Cancel the model call; the text so far is kept with status `cancelled`
        (`incomplete` when the server is shutting down, or when `interrupted`: the sweep
        closed the row, taking this process for dead)."""
        if self.stop_reason is None and self.ended is None:
            self.stop_reason = reason
            if self._consumer is not None:
                self._consumer.cancel()

    async def follow(self) -> AsyncIterator[Piece]:
        """Everything so far, then the rest as it comes, then `Ended`."""
        queue: asyncio.Queue[Piece] = asyncio.Queue()
        snapshot, thoughts, title = self.text, "".join(self.thoughts), self.title
        if self.ended is None:
            self._readers.add(queue)
        try:
            if thoughts:
                yield Thought(0, thoughts)
            if snapshot:
                yield Text(0, snapshot)
            if title is not None:
                yield Titled(title)
            if self.ended is not None:
                yield self.ended
                return
            sent, thought = len(snapshot), len(thoughts)
            while True:
                piece = await queue.get()
                if isinstance(piece, Text):
                    if piece.offset + len(piece.text) > sent:
                        yield Text(sent, piece.text[sent - piece.offset :])
                        sent = piece.offset + len(piece.text)
                elif isinstance(piece, Thought):
                    if piece.offset + len(piece.text) > thought:
                        yield Thought(thought, piece.text[thought - piece.offset :])
                        thought = piece.offset + len(piece.text)
                else:
                    yield piece
                    if isinstance(piece, Ended):
                        return
        finally:
            self._readers.discard(queue)

    def titled(self, title: str) -> None:
        """Tell the readers the conversation's new title, if the answer is still running."""
        if self.ended is None:
            self.title = title
            for queue in self._readers:
                queue.put_nowait(Titled(title))

    def relay_from(self, offset: int) -> None:
        """A reader in another process asked for the text from `offset` on."""
        self.relayed_from = offset if self.relayed_from is None else min(offset, self.relayed_from)
        text = self.text[offset : self.published]
        for start in range(0, len(text), NOTIFY_CHARS):
            chunk = text[start : start + NOTIFY_CHARS]
            self.answers.send({"k": "t", "m": self.id, "o": offset + start, "t": chunk})
        if self.ended is not None:
            self.answers.send({"k": "e", "m": self.id})

    # The generation.

    async def _run(self) -> None:
        router = self.answers.router
        generation = router.stream(
            self.question.model, self.question.window.messages, self.question.sampling
        )
        self._generation = generation
        failure: ProviderFailure | None = None
        status = "complete"
        self._consumer = asyncio.create_task(self._consume(generation))
        try:
            await self._consumer
        except ProviderFailure as exc:
            failure = exc
            status = "incomplete" if self.parts or self.thoughts else "error"
        except asyncio.CancelledError:
            if self.stop_reason is None:  # this task itself was cancelled: pass it on
                raise
            status = "incomplete" if self.stop_reason == "interrupted" else self.stop_reason
        except Exception:  # a bug must not leave readers waiting or the row `streaming`
            logger.exception("the answer %s failed unexpectedly", self.id)
            failure = ProviderFailure("unavailable", "unexpected error")
            status = "incomplete" if self.parts else "error"
        finally:
            self.generating = False
        self._publish()
        await self._finish(generation, status, failure)

    async def _consume(self, generation: Generation) -> None:
        try:
            async for delta in generation:
                if isinstance(delta, str):
                    self._append(delta)
                else:
                    self._think(delta.text)
        finally:
            await generation.aclose()

    def _think(self, text: str) -> None:
        """Reasoning: batched as text is, published before any text that follows it."""
        if self._pending:  # text came first: keep the order
            self._publish()
        self.thoughts.append(text)
        self._pending_thoughts.append(text)
        since = time.monotonic() - self._last_publish
        waiting = sum(map(len, self._pending_thoughts))
        if waiting >= BATCH_CHARS or (self._timer is None and since >= BATCH_SECONDS):
            self._publish()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                BATCH_SECONDS - since, self._publish
            )

    def _append(self, text: str) -> None:
        self.parts.append(text)
        self._pending.append(text)
        self.length += len(text)
        if self.length - self.saved >= SAVE_CHARS:
            self.answers.save_soon()
        waiting = self.length - self.published
        since = time.monotonic() - self._last_publish
        batch = self.answers.batch_seconds
        if waiting >= BATCH_CHARS or (self._timer is None and since >= batch):
            self._publish()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(batch - since, self._publish)

    def _publish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending_thoughts:
            self._publish_thoughts()
        if not self._pending:
            return
        chunk = "".join(self._pending)
        self._pending.clear()
        piece = Text(self.published, chunk)
        self.published += len(chunk)
        self._last_publish = time.monotonic()
        for queue in self._readers:
            queue.put_nowait(piece)
        if self.relayed_from is not None:
            for start in range(0, len(chunk), NOTIFY_CHARS):
                self.answers.send(
                    {
                        "k": "t",
                        "m": self.id,
                        "o": piece.offset + start,
                        "t": chunk[start : start + NOTIFY_CHARS],
                    }
                )

    def _publish_thoughts(self) -> None:
        chunk = "".join(self._pending_thoughts)
        self._pending_thoughts.clear()
        piece = Thought(self.thoughts_published, chunk)
        self.thoughts_published += len(chunk)
        self._last_publish = time.monotonic()
        for queue in self._readers:
            queue.put_nowait(piece)

    async def _finish(
        self, generation: Generation, status: str, failure: ProviderFailure | None
    ) -> None:
        row = self._final_row(generation, status, failure)
        failure_kind = failure.kind if failure else (None if status == "complete" else status)
        if self.stop_reason == "interrupted" and failure is None:
            failure_kind = "interrupted"
        store = asyncio.create_task(self.answers.store_final(self.question, row))
        done, _ = await asyncio.wait({store}, timeout=STREAM_WAITS_FOR_STORE)
        if store in done and store.exception() is None:
            stored_status = store.result()
            if stored_status is not None and stored_status != row.status:
                row.status = stored_status  # stopped through the database meanwhile
                failure_kind = failure_kind or stored_status
        self.ended = Ended(message_schema(row), failure_kind)
        for queue in self._readers:
            queue.put_nowait(self.ended)
        self._readers.clear()
        if self.relayed_from is not None:
            self.answers.send({"k": "e", "m": self.id})
        answered = generation.answered_by or self.question.model
        metrics.record_generation(
            model=answered.id,
            provider=answered.provider,
            status=row.status,
            ttft_ms=generation.time_to_first_token_ms,
        )
        with contextlib.suppress(Exception):  # logged by store_final
            await store
        self.stored.set()

    def _final_row(
        self, generation: Generation, status: str, failure: ProviderFailure | None
    ) -> Message:
        result = generation.result
        answered = generation.answered_by or self.question.model
        usage = result.usage if result else None
        total_ms = result.total_time_ms if result else generation.elapsed_ms()
        ttft = generation.time_to_first_token_ms
        window = self.question.window
        error_code = (
            failure.kind
            if failure
            else (
                ("interrupted" if self.stop_reason == "interrupted" else "shutdown")
                if status == "incomplete"
                else None
            )
        )
        return Message(
            id=self.id,
            conversation_id=self.question.conversation_id,
            user_id=self.question.user_id,
            role="assistant",
            content=self.text,
            model=answered.id,
            provider=answered.provider,
            status=status,
            prompt_tokens=usage.prompt_tokens if usage else window.prompt_tokens_estimate,
            completion_tokens=usage.completion_tokens if usage else None,
            tokens_estimated=usage.estimated if usage else True,
            time_to_first_token_ms=round(ttft) if ttft is not None else None,
            total_time_ms=round(total_ms),
            finish_reason=result.finish_reason if result else None,
            error_code=error_code,
            attempts=[asdict(a) for a in generation.attempts] or None,
            prompt_message_ids=[*window.included_ids, self.question.user_message.id],
            reply_to_id=self.question.user_message.id,
            parent_id=self.question.user_message.id,
            created_at=self.question.answer_created_at,
            reasoning="".join(self.thoughts) or None,
            system_prompt=self.question.system_prompt,
            temperature=self.question.sampling.temperature,
            max_output_tokens=self.question.sampling.max_tokens,
        )


@dataclass(eq=False)  # one per app: compared (and hashed, by the metrics) by identity
class LiveAnswers:
    """This process's answers in flight, and its line to the other processes."""

    database: Database
    router: ModelRouter
    database_url: str | None
    store_retry_seconds: float = 120.0
    shutdown_grace_seconds: float = 10.0
    lease: timedelta = LEASE
    sweep_seconds: float = SWEEP_SECONDS
    by_conversation: dict[str, LiveAnswer] = field(default_factory=dict)
    _by_id: dict[str, LiveAnswer] = field(default_factory=dict)
    _remote_readers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = field(default_factory=dict)
    _outbox: asyncio.Queue[dict[str, Any]] | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _process: str = field(default_factory=lambda: secrets.token_hex(6))
    _shutting_down: bool = False
    _previous_handlers: dict[int, Any] = field(default_factory=dict)
    _save_now: asyncio.Event = field(default_factory=asyncio.Event)
    _saver: asyncio.Task[None] | None = None
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)
    _our_handlers: dict[int, Any] = field(default_factory=dict)
    # Up/down state and delays of the notification line, the saves and the sweep.
    relay: Backoff = field(
        default_factory=lambda: Backoff("the answers' notification line (LISTEN)", logger)
    )
    _saves: Backoff = field(
        default_factory=lambda: Backoff("saving answers in flight", logger, base=1.0, floor=0.5)
    )
    _sweeps: Backoff = field(default_factory=lambda: Backoff("the answers' sweep", logger))
    relay_started: bool = False
    # How long text waits to be sent in one frame with more (see BATCH_ANSWERS).
    batch_seconds: float = BATCH_SECONDS
    # Last writes of answers running at once (each holds a pooled connection while it runs).
    write_slots: int = 2
    _writes: Gate = field(init=False)

    def __post_init__(self) -> None:
        self._writes = Gate("answer_writes", self.write_slots)

    def _batching(self) -> None:
        load = len(self._by_id) / BATCH_ANSWERS
        self.batch_seconds = min(BATCH_MAX_SECONDS, BATCH_SECONDS * max(1.0, load))

    def begin(self, question: Question) -> LiveAnswer:
        if self._saver is None or self._saver.done():
            crashes = Backoff("the task saving answers", logger, base=1.0)
            self._saver = asyncio.create_task(
                keep_running(self._keep_saving, crashes, on_crash=_crashed("saver")),
                name="saving answers",
            )
            self._tasks.add(self._saver)
        answer = LiveAnswer(self, question)
        self.by_conversation[question.conversation_id] = answer
        self._by_id[answer.id] = answer
        self._batching()
        answer.start()
        assert answer.task is not None
        self._tasks.add(answer.task)
        answer.task.add_done_callback(lambda _: self._forget(answer))
        return answer

    def _forget(self, answer: LiveAnswer) -> None:
        assert answer.task is not None
        self._tasks.discard(answer.task)
        if self.by_conversation.get(answer.question.conversation_id) is answer:
            del self.by_conversation[answer.question.conversation_id]
        self._by_id.pop(answer.id, None)
        self._batching()

    def local(self, conversation_id: str) -> LiveAnswer | None:
        return self.by_conversation.get(conversation_id)

    # Writes of a generation, each in a short session of its own.

    def save_soon(self) -> None:
        self._save_now.set()

    async def _keep_saving(self) -> None:
        """Save the growing texts of this process's answers and renew their leases: one
        transaction a second for all of them, however many there are. An answer whose row is
        no longer `streaming` was stopped through the database: it is stopped here too."""
        renewed = 0.0
        renewal = min(LEASE_RENEWAL, self.lease.total_seconds() / 3)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._save_now.wait(), SAVE_SECONDS)
            self._save_now.clear()
            answers = [a for a in self._by_id.values() if a.generating]
            dirty = [(a, a.length, a.text) for a in answers if a.length > a.saved]
            if not answers or (not dirty and time.monotonic() - renewed < renewal):
                continue
            try:
                async with asyncio.timeout(WRITE_SECONDS), self._turn():
                    statuses = await self._save(dirty, answers)
            except Exception as exc:  # the database is away: the next save catches up
                self._saves.failed(exc)
                await self._saves.wait()  # not at once, however fast the text grows
                continue
            self._saves.succeeded()
            renewed = time.monotonic()
            for answer, length, _ in dirty:
                answer.saved = max(answer.saved, length)
            for answer in answers:
                status = statuses.get(answer.id, "cancelled")
                if status != "streaming":
                    # Stopped through the database, or closed by the sweep while this process
                    # could not renew its lease (the database was away for longer).
                    answer.stop("cancelled" if status == "cancelled" else "interrupted")

    async def _save(
        self, dirty: list[tuple[LiveAnswer, int, str]], answers: list[LiveAnswer]
    ) -> dict[str, str]:
        """Save the texts, renew the leases; the status of each answer's row."""
        async with self.database.session_maker() as db:
            if dirty:
                await db.execute(
                    SAVE_TEXTS,
                    {"ids": [a.id for a, _, _ in dirty], "texts": [t for _, _, t in dirty]},
                )
            rows = await db.execute(
                RENEW_LEASES,
                {"ids": [a.id for a in answers], "until": utc_now() + self.lease},
            )
            statuses = {row[0]: row[1] for row in rows}
            await db.commit()
        return statuses

    def track(self, task: asyncio.Task[Any]) -> None:
        """A side task of answers (a title being made): cancelled at shutdown."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def turn(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """For the writes of side tasks: see `_turn`."""
        return self._turn()

    def _turn(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Background writes take turns when every session shares one connection (tests)."""
        return self._one_at_a_time if self.database.one_connection else contextlib.nullcontext()

    async def store_final(self, question: Question, row: Message) -> str | None:
        """Write the answer's last state and release the lease, retrying while the database is
        away, for at most `store_retry_seconds`. Returns the stored status."""
        deadline = time.monotonic() + self.store_retry_seconds
        tries = Backoff(f"storing the answer {row.id}", logger, base=0.1, cap=2.0)
        while True:
            try:
                # Last writes queue here, in order, rather than at the pool (whose wait is
                # bounded): many answers ending at once is load, not a failure.
                async with self._writes, asyncio.timeout(WRITE_SECONDS), self._turn():
                    status = await self._write_final(question, row)
            except Exception as exc:
                tries.failed(exc)
                delay = tries.delay()
                if time.monotonic() + delay > deadline:
                    logger.error(
                        "gave up storing the answer %s after %d tries: %s",
                        row.id, tries.failures, tries.last_error,
                    )  # fmt: skip
                    raise
                await asyncio.sleep(delay)
                continue
            tries.succeeded()
            return status

    async def _write_final(self, question: Question, row: Message) -> str | None:
        params: dict[str, Any] = {f"set_{name}": getattr(row, name) for name in FINAL_COLUMNS}
        params |= {"answer_id": row.id, "conversation_id": question.conversation_id,
                   "now": utc_now()}  # fmt: skip
        async with self.database.session_maker() as db:  # one statement, one round trip
            status: str | None = await db.scalar(FINAL_WRITE, params)
            await db.commit()
        # Before the stream ends: the asker's next list or page, on any process, has the
        # answer, even when it reads on a replica (app/db/replicas.py).
        await self._record_write(question.user_id)
        return status

    async def _record_write(self, user_id: str) -> None:
        """The answer is stored whatever happens here: a primary that went away just now
        costs only the routing of this user's next reads (logged)."""
        try:
            await self.database.record_write(user_id)
        except Exception as exc:
            logger.warning("could not record the write position of an answer: %r", exc)

    # Stopping and following answers of any process.

    async def stop(self, conversation_id: str, answer_id: str) -> None:
        """Stop the answer wherever it runs; returns once this process has done its part."""
        answer = self._by_id.get(answer_id)
        if answer is not None:
            answer.stop("cancelled")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answer.stored.wait(), STREAM_WAITS_FOR_STORE)
            return
        async with self._turn(), self.database.session_maker() as db:
            await db.execute(
                update(Message)
                .where(Message.id == answer_id, Message.status == "streaming")
                .values(status="cancelled")
            )
            await db.commit()
        self.send({"k": "s", "m": answer_id})

    async def follow_remote(self, answer_id: str, saved: str) -> AsyncIterator[Piece]:
        """Follow an answer generated by another process: the saved text, then what its owner
        relays; the saved row fills any gap, and tells the end when a notification is lost."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._remote_readers.setdefault(answer_id, set()).add(queue)
        sent = len(saved)
        reads = Backoff(f"reading the answer {answer_id}", logger, base=POLL_SECONDS)
        try:
            if saved:
                yield Text(0, saved)
            self.send({"k": "f", "m": answer_id, "o": sent})
            while True:
                # While the database is away, the row is read less and less often.
                poll = max(POLL_SECONDS, reads.delay()) if reads.failures else POLL_SECONDS
                try:
                    note: dict[str, Any] | None = await asyncio.wait_for(queue.get(), poll)
                except TimeoutError:
                    note = None
                if note is not None and note["k"] == "t" and note["o"] <= sent:
                    end = note["o"] + len(note["t"])
                    if end > sent:
                        yield Text(sent, note["t"][sent - note["o"] :])
                        sent = end
                    continue
                # Ended, a gap, or silence: the saved row says where things stand.
                try:
                    found = await self._saved_answer(answer_id)
                except Exception as exc:  # the database is away: keep waiting for the owner
                    reads.failed(exc)
                    continue
                reads.succeeded()
                if found is None:
                    return
                row, lease_over = found
                if len(row.content) > sent:
                    yield Text(sent, row.content[sent:])
                    sent = len(row.content)
                if row.status != "streaming":
                    failure = None if row.status == "complete" else row.error_code or row.status
                    if row.reasoning:  # not relayed live: it comes with the stored row
                        yield Thought(0, row.reasoning)
                    yield Ended(message_schema(row), failure)
                    return
                if lease_over:  # its process went away without a last word
                    row.status = "incomplete"
                    yield Ended(message_schema(row), "interrupted")
                    return
                if note is None or note["k"] == "t":
                    self.send({"k": "f", "m": answer_id, "o": sent})  # ask again
        finally:
            readers = self._remote_readers.get(answer_id)
            if readers is not None:
                readers.discard(queue)
                if not readers:
                    del self._remote_readers[answer_id]

    async def _saved_answer(self, answer_id: str) -> tuple[Message, bool] | None:
        """The saved row, and whether its conversation's lease has run out."""
        async with self._turn(), self.database.session_maker() as db:
            found = (
                await db.execute(
                    select(Message, Conversation.generating_until)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(Message.id == answer_id)
                )
            ).first()
        if found is None:
            return None
        row, lease = found
        return row, lease is None or lease < utc_now()

    # LISTEN/NOTIFY.

    def send(self, note: dict[str, Any]) -> None:
        """Notify the other processes, if the line is up: while it is down, followers read
        the saved rows, and ask again once it is back."""
        if self._outbox is not None and self.relay.up:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait({**note, "p": self._process})

    def _on_note(self, payload: str) -> None:
        try:
            note = json.loads(payload)
        except ValueError:
            return
        if not isinstance(note, dict) or note.get("p") == self._process:
            return
        kind, answer_id = note.get("k"), str(note.get("m"))
        answer = self._by_id.get(answer_id)
        if kind == "f" and answer is not None:
            answer.relay_from(int(note["o"]))
        elif kind == "s" and answer is not None:
            answer.stop("cancelled")
        elif kind in {"t", "e"}:
            for queue in self._remote_readers.get(answer_id, ()):
                queue.put_nowait(note)

    async def start(self) -> None:
        """Open the notification line and start the sweep (in the background, so start-up
        needs no database)."""
        if not self.database.one_connection:  # a test's one shared connection: no sweeps
            self._spawn(self._keep_sweeping, "the answers' sweep", "sweep")
        if self.database_url is None:
            if not self.database.one_connection:
                # A pooled DATABASE_URL and no direct one: no LISTEN, but SIGTERM still gives
                # answers in flight their grace period.
                self._watch_signals()
            return
        self._outbox = asyncio.Queue(OUTBOX_SIZE)
        self.relay_started = True
        metrics.RELAYS.watch(self)
        self._spawn(self._keep_listening, "the answers' notification task", "relay")
        self._watch_signals()

    def _spawn(self, run: Callable[[], Any], name: str, label: str) -> None:
        """A background task that runs `run` again, after a backoff, whatever it raises."""
        crashes = Backoff(name, logger, base=1.0)
        task = asyncio.create_task(keep_running(run, crashes, on_crash=_crashed(label)), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep_listening(self) -> None:
        """Hold the LISTEN connection and send the outbox on it; reconnect with backoff when
        it fails, whatever the failure (a fast shutdown of the server once left asyncpg
        "cannot switch to state 12", which killed the task)."""
        assert self.database_url is not None and self._outbox is not None
        url = to_libpq(self.database_url)
        while True:
            lost = asyncio.Event()
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(
                    url, timeout=CONNECT_SECONDS, server_settings=LISTEN_SETTINGS
                )
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, lambda *args: self._on_note(args[3]))
                self._clear_outbox()  # what waited was meant for a line that was down
                self.relay.succeeded()
                await self._send_until(connection, lost)
                self.relay.failed("the connection was closed")
            except Exception as exc:
                self.relay.failed(exc)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(timeout=1), 2)
                    if not connection.is_closed():
                        connection.terminate()
            await self.relay.wait()

    def _clear_outbox(self) -> None:
        assert self._outbox is not None
        while not self._outbox.empty():
            self._outbox.get_nowait()

    def relay_state(self) -> tuple[bool, float, int, str | None] | None:
        """The notification line: (up, seconds down, failed tries, last error); None when this
        process has none (no DATABASE_URL: tests on one shared connection)."""
        if not self.relay_started:
            return None
        relay = self.relay
        return relay.up, relay.down_for(), relay.attempts, relay.last_error

    # The sweep of answers whose process went away.

    async def sweep(self) -> list[str]:
        """Close the answers whose lease ran out while `streaming`; their ids."""
        async with self._turn(), self.database.session_maker() as db:
            rows = (await db.execute(SWEEP, {"now": utc_now(), "channel": CHANNEL})).all()
            await db.commit()
        for row in rows:
            metrics.record_generation(
                model=row.model or "unknown", provider=row.provider, status="incomplete",
                ttft_ms=None,
            )  # fmt: skip
            metrics.ANSWERS_SWEPT.inc()
        if rows:
            logger.warning(
                "closed %d answer(s) whose process went away: %s",
                len(rows), ", ".join(row.id for row in rows),
            )  # fmt: skip
        return [row.id for row in rows]

    async def _keep_sweeping(self) -> None:
        while True:
            # Jittered, so that the processes started together do not sweep together.
            await asyncio.sleep(self.sweep_seconds * random.uniform(0.75, 1.25))
            try:
                async with asyncio.timeout(WRITE_SECONDS):
                    await self.sweep()
            except Exception as exc:  # the database is away: the next round tries again
                self._sweeps.failed(exc)
                continue
            self._sweeps.succeeded()

    async def _send_until(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        assert self._outbox is not None
        gone = asyncio.ensure_future(lost.wait())
        try:
            while not lost.is_set():
                getter = asyncio.ensure_future(self._outbox.get())
                await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    return
                note = getter.result()
                await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps(note))
        finally:
            gone.cancel()

    # Shutdown.

    def _watch_signals(self) -> None:
        """On SIGTERM/SIGINT, give answers in flight their grace period at once, while the
        server waits for open streams; then chain to the server's own handler."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue
            self._previous_handlers[sig] = previous

            def handler(number: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
                with contextlib.suppress(RuntimeError):  # that loop is closed already
                    loop.call_soon_threadsafe(self.begin_shutdown)
                previous(number, frame)

            signal.signal(sig, handler)
            self._our_handlers[sig] = handler

    def begin_shutdown(self) -> None:
        """Answers in flight may finish within the grace period; then they are stopped and
        stored `incomplete`."""
        if self._shutting_down:
            return
        self._shutting_down = True
        if self.by_conversation:
            logger.info(
                "waiting up to %g s for %d answer(s) in flight",
                self.shutdown_grace_seconds,
                len(self.by_conversation),
            )
        task = asyncio.create_task(self._stop_after_grace(), name="stopping answers")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop_after_grace(self) -> None:
        running = [a.task for a in self.by_conversation.values() if a.task is not None]
        if running:
            await asyncio.wait(running, timeout=self.shutdown_grace_seconds)
        for answer in list(self.by_conversation.values()):
            answer.stop("incomplete")

    async def aclose(self) -> None:
        """Let answers in flight finish (or stop them), store them, close the line."""
        self.begin_shutdown()
        answers = [a.task for a in self._by_id.values() if a.task is not None]
        if answers:
            await asyncio.wait(answers, timeout=self.shutdown_grace_seconds + 5)
        for sig, previous in self._previous_handlers.items():
            if signal.getsignal(sig) is self._our_handlers.get(sig):
                signal.signal(sig, previous)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _crashed(task: str) -> Callable[[], None]:
    def count() -> None:
        metrics.BACKGROUND_CRASHES.labels(task=task).inc()

    return count
