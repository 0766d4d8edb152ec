"""The models this server can offer: built in, from settings, and which are available."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.lib.errors import ConfigurationError
from app.llm.types import ModelInfo

IMAGES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
IMAGES_AND_PDF = IMAGES | {"application/pdf"}

DEV_ECHO = ModelInfo(
    id="dev-echo",
    provider="dev",
    model="dev-echo",
    name="Development echo (not a language model)",
    context_window=8192,
    max_output_tokens=1024,
    development=True,
    accepts=IMAGES_AND_PDF,  # it names the files it was sent: tests and the page see them
)

BUILTIN = [
    # Prices (USD per million tokens, in/out) as the vendors list them in late 2025: they only
    # rank models for TITLE_MODEL's default, the cheapest configured one.
    ModelInfo("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile",
              "Llama 3.3 70B Versatile (Groq)", 131_072, 32_768,
              input_price=0.59, output_price=0.79),
    ModelInfo("groq/llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant",
              "Llama 3.1 8B Instant (Groq)", 131_072, 8_192,
              input_price=0.05, output_price=0.08),
    # Groq's vision model: images as OpenAI `image_url` parts (no PDF on Groq).
    ModelInfo("groq/meta-llama/llama-4-scout-17b-16e-instruct", "groq",
              "meta-llama/llama-4-scout-17b-16e-instruct", "Llama 4 Scout (Groq, vision)",
              131_072, 8_192, input_price=0.11, output_price=0.34, accepts=IMAGES,
              # Groq refuses base64 image requests over 4 MB: 3 MB of image is 4 MB encoded.
              max_file_bytes=3_000_000),
    ModelInfo("groq/openai/gpt-oss-120b", "groq", "openai/gpt-oss-120b",
              "GPT-OSS 120B (Groq)", 131_072, 65_536, reasoning=True,
              input_price=0.15, output_price=0.60),
    ModelInfo("gemini/gemini-2.5-flash", "gemini", "gemini-2.5-flash",
              "Gemini 2.5 Flash", 1_048_576, 65_536, reasoning=True,
              input_price=0.30, output_price=2.50, accepts=IMAGES_AND_PDF),
    ModelInfo("gemini/gemini-2.5-flash-lite", "gemini", "gemini-2.5-flash-lite",
              "Gemini 2.5 Flash-Lite", 1_048_576, 65_536,
              input_price=0.10, output_price=0.40, accepts=IMAGES_AND_PDF),
    ModelInfo("gemini/gemini-2.5-pro", "gemini", "gemini-2.5-pro",
              "Gemini 2.5 Pro", 1_048_576, 65_536, reasoning=True,
              input_price=1.25, output_price=10.0, accepts=IMAGES_AND_PDF),
    DEV_ECHO,
]  # fmt: skip

# Each provider's default model; also the aliases the Prisma schema's `defaultModel` uses.
PROVIDER_DEFAULTS = {"groq": "groq/llama-3.3-70b-versatile", "gemini": "gemini/gemini-2.5-flash"}
PREFERENCE_ORDER = ["groq", "gemini", "local", "dev"]
LOCAL_CONTEXT_WINDOW = 8192
LOCAL_MAX_OUTPUT = 2048


class UnknownModel(ValueError):
    """The requested model is not in the catalogue or its provider is not configured."""

    def __init__(self, requested: str, available: list[str]) -> None:
        super().__init__(f"unknown or unavailable model {requested!r}")
        self.requested = requested
        self.available = available


@dataclass
class ModelCatalogue:
    models: dict[str, ModelInfo]
    aliases: dict[str, str]
    configured_providers: set[str]
    server_default: str

    @classmethod
    def build(
        cls,
        configured: set[str],
        *,
        local_models: list[str] | None = None,
        models_file: Path | None = None,
        default_model: str | None = None,
    ) -> ModelCatalogue:
        """`configured`: providers with credentials; `dev` is added only when none is."""
        models = {model.id: model for model in BUILTIN}
        aliases = dict(PROVIDER_DEFAULTS)
        for name in local_models or []:
            model = ModelInfo(f"local/{name}", "local", name, f"{name} (local)",
                              LOCAL_CONTEXT_WINDOW, LOCAL_MAX_OUTPUT)  # fmt: skip
            models[model.id] = model
            aliases.setdefault("local", model.id)
        if models_file is not None:
            extra_models, extra_aliases = _read_models_file(models_file)
            models.update({model.id: model for model in extra_models})
            aliases.update(extra_aliases)
        aliases["dev"] = DEV_ECHO.id
        providers = set(configured) or {"dev"}
        catalogue = cls(models, aliases, providers, server_default="")
        catalogue.server_default = catalogue._choose_default(default_model)
        return catalogue

    def available(self) -> list[ModelInfo]:
        return [m for m in self.models.values() if m.provider in self.configured_providers]

    def resolve(self, requested: str | None) -> ModelInfo:
        """An id or alias (`groq`, `gemini`, ...) to an available model; None is the default."""
        key = requested.strip() if requested else self.server_default
        model = self.models.get(self.aliases.get(key, key))
        if model is None or model.provider not in self.configured_providers:
            raise UnknownModel(key, [m.id for m in self.available()])
        return model

    def is_known(self, requested: str) -> bool:
        """In the catalogue at all (configured or not): what preferences may store."""
        return self.aliases.get(requested, requested) in self.models

    def accepting(self, media_type: str, size: int = 0) -> list[ModelInfo]:
        """The available models that take a file of `media_type` and `size` bytes."""
        return [m for m in self.available() if m.takes(media_type, size)]

    def cheapest(self) -> ModelInfo:
        """The available model with the lowest price (input and output tokens weighed 1:1)."""
        return min(self.available(), key=lambda m: (m.input_price + m.output_price, m.development))

    def default_for(self, provider: str) -> ModelInfo | None:
        model_id = self.aliases.get(provider)
        model = self.models.get(model_id) if model_id else None
        if model is None:
            model = next((m for m in self.models.values() if m.provider == provider), None)
        return model if model and model.provider in self.configured_providers else None

    def _choose_default(self, wanted: str | None) -> str:
        if wanted:
            return self.resolve(wanted).id
        for provider in PREFERENCE_ORDER:
            if (model := self.default_for(provider)) is not None:
                return model.id
        raise ConfigurationError("no model is available")


def _read_models_file(path: Path) -> tuple[list[ModelInfo], dict[str, str]]:
    """[[models]] tables (id, provider, model, name, context_window, max_output_tokens, and
    optionally reasoning, input_price, output_price, accepts: media types of files) and an
    [aliases] table."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        models = [
            ModelInfo(
                id=str(entry["id"]),
                provider=str(entry["provider"]),
                model=str(entry.get("model") or str(entry["id"]).split("/", 1)[-1]),
                name=str(entry.get("name") or entry["id"]),
                context_window=int(entry["context_window"]),
                max_output_tokens=int(entry["max_output_tokens"]),
                reasoning=bool(entry.get("reasoning", False)),
                input_price=float(entry.get("input_price", 0.0)),
                output_price=float(entry.get("output_price", 0.0)),
                accepts=frozenset(str(t) for t in entry.get("accepts", [])),
            )
            for entry in data.get("models", [])
        ]
        aliases = {str(k): str(v) for k, v in data.get("aliases", {}).items()}
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"MODELS_FILE {path} is not usable: {exc}") from None
    unknown = {m.provider for m in models} - {"groq", "gemini", "local"}
    if unknown:
        raise ConfigurationError(f"MODELS_FILE {path} names unknown providers: {sorted(unknown)}")
    return models, aliases
