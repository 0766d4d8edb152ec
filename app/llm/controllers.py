"""`GET /api/models`: what a client may ask for. (The only HTTP-aware module of `llm/`.)"""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.di import NamedDependency

from app.lib.schema import CamelStruct
from app.llm.router import ModelRouter


class Model(CamelStruct):
    id: str
    name: str
    provider: str
    context_window: int
    max_output_tokens: int
    development: bool
    reasoning: bool = False  # streams its reasoning apart from the answer
    # Media types of the files it takes in a message (`files`, AI SDK `file` parts).
    accepts: list[str] = msgspec.field(default_factory=list)
    # The largest file it takes, when smaller than FILE_MAX_BYTES (Groq: 4 MB base64).
    max_file_bytes: int | None = None


class ModelList(CamelStruct):
    models: list[Model]
    default: str
    aliases: dict[str, str]


@get("/api/models", opt={"public": True}, tags=["models"], cache=False)
async def list_models(router: NamedDependency[ModelRouter]) -> ModelList:
    """Available models (their provider is configured), the server default, and aliases."""
    catalogue = router.catalogue
    available = catalogue.available()
    ids = {m.id for m in available}
    return ModelList(
        models=[
            Model(
                id=m.id,
                name=m.name,
                provider=m.provider,
                context_window=m.context_window,
                max_output_tokens=m.max_output_tokens,
                development=m.development,
                reasoning=m.reasoning,
                accepts=sorted(m.accepts),
                max_file_bytes=m.max_file_bytes,
            )
            for m in available
        ],
        default=catalogue.server_default,
        aliases={alias: target for alias, target in catalogue.aliases.items() if target in ids},
    )
