"""POST /api/files and GET /api/files/{id} (issue 24, item 1), through real HTTP: types read
from the bytes, limits, per-user deduplication, owner-only reads with safe headers."""

from __future__ import annotations

import asyncio
import os

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.files.conftest import MIB, PDF, count, person, png, upload


async def test_an_image_is_stored_and_read_back_by_its_owner(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    alice = await person(engine, "alice-files@example.com")
    picture = png()
    stored = await upload(web, alice, picture, "holiday.png")
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert body["mediaType"] == "image/png"
    assert (body["size"], body["name"]) == (len(picture), "holiday.png")
    assert body["url"] == f"/api/files/{body['id']}"

    read = await web.get(body["url"], headers=alice.auth)
    assert read.status_code == 200
    assert read.content == picture
    assert read.headers["content-type"] == "image/png"
    assert read.headers["x-content-type-options"] == "nosniff"
    assert read.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert read.headers["content-disposition"].startswith("inline;")


async def test_a_pdf_is_a_download_never_shown_inline(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bob = await person(engine, "bob-files@example.com")
    stored = (await upload(web, bob, PDF, "notes.pdf", "application/pdf")).json()
    read = await web.get(stored["url"], headers=bob.auth)
    assert read.headers["content-type"] == "application/pdf"
    assert read.headers["content-disposition"].startswith('attachment; filename="notes.pdf"')
    assert read.headers["x-content-type-options"] == "nosniff"


async def test_a_large_file_is_stored_in_chunks_and_read_back_whole(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    carol = await person(engine, "carol-files@example.com")
    data = png() + os.urandom(int(2.5 * MIB))
    stored = (await upload(web, carol, data)).json()
    assert await count(engine, "file_chunks", carol.user_id) == 3
    read = await web.get(stored["url"], headers=carol.auth)
    assert read.content == data


async def test_another_users_file_is_not_found(web: httpx.AsyncClient, engine: AsyncEngine) -> None:
    owner = await person(engine, "owner-files@example.com")
    other = await person(engine, "other-files@example.com")
    stored = (await upload(web, owner, png())).json()
    read = await web.get(stored["url"], headers=other.auth)
    assert read.status_code == 404
    assert read.json()["title"] == "Not Found"
    assert (await web.get(stored["url"])).status_code == 401


async def test_the_same_bytes_twice_are_stored_once_per_user(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    dave = await person(engine, "dave-files@example.com")
    erin = await person(engine, "erin-files@example.com")
    picture = png(seed=7)
    first = (await upload(web, dave, picture, "a.png")).json()
    again = (await upload(web, dave, picture, "b.png")).json()
    assert again["id"] == first["id"] and again["name"] == "a.png"
    assert await count(engine, "files", dave.user_id) == 1
    assert await count(engine, "file_chunks", dave.user_id) == 1
    # Another user's copy is their own: deduplication never crosses users.
    theirs = (await upload(web, erin, picture, "a.png")).json()
    assert theirs["id"] != first["id"]
    assert await count(engine, "files", erin.user_id) == 1


async def test_the_type_comes_from_the_bytes_not_the_name_or_claimed_type(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    frank = await person(engine, "frank-files@example.com")
    html = b"<html><script>alert(1)</script></html>"
    refused = await upload(web, frank, html, "cat.png", "image/png")
    assert refused.status_code == 415, refused.text
    assert "PNG, JPEG, WebP or GIF" in refused.json()["detail"]
    exe = b"MZ\x90\x00" + bytes(100)
    assert (await upload(web, frank, exe, "doc.pdf", "application/pdf")).status_code == 415
    # A real PDF named like an image is a PDF.
    named_wrong = (await upload(web, frank, PDF, "photo.jpg", "image/jpeg")).json()
    assert named_wrong["mediaType"] == "application/pdf"
    assert await count(engine, "files", frank.user_id) == 1


async def test_each_accepted_type_is_recognised(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    gina = await person(engine, "gina-files@example.com")
    samples = {
        "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(64),
        "image/gif": b"GIF89a" + os.urandom(64),
        "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 " + os.urandom(64),
        "application/pdf": PDF,
        "image/png": png(),
    }
    for media_type, data in samples.items():
        stored = await upload(web, gina, data, "x", "application/octet-stream")
        assert stored.json()["mediaType"] == media_type


async def test_a_file_over_file_max_bytes_is_413_and_nothing_is_stored(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    hal = await person(engine, "hal-files@example.com")
    refused = await upload(web, hal, png() + bytes(3 * MIB))
    assert refused.status_code == 413, refused.text
    assert "FILE_MAX_BYTES" in refused.json()["detail"]
    assert await count(engine, "files", hal.user_id) == 0
    assert await count(engine, "file_chunks", hal.user_id) == 0


async def test_files_past_the_quota_are_429_and_nothing_is_stored(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ivy = await person(engine, "ivy-files@example.com")
    for seed in (1, 2):
        stored = await upload(web, ivy, png(seed=seed) + os.urandom(2 * MIB))
        assert stored.status_code == 201
    refused = await upload(web, ivy, png(seed=3) + os.urandom(2 * MIB))
    assert refused.status_code == 429, refused.text
    assert "FILE_QUOTA_BYTES" in refused.json()["detail"]
    assert "retry-after" not in refused.headers  # waiting frees nothing
    assert await count(engine, "files", ivy.user_id) == 2
    # A file sent before costs nothing more.
    assert (await upload(web, ivy, png(seed=1) + b"")).status_code == 201


async def test_uploads_at_once_cannot_pass_the_quota_together(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Review finding: each upload measured the room left before it began, so several at once
    each fitted and together passed the quota. One user's uploads now take turns at the
    check (an advisory lock to their commit): of four 2 MiB files in 5 MiB, two are stored."""
    kit = await person(engine, "kit-files@example.com")
    payloads = [png(seed=20 + n) + os.urandom(2 * MIB) for n in range(4)]
    answers = await asyncio.gather(*(upload(web, kit, p) for p in payloads))
    assert sorted(a.status_code for a in answers) == [201, 201, 429, 429]
    assert await count(engine, "files", kit.user_id) == 2
    # The same bytes again at the quota: the earlier file, no 429 (it costs nothing more).
    stored = next(n for n, a in enumerate(answers) if a.status_code == 201)
    again = await upload(web, kit, payloads[stored])
    assert again.status_code == 201, again.text
    assert again.json()["id"] == answers[stored].json()["id"]


async def test_odd_and_hostile_file_names_are_cleaned(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    jon = await person(engine, "jon-files@example.com")
    cases = {
        "../../etc/passwd.png": "passwd.png",
        'quote".png': "quote_.png",
        "\u00e9t\u00e9 \u2603.png": "\u00e9t\u00e9 \u2603.png",
        "...": "file.png",
        "x" * 400 + ".png": "x" * 255,
    }
    for seed, (sent, kept) in enumerate(cases.items()):
        stored = await upload(web, jon, png(seed=seed), sent)
        assert stored.status_code == 201, (sent, stored.text)
        assert stored.json()["name"] == kept
    read = await web.get(stored.json()["url"], headers=jon.auth)
    assert read.headers["content-disposition"].startswith("inline; filename=")


async def test_a_nul_byte_in_the_file_name_is_never_stored(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """httpx would percent-encode it: the body is written by hand, the NUL raw in the header."""
    ned = await person(engine, "ned-files@example.com")
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a\x00b.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png() + b"\r\n--XyZ--\r\n"
    )
    answer = await web.post(
        "/api/files",
        content=body,
        headers={**ned.auth, "content-type": "multipart/form-data; boundary=XyZ"},
    )
    assert answer.status_code in (201, 400), answer.text
    if answer.status_code == 201:
        assert "\x00" not in answer.json()["name"]
    async with engine.connect() as connection:
        names = (await connection.scalars(
            text('SELECT name FROM files WHERE "userId" = :u'), {"u": ned.user_id}
        )).all()  # fmt: skip
    assert all("\x00" not in n for n in names)


async def test_a_body_that_is_not_multipart_is_415(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    kim = await person(engine, "kim-files@example.com")
    raw = await web.post(
        "/api/files", content=png(), headers={**kim.auth, "content-type": "image/png"}
    )
    assert raw.status_code == 415
    no_file = await web.post("/api/files", data={"other": "x"}, files={"f": ("a", b"")},
                             headers=kim.auth)  # fmt: skip
    assert no_file.status_code == 400
    assert no_file.json()["detail"].startswith("file: required")
    empty = await upload(web, kim, b"")
    assert empty.status_code == 400


async def test_a_multipart_body_cut_short_stores_nothing(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    lea = await person(engine, "lea-files@example.com")
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png() + os.urandom(2 * MIB)
    )  # no closing boundary
    refused = await web.post(
        "/api/files",
        content=body,
        headers={**lea.auth, "content-type": "multipart/form-data; boundary=XyZ"},
    )
    assert refused.status_code == 400, refused.text
    assert "cut short" in refused.json()["detail"]
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM file_chunks")) is not None
    assert await count(engine, "files", lea.user_id) == 0
    assert await count(engine, "file_chunks", lea.user_id) == 0


async def test_your_files_are_listed_and_a_deleted_one_frees_its_quota(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    mo = await person(engine, "mo-files@example.com")
    other = await person(engine, "mo-other-files@example.com")
    first = (await upload(web, mo, png(seed=1), "first.png")).json()
    second = (await upload(web, mo, PDF, "second.pdf")).json()
    listed = (await web.get("/api/files", headers=mo.auth)).json()
    assert [f["id"] for f in listed["files"]] == [second["id"], first["id"]]
    assert (listed["count"], listed["bytes"]) == (2, first["size"] + second["size"])
    assert listed["quotaBytes"] == 5 * MIB
    assert (await web.get("/api/files", headers=other.auth)).json()["files"] == []

    assert (await web.delete(first["url"], headers=other.auth)).status_code == 404
    assert (await web.delete(first["url"], headers=mo.auth)).status_code == 204
    assert (await web.get(first["url"], headers=mo.auth)).status_code == 404
    assert await count(engine, "file_chunks", mo.user_id) == 1
    listed = (await web.get("/api/files", headers=mo.auth)).json()
    assert (listed["count"], listed["bytes"]) == (1, second["size"])


async def test_files_past_a_page_are_reached_by_its_cursor(
    web: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ana = await person(engine, "ana-pages-files@example.com")
    ids = [(await upload(web, ana, png(seed=n), f"{n}.png")).json()["id"] for n in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await web.get("/api/files", params=params, headers=ana.auth)).json()
        assert page["count"] == 5
        seen += [f["id"] for f in page["files"]]
        cursor = page["nextCursor"]
    assert seen == ids[::-1]  # newest first, each once
    assert cursor is None  # the third page was the last
    for bad in ("not a cursor", "\x00", "a" * 600):
        refused = await web.get("/api/files", params={"cursor": bad}, headers=ana.auth)
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"].startswith("cursor: ")  # names the parameter
