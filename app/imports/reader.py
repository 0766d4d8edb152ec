"""Reading an import file into conversations, one at a time, without holding the file.

Two sources: ChatGPT's data export (the `.zip`, or its `conversations.json`: a JSON array of
conversations, each a message tree in `mapping` with its `current_node`) and this API's own
export (`GET /api/users/me/export`: an object whose `conversations` come last). Both are read
as a stream of array elements: one conversation is decoded at a time, so a 100 MB export needs
memory for its largest conversation only.

Every way a file can be wrong is an `ImportRefused` with a sentence for the user: not JSON,
the wrong shape, a zip bomb, a member outside the archive, a tree too deep or with a cycle.
"""

from __future__ import annotations

import codecs
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

Source = Literal["chatgpt", "chatwithme"]

CHUNK = 1024 * 1024
# One conversation's JSON, decoded whole; a larger one is refused.
MAX_CONVERSATION_BYTES = 32 * 1024 * 1024
# Messages on one conversation's path (ChatGPT's trees are chains of parent links).
MAX_MESSAGES = 10_000
# conversations.json inside a zip: at most this many bytes once inflated, and at most this
# many times the compressed size (a zip bomb inflates far beyond either).
MAX_INFLATED_BYTES = 2 * 1024 * 1024 * 1024
MAX_RATIO = 200
MAX_MESSAGE_CHARS = 1_000_000


class ImportRefused(Exception):
    """The file cannot be imported; the text says why, for the person who sent it."""


@dataclass
class ImportedMessage:
    role: Literal["user", "assistant"]
    content: str
    created_at: datetime | None
    model: str | None = None
    # The message's id in the file and its parent's (the nearest kept ancestor): the tree.
    # None: the messages are a chain in list order.
    key: str | None = None
    parent_key: str | None = None


@dataclass
class ImportedConversation:
    external_id: str
    title: str | None
    created_at: datetime | None
    updated_at: datetime | None
    messages: list[ImportedMessage]
    # What was left out, by kind: "images", "tool calls", "other branches", ...
    skipped: dict[str, int] = field(default_factory=dict)
    # The key of the last message of the branch shown (None: the last message).
    current_key: str | None = None


def open_source(path: Path) -> tuple[Source, IO[bytes]]:
    """The kind of file at `path` and its JSON as a binary stream (the caller closes it)."""
    with path.open("rb") as probe:
        head = probe.read(4)
    if head.startswith(b"PK\x03\x04"):
        return "chatgpt", _conversations_json_in_zip(path)
    stream = path.open("rb")
    first = _first_significant_byte(stream)
    if first == b"[":
        return "chatgpt", stream
    if first == b"{":
        return "chatwithme", stream
    stream.close()
    raise ImportRefused(
        "The file is neither a ChatGPT export (.zip or conversations.json) nor a ChatWithMe "
        "export (JSON)."
    )


def _first_significant_byte(stream: IO[bytes]) -> bytes:
    while True:
        byte = stream.read(1)
        if byte not in (b" ", b"\t", b"\r", b"\n", b"\xef", b"\xbb", b"\xbf"):
            stream.seek(stream.tell() - len(byte))
            return byte


def _conversations_json_in_zip(path: Path) -> IO[bytes]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportRefused(f"The zip file cannot be read ({exc}).") from None
    found = None
    for member in archive.infolist():
        name = PurePosixPath(member.filename)
        if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
            archive.close()
            raise ImportRefused(
                f"The zip file holds a path outside the archive: {member.filename!r}."
            )
        if name.name == "conversations.json" and len(name.parts) <= 2:
            found = member
    if found is None:
        archive.close()
        raise ImportRefused("The zip file has no conversations.json (is it a ChatGPT export?).")
    if found.file_size > MAX_INFLATED_BYTES or (
        found.compress_size and found.file_size / found.compress_size > MAX_RATIO
    ):
        archive.close()
        raise ImportRefused("conversations.json inflates too far: refused as a zip bomb.")
    bounded = _Bounded(archive, archive.open(found), min(MAX_INFLATED_BYTES, found.file_size))
    return io.BufferedReader(bounded, CHUNK)


