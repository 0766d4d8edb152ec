"""The history window: which earlier messages go into the prompt.

The newest messages are taken, as many as fit both a count limit and a token budget (the
model's context window minus its maximum output, a margin, the system prompt and the new
message), then put back in chronological order. The new message is always included.
Tokens are estimated (app.llm.types.estimate_message_tokens: about four characters a token
plus four per message), which is cheap and errs on the generous side for English text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.llm.types import ChatMessage, ModelInfo, estimate_message_tokens


@dataclass(frozen=True, slots=True)
class PastMessage:
    id: str
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Window:
    messages: list[ChatMessage]
    included_ids: list[str]  # the earlier messages used, oldest first
    prompt_tokens_estimate: int


def history_window(
    history: Sequence[PastMessage],
    new_message: str,
    *,
    system_prompt: str,
    model: ModelInfo,
    max_messages: int,
    margin: int,
    max_output: int | None = None,
) -> Window:
    """`history` is chronological and excludes `new_message`; `max_output` is the answer's
    limit when the conversation sets one (else the model's)."""
    fixed = estimate_message_tokens(new_message) + (
        estimate_message_tokens(system_prompt) if system_prompt else 0
    )
    output = model.max_output_tokens if max_output is None else max_output
    budget = model.context_window - output - margin - fixed
    chosen: list[PastMessage] = []
    used = 0
    for past in reversed(history):
        if len(chosen) >= max_messages:
            break
        cost = estimate_message_tokens(past.content)
        if used + cost > budget:
            break
        chosen.append(past)
        used += cost
    chosen.reverse()
    messages = [ChatMessage("system", system_prompt)] if system_prompt else []
    messages += [
        ChatMessage("assistant" if m.role == "assistant" else "user", m.content) for m in chosen
    ]
    messages.append(ChatMessage("user", new_message))
    return Window(messages, [m.id for m in chosen], fixed + used)
