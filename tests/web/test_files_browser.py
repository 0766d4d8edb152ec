"""Attachments in Chromium (issue 24, item 1): files attached by the button, dropped on the
message box and pasted into it are uploaded, shown as thumbnails, sent with the message, and
shown on it (also after a reload); the dev model names the files it was sent. Same server and
browser set-up as test_browser.py."""

from __future__ import annotations

import base64

from playwright.async_api import expect

from tests.files.conftest import PDF, png
from tests.web.test_browser import (  # noqa: F401 (fixtures, registered by import)
    Watched,
    answered,
    browser,
    last_answer,
    live_url,
    page,
    pytestmark,
    shot,
    sign_in,
)

# A DataTransfer holding one file, made in the page (as a drop or a paste delivers it).
TRANSFER = """([name, type, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  return transfer;
}"""


async def test_files_are_attached_by_button_drop_and_paste_and_shown_on_the_message(
    page: Watched,  # noqa: F811
) -> None:
    p = page.page
    await sign_in(p, "File Sender")
    await p.locator("#file-input").set_input_files(
        [{"name": "button.png", "mimeType": "image/png", "buffer": png(seed=21)}]
    )
    pending = p.locator("#attachments .file-chip")
    await expect(pending).to_have_count(1)

    dropped = await p.evaluate_handle(
        TRANSFER, ["dropped.pdf", "application/pdf", base64.b64encode(PDF).decode()]
    )
    await p.locator("#composer").dispatch_event("drop", {"dataTransfer": dropped})
    await expect(pending).to_have_count(2)

    await p.evaluate(
        """([transfer]) => document.getElementById("composer-input").dispatchEvent(
             new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true,
                                           cancelable: true }))""",
        [await p.evaluate_handle(
            TRANSFER, ["pasted.png", "image/png", base64.b64encode(png(seed=22)).decode()]
        )],
    )  # fmt: skip
    await expect(pending).to_have_count(3)
    thumbnails = p.locator("#attachments img.file-thumb")
    await expect(thumbnails).to_have_count(2)
    await shot(p, "files-pending")
    # A thumbnail is the stored file, read back by its owner.
    assert await thumbnails.first.evaluate("img => img.complete && img.naturalWidth") == 2

    await p.locator("#composer-input").fill("What are these?")
    await p.locator("#composer-input").press("Enter")
    await answered(p)
    await expect(p.locator("#attachments")).to_be_hidden()
    question = p.locator("#message-list article.user").last
    await expect(question.locator(".file-chip")).to_have_count(3)
    await expect(question.locator(".file-name")).to_have_text(
        ["button.png", "dropped.pdf", "pasted.png"]
    )
    await expect(last_answer(p)).to_contain_text("with 3 file(s)")
    await shot(p, "files-sent")

    await p.reload()
    question = p.locator("#message-list article.user").last
    await expect(question.locator("img.file-thumb")).to_have_count(2)
    await expect(question.locator(".file-icon")).to_have_text("PDF")


async def test_a_file_of_another_type_is_refused_with_a_reason(
    page: Watched,  # noqa: F811
) -> None:
    p = page.page
    await sign_in(p, "Wrong File")
    await p.locator("#file-input").set_input_files(
        [{"name": "page.png", "mimeType": "image/png", "buffer": b"<html>not an image</html>"}]
    )
    await expect(p.locator("#chat-error")).to_contain_text("not an accepted type")
    await expect(p.locator("#attachments .file-chip")).to_have_count(0)