class _Bounded(io.RawIOBase):
    """A zip member that may not yield more than it declared (a lying header is a bomb too)."""

    def __init__(self, archive: zipfile.ZipFile, member: IO[bytes], limit: int) -> None:
        self._archive, self._member, self._left = archive, member, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._member.read(len(buffer))
        self._left -= len(data)
        if self._left < 0:
            raise ImportRefused("conversations.json inflates beyond its declared size.")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._member.close()
        self._archive.close()
        super().close()


def conversations(source: Source, stream: IO[bytes]) -> Iterator[ImportedConversation]:
    """The file's conversations in order; ImportRefused at the first thing wrong."""
    text = _Text(stream)
    if source == "chatwithme":
        _skip_to_key(text, "conversations")
        convert = from_chatwithme
    else:
        convert = from_chatgpt
    for index, raw in enumerate(_array_elements(text)):
        if not isinstance(raw, dict):
            raise ImportRefused(f"Conversation {index + 1} is not a JSON object.")
        try:
            yield convert(raw)
        except ImportRefused as exc:
            raise ImportRefused(f"Conversation {index + 1}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ImportRefused(
                f"Conversation {index + 1} does not have the expected shape ({type(exc).__name__})."
            ) from None


_DECODER = json.JSONDecoder()
_BLANK = " \t\r\n"


class _Text:
    """The stream decoded as UTF-8, read in chunks into a buffer."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")()
        self.buffer = ""
        self.position = 0
        self.ended = False

    def more(self) -> bool:
        if self.ended:
            return False
        data = self._stream.read(CHUNK)
        if not data:
            self.ended = True
            tail = self._utf8.decode(b"", final=True)
            self.buffer += tail
            return bool(tail)
        try:
            self.buffer += self._utf8.decode(data)
        except UnicodeDecodeError:
            raise ImportRefused("The file is not UTF-8 text.") from None
        return True

    def compact(self) -> None:
        if self.position > CHUNK:
            self.buffer = self.buffer[self.position :]
            self.position = 0

    def skip_blank(self) -> str | None:
        """The next character that is not white space (None at the end)."""
        while True:
            while self.position < len(self.buffer) and self.buffer[self.position] in _BLANK:
                self.position += 1
            if self.position < len(self.buffer):
                return self.buffer[self.position]
            if not self.more():
                return None


def _skip_to_key(text: _Text, key: str) -> None:
    """Move `text` just after `"key":` of the top-level object (its value is next)."""
    if text.skip_blank() != "{":
        raise ImportRefused("The export is not a JSON object.")
    text.position += 1
    while True:
        char = text.skip_blank()
        if char == "}" or char is None:
            raise ImportRefused(f"The export has no {key!r}.")
        if char == ",":
            text.position += 1
            continue
        name = _decode_one(text, "a key")
        if text.skip_blank() != ":":
            raise ImportRefused("The export is not valid JSON.")
        text.position += 1
        if name == key:
            return
        _decode_one(text, "a value")  # the head (profile, sessions, ...): small


def _decode_one(text: _Text, what: str) -> Any:
    """The JSON value at the text's position, reading more until it is whole."""
    text.skip_blank()
    while True:
        try:
            value, end = _DECODER.raw_decode(text.buffer, text.position)
        except json.JSONDecodeError:
            if len(text.buffer) - text.position > MAX_CONVERSATION_BYTES:
                raise ImportRefused(f"{what.capitalize()} is larger than 32 MB.") from None
            if not text.more():
                raise ImportRefused(
                    "The file is not valid JSON (it ends too early or is malformed)."
                ) from None
            continue
        except RecursionError:
            raise ImportRefused("The file's JSON is nested too deeply.") from None
        text.position = end
        text.compact()
        return value


