"""The two wire formats of a streamed answer.

- `event_stream`: this API's own server-sent events, `start`, `reasoning`... and `delta`...
  (and `title` when the conversation got one meanwhile), then `done` or `error`.
- `ui_message_stream`: the UI message stream (v1) of Vercel's AI SDK (`useChat` with
  `DefaultChatTransport`): `data: {chunk}` frames, `start` ... `finish`/`error`/`abort`, then
  `data: [DONE]`. Only documented chunk types are sent: the SDK rejects unknown ones. Reasoning
  is a `reasoning-start`/`-delta`/`-end` part; a new title the `data-chat-title` part of
  Vercel's ai-chatbot (transient: it reaches `onData`, not the message's parts).

Both always end with a final event: a reader never sees a stream that just closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar.response import Stream

from app.chat import schemas
from app.chat.flow import Exchange, error_text
from app.chat.live import Text, Thought, Titled
from app.lib.errors import InvalidInput

# no-transform: a proxy (Next.js rewrites compress by default) must pass frames on as they come.
UI_STREAM_HEADERS = {
    "Cache-Control": "no-store, no-transform",
    "X-Accel-Buffering": "no",
    "x-vercel-ai-ui-message-stream": "v1",
}
EVENT_STREAM_HEADERS = {"Cache-Control": "no-store, no-transform", "X-Accel-Buffering": "no"}
# Provider finish reasons as the AI SDK names them (values all of ai 5, 6 and 7 accept).
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content-filter",
    "safety": "content-filter",
    "tool_calls": "tool-calls",
}

_encode = msgspec.json.Encoder().encode


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(payload) + b"\n\n"


def _chunk(payload: dict[str, Any]) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"


def event_stream(exchange: Exchange) -> Stream:
    """This API's own events (see the README)."""

    async def events() -> AsyncIterator[bytes]:
        yield _event(
            "start",
            {
                "conversationId": exchange.conversation_id,
                "userMessage": exchange.user_message,
                "assistantMessageId": exchange.answer_id,
            },
        )
        async for piece in exchange.pieces():
            if isinstance(piece, Text):
                yield _event("delta", {"text": piece.text})
            elif isinstance(piece, Thought):
                yield _event("reasoning", {"text": piece.text})
            elif isinstance(piece, Titled):
                yield _event("title", {"title": piece.title})
            elif piece.failure is None:
                yield _event("done", {"assistantMessage": piece.message})
            else:
                yield _event(
                    "error",
                    {
                        "code": piece.failure,
                        "message": error_text(piece.failure),
                        "assistantMessage": piece.message,
                    },
                )

    return Stream(events(), media_type="text/event-stream", headers=EVENT_STREAM_HEADERS)


def finish_metadata(message: schemas.Message) -> dict[str, Any]:
    """What the AI SDK client keeps as the message's metadata when the answer ends."""
    return {
        "conversationId": message.conversation_id,
        "model": message.model,
        "provider": message.provider,
        "status": message.status,
        "usage": message.usage,
        "timeToFirstTokenMs": message.time_to_first_token_ms,
        "totalTimeMs": message.total_time_ms,
        "createdAt": message.created_at,
    }


def ui_message_stream(exchange: Exchange) -> Stream:
    """The AI SDK's UI message stream, v1; a resumed reader gets it again from `start`."""
    part = f"text-{exchange.answer_id}"
    thinking_part = f"reasoning-{exchange.answer_id}"

    async def chunks() -> AsyncIterator[bytes]:
        metadata = {
            "conversationId": exchange.conversation_id,
            "model": exchange.model,
            "provider": exchange.provider,
        }
        yield _chunk(
            {"type": "start", "messageId": exchange.answer_id, "messageMetadata": metadata}
        )
        opened = thinking = False
        async for piece in exchange.pieces():
            if isinstance(piece, Text):
                if thinking:
                    yield _chunk({"type": "reasoning-end", "id": thinking_part})
                    thinking = False
                if not opened:
                    yield _chunk({"type": "text-start", "id": part})
                    opened = True
                yield _chunk({"type": "text-delta", "id": part, "delta": piece.text})
                continue
            if isinstance(piece, Thought):
                if opened:  # reasoning after text: a new part, after the text's
                    yield _chunk({"type": "text-end", "id": part})
                    opened = False
                if not thinking:
                    yield _chunk({"type": "reasoning-start", "id": thinking_part})
                    thinking = True
                yield _chunk({"type": "reasoning-delta", "id": thinking_part, "delta": piece.text})
                continue
            if isinstance(piece, Titled):
                yield _chunk({"type": "data-chat-title", "data": piece.title, "transient": True})
                continue
            if thinking:
                yield _chunk({"type": "reasoning-end", "id": thinking_part})
            if opened:
                yield _chunk({"type": "text-end", "id": part})
            final = finish_metadata(piece.message)
            if piece.failure is None:
                reason = FINISH_REASONS.get((piece.message.finish_reason or "stop").lower(), "stop")
                yield _chunk({"type": "finish", "finishReason": reason, "messageMetadata": final})
            elif piece.message.status == "cancelled":
                yield _chunk({"type": "message-metadata", "messageMetadata": final})
                yield _chunk({"type": "abort", "reason": "cancelled"})
            else:
                yield _chunk({"type": "message-metadata", "messageMetadata": final})
                yield _chunk({"type": "error", "errorText": error_text(piece.failure)})
        yield b"data: [DONE]\n\n"

    return Stream(chunks(), media_type="text/event-stream", headers=UI_STREAM_HEADERS)


def ui_question(
    request: schemas.ChatRequest,
) -> tuple[str, str | None, list[schemas.UIMessagePart]]:
    """The text, client id and `file` parts of the last user message of an AI SDK request."""
    if isinstance(request.message, schemas.UIMessage):
        last: schemas.UIMessage | None = request.message
    else:
        last = next((m for m in reversed(request.messages or []) if m.role == "user"), None)
    if last is None or last.role != "user":
        raise InvalidInput("message: the last message must be the user's")
    text = "".join(p.text or "" for p in last.parts if p.type == "text")
    return text, last.id, [p for p in last.parts if p.type == "file"]
