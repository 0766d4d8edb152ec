"""The OpenAPI document and the docs page: true statuses and bodies, and no CDN."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from app.asgi import create_app
from app.settings import Settings
from tests.ops.conftest import served

METHODS = ("get", "post", "put", "patch", "delete")
ASSET = re.compile(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""")


@pytest.fixture
async def document(live_settings: Settings) -> dict[str, Any]:
    async with (
        served(create_app(live_settings)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        answer = await client.get("/schema/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_the_docs_page_loads_nothing_from_another_host(
    live_settings: Settings, page: str
) -> None:
    async with (
        served(create_app(live_settings)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        html = await client.get(page)
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        referenced = ASSET.findall(html.text)
        assert any(r.endswith("swagger-ui-bundle.js") for r in referenced)
        for reference in referenced:
            assert reference.startswith("/"), reference  # same origin, no CDN
            assert not reference.startswith("//"), reference
            asset = await client.get(reference)
            assert asset.status_code == 200, reference
    assert "http://" not in html.text and "https://" not in html.text


def test_every_operation_is_described(document: dict[str, Any]) -> None:
    undescribed = [f"{m} {p}" for m, p, op in operations(document) if not op.get("description")]
    assert undescribed == []


def test_private_operations_need_the_bearer_token_or_the_session_cookie(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearer"]["description"],
    }
    assert schemes["sessionCookie"]["in"] == "cookie"
    assert schemes["sessionCookie"]["name"] == "authjs.session-token"
    by_operation = {f"{m} {p}": op for m, p, op in operations(document)}
    signed_in = [{"bearer": []}, {"sessionCookie": []}]
    assert by_operation["GET /api/conversations"]["security"] == signed_in
    assert by_operation["DELETE /api/users/me"]["security"] == signed_in
    assert "401" in by_operation["GET /api/conversations"]["responses"]
    assert "security" not in by_operation["GET /api/health"]
    assert "security" not in by_operation["GET /api/auth/session"]


def test_every_error_answer_is_a_problem_document(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"status", "title", "detail"}
    assert "errors" in problem["properties"]
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and path != "/api/health":
                assert list(response["content"]) == ["application/problem+json"], (
                    method,
                    path,
                    status,
                )


def test_health_documents_its_own_body_when_unhealthy(document: dict[str, Any]) -> None:
    unhealthy = document["paths"]["/api/health"]["get"]["responses"]["503"]["content"]
    assert unhealthy["application/json"]["schema"]["$ref"].endswith("/Health")


def test_real_statuses_are_documented(document: dict[str, Any]) -> None:
    def statuses(method: str, path: str) -> set[str]:
        return set(document["paths"][path][method]["responses"])

    assert {"302", "404", "429"} <= statuses("get", "/api/auth/signin/google")
    assert "200" not in statuses("get", "/api/auth/signin/google")
    assert {"200", "400", "401", "403", "404", "503"} <= statuses(
        "get", "/api/conversations/{conversation_id}"
    )
    assert {"400", "413"} <= statuses("patch", "/api/users/me")
    assert {"409", "429"} <= statuses("post", "/api/conversations/{conversation_id}/regenerate")
    assert statuses("get", "/api/auth/error") == {"400", "403", "503"}


def test_bodies_and_limits_are_stated(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert paths["/api/conversations"]["post"]["requestBody"]["required"] is False
    assert paths["/api/users/me"]["patch"]["requestBody"]["required"] is True
    search = {p["name"]: p for p in paths["/api/conversations/search"]["get"]["parameters"]}
    q = search["q"]["schema"]["oneOf"][0]
    assert (q["minLength"], q["maxLength"]) == (1, 256)
    title = document["components"]["schemas"]["ConversationCreate"]["properties"]["title"]
    assert title["oneOf"][0]["maxLength"] == 200


def test_answers_built_by_hand_have_their_schemas(document: dict[str, Any]) -> None:
    paths = document["paths"]
    session = paths["/api/auth/session"]["get"]["responses"]["200"]["content"]
    assert session["application/json"]["schema"]["oneOf"][1] == {"type": "null"}
    export = paths["/api/conversations/{conversation_id}/export"]["get"]["responses"]["200"]
    assert set(export["content"]) == {"application/json", "text/markdown"}
    assert export["content"]["application/json"]["schema"]["$ref"].endswith("ConversationExport")
    regenerate = paths["/api/conversations/{conversation_id}/regenerate"]["post"]
    assert set(regenerate["responses"]["200"]["content"]) == {
        "application/json",
        "text/event-stream",
    }
    user_export = paths["/api/users/me/export"]["get"]["responses"]["200"]["content"]
    assert user_export["application/json"]["schema"]["$ref"].endswith("UserExport")
