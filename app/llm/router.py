"""ModelRouter: picks the provider for a model, enforces deadlines, falls back, keeps health.

Fallback happens only before the first delta reaches the caller, and never for failures
another provider would not cure (bad request, authentication, content filter).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.lib.gates import Gate
from app.lib.metrics import record_provider_failure
from app.llm.catalogue import ModelCatalogue
from app.llm.providers.base import Provider
from app.llm.providers.dev_echo import DevEchoProvider
from app.llm.types import (
    Attempt,
    ChatMessage,
    GenerationResult,
    ModelInfo,
    ProviderFailure,
    Reasoning,
    Sampling,
    StreamEnd,
    Usage,
    estimate_message_tokens,
    estimate_tokens,
)
from app.settings import Settings

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds. `connect` goes to the HTTP client; the others are enforced here."""

    connect: float = 5.0
    first_token: float = 30.0
    token_gap: float = 30.0
    total: float = 300.0


class _Stall:
    """The deadline of one provider call's next event, under `timeout` (entered, no deadline
    of its own): moved on at every delta by storing a time, which one timer reads when it
    fires. Rescheduling the asyncio timeout at every delta cost a new timer and a cancelled
    one per token (issue 22)."""

    __slots__ = ("due", "loop", "timeout", "timer", "total_at")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, timeout: asyncio.Timeout, total_at: float
    ) -> None:
        self.loop, self.timeout, self.total_at = loop, timeout, total_at
        self.due = math.inf
        self.timer: asyncio.TimerHandle | None = None

    def expect(self, seconds: float) -> None:
        """The next event is due within `seconds` (and before the call's total deadline)."""
        self.due = min(self.loop.time() + seconds, self.total_at)
        if self.timer is not None and self.timer.when() > self.due:
            self.timer.cancel()
            self.timer = None
        if self.timer is None:
            self.timer = self.loop.call_at(self.due, self._check)

    def hold(self) -> None:
        self.due = math.inf

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _check(self) -> None:
        self.timer = None
        now = self.loop.time()
        if now >= self.due:
            self.timeout.reschedule(now)  # the call's task gets TimeoutError
        elif self.due != math.inf:
            self.timer = self.loop.call_at(self.due, self._check)


@dataclass(slots=True)
class ProviderHealth:
    """What the last calls showed; kept per process, no paid call is made to learn it."""

    configured: bool = True
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    development: bool = False

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0


def _http_timeout(deadlines: Deadlines) -> httpx.Timeout:
    """The providers' HTTP timeouts: a backstop, as the router's own deadlines end stalls sooner.

    httpx is imported here, for configured providers only: with it come click and rich (its
    command line), 0.2 s of every start of an app that has only the development echo model."""
    import httpx

    return httpx.Timeout(deadlines.total, connect=deadlines.connect)


def _http_limits(settings: Settings) -> httpx.Limits:
    """The providers' connection limits (LLM_MAX_CONNECTIONS): an open stream is a connection,
    so this is how many answers a provider serves at once. Idle ones are all kept (for 5 s,
    httpx's default): a burst of answers does not reconnect for each one."""
    import httpx

    limit = settings.llm_max_connections
    return httpx.Limits(max_connections=limit, max_keepalive_connections=limit)