def _array_elements(text: _Text) -> Iterator[Any]:
    if text.skip_blank() != "[":
        raise ImportRefused("The conversations are not a JSON array.")
    text.position += 1
    first = True
    while True:
        char = text.skip_blank()
        if char is None:
            raise ImportRefused("The file is not valid JSON (it ends too early).")
        if char == "]":
            return
        if not first:
            if char != ",":
                raise ImportRefused("The file is not valid JSON (a comma is missing).")
            text.position += 1
            text.skip_blank()
        first = False
        yield _decode_one(text, "a conversation")


# -- ChatGPT ---------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value < 32503680000:  # before the year 3000
        return None
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _clean(text: str) -> str:
    return text.replace("\x00", "")[:MAX_MESSAGE_CHARS]


def from_chatgpt(raw: dict[str, Any]) -> ImportedConversation:
    """One ChatGPT conversation with its branches: every message reachable from the root of
    the path to `current_node`, parents before children, each linked to its nearest kept
    ancestor; the branch shown is the one ending at `current_node`. Text parts only. What is
    left out is counted: images and files, tool calls and their results, system messages, and
    messages the root does not reach (other branches)."""
    mapping = raw["mapping"]
    if not isinstance(mapping, dict):
        raise ImportRefused("its mapping is not an object")
    external_id = str(raw.get("conversation_id") or raw.get("id") or "")
    if not external_id:
        raise ImportRefused("it has no id")
    node_id = raw.get("current_node")
    if node_id is None:  # an old export: the newest leaf
        leaves = [k for k, n in mapping.items() if isinstance(n, dict) and not n.get("children")]
        node_id = leaves[-1] if leaves else None
    path: list[str] = []
    seen: set[str] = set()
    while node_id is not None:
        if node_id in seen:
            raise ImportRefused("its message tree has a cycle")
        if len(seen) >= MAX_MESSAGES:
            raise ImportRefused(f"it is deeper than {MAX_MESSAGES:,} messages")
        seen.add(node_id)
        node = mapping.get(node_id)
        if not isinstance(node, dict):
            raise ImportRefused(f"its current node {node_id!r} is not in the mapping")
        path.append(node_id)
        node_id = node.get("parent")
    path.reverse()
    skipped: dict[str, int] = {}
    messages: list[ImportedMessage] = []
    kept_as: dict[str, str | None] = {}  # node -> the key its children hang from
    reached = _tree(mapping, path[0]) if path else []
    for key, parent in reached:
        node = mapping[key]
        above = kept_as.get(parent) if parent is not None else None
        kept_as[key] = above
        message = node.get("message")
        if not isinstance(message, dict):
            continue  # the root
        before = len(messages)
        kind = _chatgpt_message(message, messages)
        if kind is not None:
            skipped[kind] = skipped.get(kind, 0) + 1
        if len(messages) > before:
            messages[-1].key, messages[-1].parent_key = key, above
            kept_as[key] = key
        if len(messages) > MAX_MESSAGES:
            raise ImportRefused(f"it has more than {MAX_MESSAGES:,} messages")
    reached_keys = set(kept_as)
    others = sum(
        1
        for key, node in mapping.items()
        if key not in reached_keys
        and isinstance(node, dict)
        and isinstance(node.get("message"), dict)
        and (node["message"].get("author") or {}).get("role") in ("user", "assistant")
    )
    if others:
        skipped["other branches"] = others
    title = raw.get("title")
    return ImportedConversation(
        external_id=external_id[:200],
        title=_clean(title)[:200] if isinstance(title, str) and title.strip() else None,
        created_at=_time(raw.get("create_time")),
        updated_at=_time(raw.get("update_time")),
        messages=messages,
        skipped=skipped,
        current_key=kept_as.get(path[-1]) if path else None,
    )


