"""Files in chat (issue 24, item 1), through real HTTP to the fake Groq and Gemini servers:
each vendor receives the files in its own wire format, a model that cannot take a file is a
400 naming those that can, and bad references store nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.asgi import create_app
from app.settings import Settings
from tests.fakes.llm import FakeLLM, inline_data
from tests.files.conftest import PDF, Person, count, person, png, upload
from tests.llm.conftest import provider_settings
from tests.ops.conftest import served

GEMINI = "gemini/gemini-2.5-flash"
GROQ_VISION = "groq/meta-llama/llama-4-scout-17b-16e-instruct"
GROQ_TEXT = "groq/llama-3.3-70b-versatile"


@pytest.fixture
async def vendors(
    files_settings: Settings, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> AsyncIterator[httpx.AsyncClient]:
    settings = provider_settings(
        files_settings,
        groq_api_key="gsk_test_key",
        groq_base_url=groq_fake.url,
        gemini_api_key="gemini-test-key",
        gemini_base_url=gemini_fake.url,
        llm_fallback="none",
    )
    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        yield client


async def ask(
    web: httpx.AsyncClient, who: Person, model: str, files: list[str], message: str = "What?"
) -> httpx.Response:
    return await web.post(
        "/api/chat",
        json={"message": message, "model": model, "files": files},
        headers=who.auth,
    )


def gemini_parts(fake: FakeLLM) -> list[list[dict[str, Any]]]:
    return [c["parts"] for c in fake.received[-1].body["contents"]]


async def test_an_image_and_a_pdf_reach_gemini_as_inline_data(
    vendors: httpx.AsyncClient, engine: AsyncEngine, gemini_fake: FakeLLM
) -> None:
    amy = await person(engine, "amy-chat-files@example.com")
    picture, document = png(), PDF
    image_id = (await upload(vendors, amy, picture)).json()["id"]
    pdf_id = (await upload(vendors, amy, document, "doc.pdf")).json()["id"]
    answered = await ask(vendors, amy, GEMINI, [image_id, pdf_id], "Describe both")
    assert answered.status_code == 200, answered.text
    assert answered.json()["aiMessage"]["status"] == "complete"
    sent = answered.json()["userMessage"]
    assert [f["id"] for f in sent["files"]] == [image_id, pdf_id]
    assert [f["mediaType"] for f in sent["files"]] == ["image/png", "application/pdf"]

    (parts,) = gemini_parts(gemini_fake)
    assert parts[0] == {"text": "Describe both"}
    assert [set(p) for p in parts[1:]] == [{"inlineData"}, {"inlineData"}]
    assert [inline_data(p) for p in parts[1:]] == [
        ("image/png", picture),
        ("application/pdf", document),
    ]
    # The conversation shows the files on the message.
    conversation = (
        await vendors.get(f"/api/conversations/{sent['conversationId']}", headers=amy.auth)
    ).json()
    assert [f["id"] for f in conversation["messages"][0]["files"]] == [image_id, pdf_id]


async def test_an_image_reaches_groq_as_an_image_url_part(
    vendors: httpx.AsyncClient, engine: AsyncEngine, groq_fake: FakeLLM
) -> None:
    ben = await person(engine, "ben-chat-files@example.com")
    picture = png(seed=3)
    image_id = (await upload(vendors, ben, picture)).json()["id"]
    answered = await ask(vendors, ben, GROQ_VISION, [image_id], "What is it?")
    assert answered.status_code == 200, answered.text
    assert answered.json()["aiMessage"]["status"] == "complete"
    body = groq_fake.received[-1].body
    assert body["model"] == "meta-llama/llama-4-scout-17b-16e-instruct"
    assert body["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is it?"},
            {"type": "image_url",
             "image_url": {"url": "data:image/png;base64," + base64.b64encode(picture).decode()}},
        ],
    }  # fmt: skip


async def test_earlier_files_in_the_window_go_to_the_model_again(
    vendors: httpx.AsyncClient, engine: AsyncEngine, gemini_fake: FakeLLM
) -> None:
    cat = await person(engine, "cat-chat-files@example.com")
    image_id = (await upload(vendors, cat, png(seed=9))).json()["id"]
    first = (await ask(vendors, cat, GEMINI, [image_id], "Look")).json()
    again = await vendors.post(
        "/api/chat",
        json={"message": "And now?", "model": GEMINI, "conversationId": first["conversationId"]},
        headers=cat.auth,
    )
    assert again.status_code == 200, again.text
    assert again.json()["aiMessage"]["status"] == "complete"
    parts = gemini_parts(gemini_fake)
    assert [p.get("text") for p in parts[0]] == ["Look", None]
    assert inline_data(parts[0][1]) == ("image/png", png(seed=9))
    assert parts[-1] == [{"text": "And now?"}]


async def test_a_model_that_cannot_take_the_file_is_400_naming_those_that_can(
    vendors: httpx.AsyncClient, engine: AsyncEngine, groq_fake: FakeLLM
) -> None:
    dan = await person(engine, "dan-chat-files@example.com")
    pdf_id = (await upload(vendors, dan, PDF)).json()["id"]
    refused = await ask(vendors, dan, GROQ_VISION, [pdf_id])
    assert refused.status_code == 400, refused.text
    detail = refused.json()["detail"]
    assert "does not take application/pdf" in detail and GEMINI in detail
    assert GROQ_VISION not in detail.split("models that do:")[1]
    image_id = (await upload(vendors, dan, png())).json()["id"]
    text_only = await ask(vendors, dan, GROQ_TEXT, [image_id])
    assert text_only.status_code == 400
    assert GROQ_VISION in text_only.json()["detail"]
    assert groq_fake.received == []
    assert await count(engine, "messages", dan.user_id) == 0
    assert await count(engine, "conversations", dan.user_id) == 0


async def test_another_users_file_in_a_message_is_404_and_nothing_is_stored(
    vendors: httpx.AsyncClient, engine: AsyncEngine, gemini_fake: FakeLLM
) -> None:
    eve = await person(engine, "eve-chat-files@example.com")
    mallory = await person(engine, "mallory-chat-files@example.com")
    theirs = (await upload(vendors, eve, png())).json()["id"]
    refused = await ask(vendors, mallory, GEMINI, [theirs])
    assert refused.status_code == 404, refused.text
    assert await count(engine, "messages", mallory.user_id) == 0
    assert await count(engine, "conversations", mallory.user_id) == 0
    assert await count(engine, "message_files", mallory.user_id) == 0
    assert gemini_fake.received == []
    nonsense = await ask(vendors, mallory, GEMINI, ["no-such-file"])
    assert nonsense.status_code == 404


async def test_more_than_five_files_is_400_and_nothing_is_stored(
    vendors: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    fay = await person(engine, "fay-chat-files@example.com")
    ids = [(await upload(vendors, fay, png(seed=n))).json()["id"] for n in range(6)]
    refused = await ask(vendors, fay, GEMINI, ids)
    assert refused.status_code == 400
    assert "at most 5 files" in refused.json()["detail"]
    assert await count(engine, "messages", fay.user_id) == 0
    assert (await ask(vendors, fay, GEMINI, ids[:5])).status_code == 200


async def test_ai_sdk_file_parts_by_url_and_data_url_reach_the_vendor(
    vendors: httpx.AsyncClient, engine: AsyncEngine, gemini_fake: FakeLLM
) -> None:
    gus = await person(engine, "gus-chat-files@example.com")
    uploaded = (await upload(vendors, gus, png(seed=1))).json()
    inline = png(seed=2)
    body = {
        "id": "chatWithFiles0001",
        "model": GEMINI,
        "message": {
            "id": "msgWithFiles00001",
            "role": "user",
            "parts": [
                {"type": "file", "mediaType": "image/png", "url": uploaded["url"],
                 "filename": "one.png"},
                {"type": "file", "mediaType": "image/png", "filename": "two.png",
                 "url": "data:image/png;base64," + base64.b64encode(inline).decode()},
                {"type": "text", "text": "Compare"},
            ],
        },
    }  # fmt: skip
    async with vendors.stream("POST", "/api/chat", json=body, headers=gus.auth) as answer:
        assert answer.status_code == 200
        events = [line async for line in answer.aiter_lines() if line.startswith("data: {")]
    assert json.loads(events[-1][6:])["type"] == "finish"
    (parts,) = gemini_parts(gemini_fake)
    assert parts[0] == {"text": "Compare"}
    assert [inline_data(p) for p in parts[1:]] == [
        ("image/png", png(seed=1)),
        ("image/png", inline),
    ]
    # The data: URL was stored as an upload is: the user now holds two files.
    assert await count(engine, "files", gus.user_id) == 2


async def test_a_bad_file_part_url_is_400_and_the_server_fetches_nothing(
    vendors: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    hux = await person(engine, "hux-chat-files@example.com")
    for url in (
        "https://evil.example/x.png",
        "http://[/api/files/x",
        "data:image/png,notbase64",
        "data:;base64,@@@",
    ):
        body = {"id": "chatBadUrl0000001", "model": GEMINI, "message": {
            "id": "msgBadUrl00000001", "role": "user",
            "parts": [{"type": "file", "mediaType": "image/png", "url": url},
                      {"type": "text", "text": "x"}]}}  # fmt: skip
        refused = await vendors.post("/api/chat", json=body, headers=hux.auth)
        assert refused.status_code == 400, (url, refused.text)
    html = "data:image/png;base64," + base64.b64encode(b"<html>hi</html>").decode()
    body["message"]["parts"][0]["url"] = html  # type: ignore[index]
    refused = await vendors.post("/api/chat", json=body, headers=hux.auth)
    assert refused.status_code == 415
    assert await count(engine, "files", hux.user_id) == 0
    assert await count(engine, "messages", hux.user_id) == 0


async def test_models_say_which_files_they_take(vendors: httpx.AsyncClient) -> None:
    models = {m["id"]: m for m in (await vendors.get("/api/models")).json()["models"]}
    assert models[GEMINI]["accepts"] == [
        "application/pdf",
        "image/gif",
        "image/jpeg",
        "image/png",
        "image/webp",
    ]
    assert models[GROQ_VISION]["accepts"] == ["image/gif", "image/jpeg", "image/png", "image/webp"]
    assert models[GROQ_TEXT]["accepts"] == []
    assert models[GROQ_VISION]["maxFileBytes"] == 3_000_000
    assert models[GEMINI]["maxFileBytes"] is None


async def test_an_image_too_large_for_groq_is_400_naming_gemini(
    vendors: httpx.AsyncClient, engine: AsyncEngine, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    """Groq refuses base64 image requests over 4 MB: a 3.1 MB image never reaches it."""
    ida = await person(engine, "ida-chat-files@example.com")
    large = (await upload(vendors, ida, png(seed=4) + bytes(3_100_000))).json()["id"]
    refused = await ask(vendors, ida, GROQ_VISION, [large])
    assert refused.status_code == 400, refused.text
    detail = refused.json()["detail"]
    assert "files over 3,000,000 bytes" in detail and GEMINI in detail
    assert groq_fake.received == []
    assert (await ask(vendors, ida, GEMINI, [large])).json()["aiMessage"]["status"] == "complete"


async def test_a_message_of_files_only_is_sent_without_a_text_part(
    vendors: httpx.AsyncClient, engine: AsyncEngine, groq_fake: FakeLLM, gemini_fake: FakeLLM
) -> None:
    jo = await person(engine, "jo-chat-files@example.com")
    image_id = (await upload(vendors, jo, png(seed=12))).json()["id"]
    for model in (GEMINI, GROQ_VISION):
        answered = await ask(vendors, jo, model, [image_id], message="")
        assert answered.json()["aiMessage"]["status"] == "complete", answered.text
    (parts,) = gemini_parts(gemini_fake)
    assert [set(p) for p in parts] == [{"inlineData"}]
    (content,) = groq_fake.received[-1].body["messages"][-1]["content"]
    assert content["type"] == "image_url"
    assert (await ask(vendors, jo, GEMINI, [], message="")).status_code == 400