@dataclass
class ModelRouter:
    catalogue: ModelCatalogue
    providers: dict[str, Provider]
    deadlines: Deadlines = field(default_factory=Deadlines)
    fallback: list[str] | None = None  # None: the other providers' default models
    health: dict[str, ProviderHealth] = field(default_factory=dict)
    # Per provider, its connections (LLM_MAX_CONNECTIONS): a stream waits here, in arrival
    # order and in /metrics, rather than silently inside the HTTP client's pool.
    gates: dict[str, Gate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.providers:
            self.health.setdefault(name, ProviderHealth(development=name == "dev"))

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRouter:
        deadlines = Deadlines(
            connect=settings.llm_connect_timeout,
            first_token=settings.llm_first_token_timeout,
            token_gap=settings.llm_token_gap_timeout,
            total=settings.llm_total_timeout,
        )
        providers: dict[str, Provider] = {}
        if settings.groq_api_key:
            from app.llm.providers.groq import GroqProvider

            providers["groq"] = GroqProvider(
                settings.groq_api_key,
                settings.groq_base_url,
                _http_timeout(deadlines),
                _http_limits(settings),
            )
        if settings.gemini_api_key:
            from app.llm.providers.gemini import GeminiProvider

            providers["gemini"] = GeminiProvider(
                settings.gemini_api_key,
                settings.gemini_base_url,
                _http_timeout(deadlines),
                _http_limits(settings),
            )
        if settings.openai_compat_base_url:
            from app.llm.providers.openai_compat import OpenAICompatProvider

            providers["local"] = OpenAICompatProvider(
                settings.openai_compat_base_url,
                settings.openai_compat_api_key,
                _http_timeout(deadlines),
                _http_limits(settings),
            )
        gates = {
            name: Gate(f"provider:{name}", settings.llm_max_connections)
            for name in providers
            if name != "dev"
        }
        if not providers:
            providers["dev"] = DevEchoProvider(settings.dev_echo_delay_ms / 1000)
        local_models = [m.strip() for m in settings.openai_compat_models.split(",") if m.strip()]
        if "local" in providers and not local_models:
            local_models = ["default"]
        catalogue = ModelCatalogue.build(
            set(providers) - {"dev"},
            local_models=local_models,
            models_file=settings.models_file,
            default_model=settings.default_model,
        )
        fallback = None
        if settings.llm_fallback.strip().lower() == "none":
            fallback = []
        elif settings.llm_fallback.strip().lower() != "auto":
            fallback = [
                catalogue.resolve(m).id for m in settings.llm_fallback.split(",") if m.strip()
            ]
        return cls(catalogue, providers, deadlines, fallback, gates=gates)

    def resolve(self, requested: str | None) -> ModelInfo:
        """Raises UnknownModel (with the available ids) for anything not on offer."""
        return self.catalogue.resolve(requested)

    def chain_for(self, model: ModelInfo) -> list[ModelInfo]:
        """The model, then the fallbacks to try if it fails before its first delta."""
        if self.fallback is not None:
            others = [self.catalogue.models[m] for m in self.fallback]
        else:
            others = [
                fallback
                for provider in self.providers
                if provider != model.provider
                and (fallback := self.catalogue.default_for(provider)) is not None
            ]
        return [model, *(m for m in others if m.id != model.id)]

    def stream(
        self,
        model: ModelInfo,
        messages: list[ChatMessage],
        sampling: Sampling | None = None,
        *,
        fallback: bool = True,
    ) -> Generation:
        """`fallback=False`: this model only (a title is not worth a second provider)."""
        chain = self.chain_for(model) if fallback else [model]
        # A fallback must take the files the question carries (the asked model was checked).
        sent = [a for m in messages for a in m.attachments]
        chain = [
            chain[0],
            *(m for m in chain[1:] if all(m.takes(a.media_type, len(a.data)) for a in sent)),
        ]
        return Generation(self, chain, messages, sampling or Sampling())

    def record(self, provider: str, failure: ProviderFailure | None) -> None:
        state = self.health.setdefault(provider, ProviderHealth())
        if failure is None:
            state.consecutive_failures = 0
            return
        state.consecutive_failures += 1
        record_provider_failure(provider=provider, kind=failure.kind)
        state.last_error = failure.kind
        state.last_error_at = time.time()

    @property
    def all_failing(self) -> bool:
        return bool(self.health) and all(h.failing for h in self.health.values())

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


class Generation:
    """One answer being streamed: iterate it for text deltas (str) and the model's reasoning
    (`Reasoning`); then read `result`.

    Iteration raises ProviderFailure when every model in the chain failed, or when the
    answering one failed after its first delta (`partial` then holds what was sent).
    Closing it early (`aclose`, or leaving the loop) cancels the upstream request.
    """

    def __init__(
        self,
        router: ModelRouter,
        chain: list[ModelInfo],
        messages: list[ChatMessage],
        sampling: Sampling,
    ) -> None:
        self.router = router
        self.chain = chain
        self.messages = messages
        self.sampling = sampling
        self.attempts: list[Attempt] = []
        self.result: GenerationResult | None = None
        self.answered_by: ModelInfo | None = None
        self._parts: list[str] = []
        self._thoughts: list[str] = []
        self.time_to_first_token_ms: float | None = None
        self._iterator: AsyncIterator[str | Reasoning] | None = None
        self._started = 0.0

    def __aiter__(self) -> AsyncIterator[str | Reasoning]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def aclose(self) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]

    @property
    def partial(self) -> str:
        """The text yielded so far."""
        return "".join(self._parts)

    @property
    def reasoning(self) -> str:
        """The reasoning yielded so far."""
        return "".join(self._thoughts)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000 if self._started else 0.0

    async def _run(self) -> AsyncIterator[str | Reasoning]:
        self._started = time.perf_counter()
        deadlines = self.router.deadlines
        loop = asyncio.get_running_loop()
        total_at = loop.time() + deadlines.total
        for index, model in enumerate(self.chain):
            provider = self.router.providers[model.provider]
            gate = self.router.gates.get(model.provider)
            events = provider.stream(model, self.messages, self.sampling)
            end: StreamEnd | None = None
            failure: ProviderFailure | None = None
            held = False
            try:
                async with asyncio.timeout(None) as timeout:
                    stall = _Stall(loop, timeout, total_at)
                    try:
                        if gate is not None:  # waiting for a connection is before the first token
                            stall.expect(deadlines.first_token)
                            await gate.acquire()
                            held = True
                        while True:
                            started = self.time_to_first_token_ms is not None
                            stall.expect(deadlines.token_gap if started else deadlines.first_token)
                            event = await anext(events)  # past the deadline: TimeoutError
                            if isinstance(event, StreamEnd):
                                end = event
                                break
                            if not started:  # reasoning counts: the reader sees it
                                self.answered_by = model
                                self.time_to_first_token_ms = self.elapsed_ms()
                            if isinstance(event, Reasoning):
                                self._thoughts.append(event.text)
                            else:
                                self._parts.append(event)
                            stall.hold()  # no deadline while the caller holds the delta
                            yield event
                    finally:
                        stall.close()
            except TimeoutError:
                failure = self._stalled(model)
            except StopAsyncIteration:
                failure = ProviderFailure("unavailable", f"{model.provider} ended without a result")
            except ProviderFailure as exc:
                failure = exc
            finally:
                await events.aclose()  # type: ignore[attr-defined]
                if held:
                    assert gate is not None
                    gate.release()
            self.router.record(model.provider, failure)
            if failure is None and end is not None:
                self.answered_by = model
                self.result = self._result(model, end)
                return
            assert failure is not None
            last = index == len(self.chain) - 1
            if self.time_to_first_token_ms is not None or failure.final or last:
                raise failure
            self.attempts.append(Attempt(model.id, model.provider, failure.kind, failure.message))

    def _stalled(self, model: ModelInfo) -> ProviderFailure:
        stage = (
            "between tokens"
            if self.time_to_first_token_ms is not None
            else "before the first token"
        )
        return ProviderFailure("timeout", f"{model.provider} stalled {stage}")

    def _result(self, model: ModelInfo, end: StreamEnd) -> GenerationResult:
        usage = end.usage or Usage(
            prompt_tokens=sum(estimate_message_tokens(m.content) for m in self.messages),
            completion_tokens=estimate_tokens(self.partial) + estimate_tokens(self.reasoning),
            estimated=True,
        )
        return GenerationResult(
            model=model.id,
            provider=model.provider,
            usage=usage,
            finish_reason=end.finish_reason,
            time_to_first_token_ms=self.time_to_first_token_ms,
            total_time_ms=self.elapsed_ms(),
            attempts=list(self.attempts),
        )
