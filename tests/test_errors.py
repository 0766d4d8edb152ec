"""Every error is an RFC 9457 problem response; nothing a client sends gives a 500."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from app.lib.errors import Conflict, NotFound
from app.lib.problems import EXCEPTION_HANDLERS
from app.lib.schema import CamelStruct


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json() == {
        "status": 404,
        "title": "Not Found",
        "detail": "No resource exists at this path.",
    }


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/health")
    assert response.status_code == 405
    assert response.json()["title"] == "Method Not Allowed"


async def test_responses_forbid_content_sniffing(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert "/api/health" in response.json()["paths"]
    ui = await client.get("/schema")
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]


class Greeting(CamelStruct):
    display_name: str
    times: int


@post("/greet")
async def greet(data: JSONBody[Greeting]) -> dict[str, Any]:
    return {"text": f"hello {data.display_name}" * data.times}


@get("/things/{thing_id:str}")
async def find_thing(thing_id: FromPath[str], limit: FromQuery[int] = 10) -> dict[str, Any]:
    if thing_id == "taken":
        raise Conflict("that thing is taken")
    raise NotFound(f"no thing {thing_id}")


def _probe_app() -> Litestar:
    """A small app with the production error map, to reach each kind of error."""
    return Litestar([greet, find_thing], exception_handlers=EXCEPTION_HANDLERS)


async def _call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=_probe_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        return await c.request(method, path, **kwargs)


async def test_validation_error_names_the_field() -> None:
    response = await _call("POST", "/greet", json={"displayName": "Ada", "times": "many"})
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Invalid Input"
    assert "times" in body["detail"]
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_malformed_json_is_a_400_problem() -> None:
    response = await _call(
        "POST", "/greet", content=b'{"displayName": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["status"] == 400


async def test_missing_body_is_a_400_problem() -> None:
    response = await _call("POST", "/greet")
    assert response.status_code == 400


async def test_bad_query_parameter_is_a_400_naming_it() -> None:
    response = await _call("GET", "/things/x", params={"limit": "ten"})
    assert response.status_code == 400
    assert "limit" in response.json()["detail"]


async def test_domain_errors_map_to_their_status() -> None:
    missing = await _call("GET", "/things/x")
    assert missing.status_code == 404
    assert missing.json() == {"status": 404, "title": "Not Found", "detail": "no thing x"}
    taken = await _call("GET", "/things/taken")
    assert taken.status_code == 409
    assert taken.json()["detail"] == "that thing is taken"
