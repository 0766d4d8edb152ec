"""What a file is, from its first bytes: never from its name or the type a client claims.

Only the types a model can take are recognised (images for vision models, PDF for Gemini);
anything else is refused at upload, so a stored file is always one of these.
"""

from __future__ import annotations

# Enough bytes to tell every accepted type apart (WebP needs 12: RIFF, a size, WEBP).
SNIFF_BYTES = 12

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
ACCEPTED_TYPES = IMAGE_TYPES | {"application/pdf"}
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "application/pdf": "pdf",
}


def media_type_of(head: bytes) -> str | None:
    """The media type the bytes start as, or None when they are not an accepted type."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def is_image(media_type: str) -> bool:
    return media_type in IMAGE_TYPES