def _tree(mapping: dict[str, Any], root: str) -> list[tuple[str, str | None]]:
    """(node, parent) for every node `root` reaches through `children`, parents first;
    each node once (a node listed under two parents, or a cycle, is not followed again)."""
    order: list[tuple[str, str | None]] = []
    visited = {root}
    stack: list[tuple[str, str | None]] = [(root, None)]
    while stack:
        key, parent = stack.pop()
        order.append((key, parent))
        if len(order) > 4 * MAX_MESSAGES:
            raise ImportRefused(f"its message tree has more than {4 * MAX_MESSAGES:,} nodes")
        children = mapping[key].get("children") or []
        for child in reversed(children if isinstance(children, list) else []):
            if (
                isinstance(child, str)
                and child not in visited
                and isinstance(mapping.get(child), dict)
            ):
                visited.add(child)
                stack.append((child, key))
    return order


def _chatgpt_message(message: dict[str, Any], into: list[ImportedMessage]) -> str | None:
    """Append the message's text; what kind of thing it is when skipped (None when kept)."""
    role = (message.get("author") or {}).get("role")
    content = message.get("content") or {}
    content_type = content.get("content_type")
    metadata = message.get("metadata") or {}
    if role in ("tool", "function") or content_type in ("code", "execution_output"):
        return "tool calls"
    if role not in ("user", "assistant"):
        return None if role == "system" and not _parts_text(content) else "system messages"
    if metadata.get("is_visually_hidden_from_conversation"):
        return None
    if content_type == "multimodal_text":
        parts = content.get("parts") or []
        if any(isinstance(p, dict) for p in parts):
            text = _parts_text(content)
            if text:
                _keep(message, role, text, metadata, into)
            return "images and files"
    elif content_type not in ("text", None):
        return "other content"
    text = _parts_text(content)
    if not text:
        return None
    _keep(message, role, text, metadata, into)
    return None


def _parts_text(content: dict[str, Any]) -> str:
    parts = content.get("parts") or []
    return "\n".join(p for p in parts if isinstance(p, str) and p).strip()


def _keep(
    message: dict[str, Any],
    role: str,
    text: str,
    metadata: dict[str, Any],
    into: list[ImportedMessage],
) -> None:
    slug = metadata.get("model_slug")
    into.append(
        ImportedMessage(
            role="user" if role == "user" else "assistant",
            content=_clean(text),
            created_at=_time(message.get("create_time")),
            model=f"chatgpt/{slug}"[:100]
            if role == "assistant" and isinstance(slug, str)
            else None,
        )
    )


# -- ChatWithMe's own export -----------------------------------------------------------------


def from_chatwithme(raw: dict[str, Any]) -> ImportedConversation:
    """One conversation of `GET /api/users/me/export`: its user and assistant messages, with
    their branches when the export has them (`parentId`, `currentLeafId`)."""
    messages: list[ImportedMessage] = []
    kept: set[str] = set()
    for item in raw["messages"]:
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
            continue
        content = item.get("content")
        if not isinstance(content, str) or not content:
            continue
        model = item.get("model")
        messages.append(
            ImportedMessage(
                role=item["role"],
                content=_clean(content),
                created_at=_iso(item.get("createdAt")),
                model=model[:100] if isinstance(model, str) else None,
                key=_text_or_none(item.get("id")),
                parent_key=_text_or_none(item.get("parentId")),
            )
        )
        if messages[-1].parent_key not in kept:
            messages[-1].parent_key = None  # left out, or later in the file: a root
        if messages[-1].key is not None:
            kept.add(messages[-1].key)
        if len(messages) > MAX_MESSAGES:
            raise ImportRefused(f"it has more than {MAX_MESSAGES:,} messages")
    tree = "parentId" in next((m for m in raw["messages"] if isinstance(m, dict)), {})
    if not tree:  # an export from before the message tree: a chain in list order
        for message in messages:
            message.key = message.parent_key = None
    leaf = _text_or_none(raw.get("currentLeafId"))
    title = raw.get("title")
    return ImportedConversation(
        external_id=str(raw["id"])[:200],
        title=_clean(title)[:200] if isinstance(title, str) and title.strip() else None,
        created_at=_iso(raw.get("createdAt")),
        updated_at=_iso(raw.get("updatedAt")),
        messages=messages,
        current_key=leaf if tree and leaf in kept else None,
    )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
