// Attachments: files picked with the button, dropped on the message box or pasted into it are
// uploaded at once (POST /api/files, streamed to the database), shown as thumbnails under the
// box until the message is sent, then sent as the AI SDK's `file` parts; the files a message
// carries are shown with it.

import { ApiError, csrf } from "./api.js";
import { $, h } from "./dom.js";

const ACCEPT = "image/png,image/jpeg,image/webp,image/gif,application/pdf";
export const MAX_FILES = 5; // the server's FILES_PER_MESSAGE default; it says so if lower

let pending = []; // {id, url, name, mediaType, size}
let onError = () => undefined;

async function uploadOne(file) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted");
  const send = async () =>
    fetch("/api/files", { method: "POST", body: form, credentials: "same-origin", headers: { "x-csrf-token": await csrf() } });
  const response = await send();
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      /* not JSON */
    }
    throw new ApiError(response.status, problem);
  }
  return response.json();
}

async function attach(files) {
  for (const file of files) {
    if (pending.length >= MAX_FILES) {
      onError(`At most ${MAX_FILES} files a message.`);
      break;
    }
    try {
      const stored = await uploadOne(file);
      if (!pending.some((p) => p.id === stored.id)) pending.push(stored);
      onError(null);
    } catch (err) {
      onError(`${file.name || "The file"}: ${err.message}`);
    }
    renderPending();
  }
}

function isImage(mediaType) {
  return mediaType.startsWith("image/");
}

/** A file as shown: a thumbnail for an image, a named link for a PDF. */
export function fileChip(file, extra) {
  const preview = isImage(file.mediaType)
    ? h("img", { src: file.url, alt: file.name, loading: "lazy", class: "file-thumb" })
    : h("span", { class: "file-icon", "aria-hidden": "true" }, "PDF");
  return h("span", { class: "file-chip", dataset: { fileId: file.id } },
    h("a", { href: file.url, target: "_blank", rel: "noopener", title: file.name }, preview),
    h("span", { class: "file-name" }, file.name),
    extra || null,
  );
}

function renderPending() {
  const box = $("attachments");
  box.replaceChildren(
    ...pending.map((file) =>
      fileChip(file, h("button", { type: "button", class: "file-remove", "aria-label": `Remove ${file.name}`, onclick: () => remove(file.id) }, "×")),
    ),
  );
  box.hidden = pending.length === 0;
}

function remove(id) {
  pending = pending.filter((p) => p.id !== id);
  renderPending();
}

export function hasAttachments() {
  return pending.length > 0;
}

/** The files to send, as the AI SDK's `file` parts, and the list cleared. */
export function takeAttachments() {
  const taken = pending;
  pending = [];
  renderPending();
  return taken;
}

/** Files given back after a send that failed. */
export function restoreAttachments(files) {
  pending = files;
  renderPending();
}

export function fileParts(files) {
  return files.map((f) => ({ type: "file", mediaType: f.mediaType, url: f.url, filename: f.name }));
}

/** The files a message carries, for the message view (null when none). */
export function messageFiles(message) {
  if (!message.files || message.files.length === 0) return null;
  return h("div", { class: "message-files" }, ...message.files.map((f) => fileChip(f)));
}

export function wireFiles(showError) {
  onError = showError;
  const input = $("file-input");
  input.accept = ACCEPT;
  $("attach-button").addEventListener("click", () => input.click());
  input.addEventListener("change", async () => {
    const files = [...input.files];
    input.value = "";
    await attach(files);
  });
  const composer = $("composer");
  composer.addEventListener("dragover", (event) => {
    if (event.dataTransfer && [...event.dataTransfer.types].includes("Files")) {
      event.preventDefault();
      composer.classList.add("dropping");
    }
  });
  composer.addEventListener("dragleave", () => composer.classList.remove("dropping"));
  composer.addEventListener("drop", async (event) => {
    composer.classList.remove("dropping");
    if (!event.dataTransfer || event.dataTransfer.files.length === 0) return;
    event.preventDefault();
    await attach([...event.dataTransfer.files]);
  });
  $("composer-input").addEventListener("paste", async (event) => {
    const files = event.clipboardData ? [...event.clipboardData.files] : [];
    if (files.length === 0) return; // text: pasted as usual
    event.preventDefault();
    await attach(files);
  });
}
