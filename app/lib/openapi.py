"""OpenAPI that tells the truth, so clients and a fuzzer can rely on it; docs that work offline.

Two parts:
- per operation, what only its handler knows, declared on the decorator with `responses=`:
  `problems(404, 409)`, `redirect("...")`, `success(Schema)` for handlers that build their
  own `Response`;
- what holds for every operation, added to the document once (`complete_document`): the
  sign-in requirement and the errors that the guard, the body reader and the database give
  (400, 401, 403, 413, 503) as `application/problem+json`, optional bodies, stated limits.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, Router, get
from litestar.enums import MediaType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from app.auth.cookies import CookieNames
from app.settings import Settings

PROBLEM_JSON = "application/problem+json"
EVENT_STREAM = "text/event-stream"
SSE_EVENT = {
    "type": "object",
    "description": "One server-sent event; `data` is JSON text (or `[DONE]` at the end of an "
    "AI SDK UI message stream).",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}
SIGNED_IN: list[dict[str, list[str]]] = [{"bearer": []}, {"sessionCookie": []}]
ASSETS = "/schema/assets"
PUBLIC_SESSIONLESS = {"public": True, "sessionless": True, "exclude_from_metrics": True}


class FieldError(msgspec.Struct):
    """One rejected input: `field` (a JSON path or parameter name), where, and why."""

    field: str | None
    source: str | None
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem; 400s list each rejected input in `errors`."""

    status: int
    title: str
    detail: str
    errors: list[FieldError] | msgspec.UnsetType = msgspec.UNSET
    error: str | msgspec.UnsetType = msgspec.UNSET  # sign-in failures: the Auth.js error code


WHEN = {
    400: "Invalid input: a parameter or the body was refused (see `errors`)",
    401: "Not signed in, or the session expired",
    403: "Refused: the session cookie from another site, a missing CSRF token, or not allowed",
    404: "Not found (or not yours)",
    409: "Conflict with the current state",
    413: "The request body is larger than 1 MiB",
    429: "Too many requests: retry after `Retry-After` seconds",
    502: "The model provider failed",
    503: "The database is unavailable or saturated: retry after `Retry-After` seconds",
}


