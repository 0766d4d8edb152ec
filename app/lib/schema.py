"""Base for request and response bodies: msgspec structs with camelCase keys."""

from __future__ import annotations

import msgspec


class CamelStruct(msgspec.Struct, rename="camel", kw_only=True):
    """A JSON body whose keys are the camelCase (Prisma) field names."""