def problems(*statuses: int, **descriptions: str) -> dict[int, ResponseSpec]:
    """`responses=` entries for statuses a handler gives on purpose; `s404="..."` words one."""
    return {
        status: ResponseSpec(
            Problem,
            description=descriptions.get(f"s{status}", WHEN.get(status, "Error")),
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }


def success(
    data: Any, description: str, *, status: int = 200, media_type: str = MediaType.JSON
) -> dict[int, ResponseSpec]:
    """The success body of a handler that returns a hand-made `Response`."""
    return {
        status: ResponseSpec(
            data, description=description, media_type=media_type, generate_examples=False
        )
    }


def redirect(description: str) -> dict[int, ResponseSpec]:
    """A 302 answer (no body; `Location` says where)."""
    return {302: ResponseSpec(None, description=description)}


def also_as(*media_types: str, status: int = 200) -> dict[str, Any]:
    """`opt=` entry: the `status` answer may also come as these text media types (a stream,
    Markdown); `responses=` can name only one per status."""
    return {"openapi_also_as": {status: media_types}}


# Limits enforced by services after decoding, stated in the document for clients.
Limits = dict[str, dict[str, Any]]


def _limits(settings: Settings) -> dict[str, Limits]:
    from app.auth.services import MAX_EMAIL_LENGTH
    from app.chat.schemas import REACTION_TYPES
    from app.chat.services import MAX_CONVERSATIONS_PAGE, MAX_MESSAGES_PAGE
    from app.search.services import MAX_PAGE, MAX_QUERY
    from app.users.services import MAX_IMAGE_URL, MAX_NAME

    title = {"maxLength": settings.chat_max_title_chars}
    message = {"minLength": 1, "maxLength": settings.chat_max_message_chars}
    name, email = {"maxLength": MAX_NAME}, {"format": "email", "maxLength": MAX_EMAIL_LENGTH}
    reaction = {"reaction": {"enum": list(REACTION_TYPES)}}
    messages_page = {"limit": {"minimum": 1, "maximum": MAX_MESSAGES_PAGE}}
    return {
        # Schemas of request bodies: property -> JSON Schema keywords.
        "schema:ChatRequest": {"message": message},
        "schema:ConversationCreate": {"title": title},
        "schema:ConversationUpdate": {"title": title},
        "schema:UserUpdate": {"name": name, "image": {"maxLength": MAX_IMAGE_URL}},
        "schema:DevLogin": {"email": email, "name": name},
        "schema:EmailSignIn": {"email": email},
        # Query parameters, by operation; page sizes beyond the maximum are clamped.
        "GET /api/conversations": {"limit": {"minimum": 1, "maximum": MAX_CONVERSATIONS_PAGE}},
        "GET /api/conversations/{conversation_id}": messages_page,
        "GET /api/conversations/{conversation_id}/messages": messages_page,
        "GET /api/conversations/search": {
            "q": {"minLength": 1, "maxLength": MAX_QUERY},
            "limit": {"minimum": 1, "maximum": MAX_PAGE},
            "model": {"minLength": 1, "maxLength": 200},
        },
        "GET /api/users/me/stats": {"days": {"minimum": 1, "maximum": 366}},
        "PUT /api/messages/{message_id}/reactions/{reaction}": reaction,
        "DELETE /api/messages/{message_id}/reactions/{reaction}": reaction,
    }


def _optional_body(handler: HTTPRouteHandler) -> bool:
    data = handler.parsed_fn_signature.parameters.get("data")
    return data is not None and (data.has_default or data.is_optional)


def _add_problem(operation: dict[str, Any], status: int) -> None:
    responses = operation.setdefault("responses", {})
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    found = responses.get(str(status))
    if found is None or _is_litestar_validation_error(found):
        responses[str(status)] = {"description": WHEN[status], "content": problem_content}
    else:
        found.setdefault("content", {}).setdefault(PROBLEM_JSON, problem_content[PROBLEM_JSON])


def _is_litestar_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return "status_code" in schema.get("properties", {})


def _constrain(schema: dict[str, Any], keywords: dict[str, Any]) -> None:
    """Put limits on a string or integer schema (each non-null branch of a `oneOf`)."""
    for variant in schema.get("oneOf") or [schema]:
        if variant.get("type") != "null" and "$ref" not in variant:
            variant.update(keywords)


def complete_document(app: Litestar, document: dict[str, Any]) -> dict[str, Any]:
    """Add what holds for every operation to Litestar's document (in place, once)."""
    settings: Settings = app.state.settings
    limits = _limits(settings)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _, problem_schemas = msgspec.json.schema_components(
        [Problem], ref_template="#/components/schemas/{name}"
    )
    schemas.update(problem_schemas)
    for name, schema in schemas.items():
        for prop, keywords in limits.get(f"schema:{name}", {}).items():
            if prop in schema.get("properties", {}):
                _constrain(schema["properties"][prop], keywords)

    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = document.get("paths", {}).get(route.path_format, {}).get(method.lower())
                if operation is not None:
                    limits_here = limits.get(f"{method} {route.path_format}", {})
                    _complete_operation(operation, handler, route.path_format, limits_here)
    return document


def _complete_operation(
    operation: dict[str, Any], handler: HTTPRouteHandler, path: str, limits: Limits
) -> None:
    public = handler.opt.get("public", False)
    sessionless = handler.opt.get("sessionless", False)
    if not public:
        operation["security"] = SIGNED_IN
    body = operation.get("requestBody")
    if body is not None and _optional_body(handler):
        body["required"] = False
    for parameter in operation.get("parameters", []):
        if parameter["name"] in limits:
            _constrain(parameter["schema"], limits[parameter["name"]])
    has_input = bool(operation.get("parameters")) or body is not None
    statuses = [
        *([400] if has_input else []),
        *([404] if "{" in path else []),
        *([401] if not public else []),
        *([403] if not sessionless else []),
        *([413] if body is not None else []),
        *([503] if not sessionless else []),
    ]
    for status in statuses:
        _add_problem(operation, status)
    for status, media_types in handler.opt.get("openapi_also_as", {}).items():
        content = operation["responses"][str(status)].setdefault("content", {})
        for media_type in media_types:
            content.setdefault(media_type, {"schema": {"type": "string"}})
    # A stream is read event by event: describe one event, whatever the handler declared.
    for response in operation.get("responses", {}).values():
        if EVENT_STREAM in response.get("content", {}):
            response["content"][EVENT_STREAM] = {"schema": SSE_EVENT}
    # A 204 has no body, whatever the handler's return annotation suggests.
    operation.get("responses", {}).get("204", {}).pop("content", None)
    # Every error answer is a problem document, whatever Litestar guessed.
    for status, response in operation.get("responses", {}).items():
        if status.startswith(("4", "5")) and _is_litestar_validation_error(response):
            _add_problem(operation, int(status))


class DocumentJson(JsonRenderPlugin):
    """`/schema/openapi.json`: Litestar's document completed by `complete_document`."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        state = request.app.state
        if state.get("openapi_completed") is not openapi_schema:
            complete_document(request.app, openapi_schema)
            state["openapi_completed"] = openapi_schema
        return self.render_json(request, openapi_schema)


# Swagger UI's start, as a file: the docs' Content-Security-Policy allows no inline script.
START_SWAGGER = """const script = document.currentScript;
window.ui = SwaggerUIBundle({
  url: script.dataset.document,
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
"""


@get(
    "/assets/start.js",
    opt=PUBLIC_SESSIONLESS,
    include_in_schema=False,
    media_type="text/javascript",
    sync_to_thread=False,
)
def start_swagger() -> str:
    return START_SWAGGER


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI from the `swagger-ui-bundle-v2` package: no CDN, works without internet."""

    def __init__(self, path: str | list[str] = "/swagger") -> None:
        super().__init__(
            js_url=f"{ASSETS}/swagger-ui-bundle.js",
            css_url=f"{ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
            path=path,
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        # The document is loaded from its URL (completed there), not inlined; no validator badge.
        title = openapi_schema["info"]["title"]
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  {self.favicon}
  <link rel="stylesheet" href="{self.css_url}">
  {self.style}
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{self.js_url}"></script>
  <script src="{self.standalone_preset_js_url}"></script>
  <script src="{ASSETS}/start.js" data-document="{self.get_openapi_json_route(request)}"></script>
</body>
</html>""".encode()

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(start_swagger)
        router.register(
            create_static_files_router(
                path="/assets",
                directories=[swagger_ui_path],
                opt=PUBLIC_SESSIONLESS,
                include_in_schema=False,
                name="swagger-assets",
            )
        )


def openapi_config(settings: Settings, version: str) -> OpenAPIConfig:
    """The document at `/schema/openapi.json` and Swagger UI at `/schema` (offline)."""
    cookie = CookieNames.for_settings(settings).session
    return OpenAPIConfig(
        title="ChatWithMe API",
        version=version,
        description=(
            "Chat with language models, keep and search conversations. Sign in with Google, an "
            "email link or (development) dev-login; send the session token as "
            "`Authorization: Bearer <token>` or in the session cookie. Errors are RFC 9457 "
            "problem documents (`application/problem+json`); every response carries `X-Request-ID`."
        ),
        path="/schema",
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="The session token (from dev-login, or the NextAuth session).",
                ),
                "sessionCookie": SecurityScheme(
                    type="apiKey",
                    name=cookie,
                    security_scheme_in="cookie",
                    description="The session cookie; unsafe methods also need `x-csrf-token`.",
                ),
            }
        ),
        tags=[Tag(name=name) for name in ("auth", "chat", "conversations", "messages", "users")],
        render_plugins=[OfflineSwagger(path=["/", "/swagger"]), DocumentJson()],
        openapi_router=Router(
            "/schema", route_handlers=[], include_in_schema=False, opt=PUBLIC_SESSIONLESS
        ),
    )
