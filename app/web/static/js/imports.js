// Settings → Your data → Import: a ChatGPT export (.zip or conversations.json) or this API's
// own JSON export, sent as the request body; its progress is read until it ends.

import { ApiError, api, csrf } from "./api.js";
import { $, announce } from "./dom.js";
import { loadConversationList } from "./sidebar.js";

const POLL_MS = 500;

function describe(job) {
  const stored = job.done - job.duplicates;
  const parts = [`${stored} conversation${stored === 1 ? "" : "s"} imported`];
  if (job.duplicates) parts.push(`${job.duplicates} already here`);
  const skipped = Object.entries(job.skipped || {}).map(([kind, n]) => `${n} ${kind}`);
  if (skipped.length) parts.push(`left out: ${skipped.join(", ")}`);
  return parts.join("; ");
}

function show(text) {
  $("import-status").textContent = text;
}

async function send(file) {
  const response = await fetch("/api/imports", {
    method: "POST",
    headers: { "x-csrf-token": await csrf(), "content-type": file.type || "application/octet-stream" },
    body: file,
    credentials: "same-origin",
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

async function importFile() {
  const file = $("import-file").files[0];
  if (!file) return;
  $("import-button").disabled = true;
  show(`Sending ${file.name}…`);
  try {
    let job = await send(file);
    while (job.status === "running") {
      show(job.total === null ? "Checking the file…" : `Importing: ${job.done} of ${job.total}…`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      job = await api("GET", `/api/imports/${encodeURIComponent(job.id)}`);
    }
    const text = job.status === "done" ? `Done: ${describe(job)}.` : `${job.error} (${describe(job)})`;
    show(text);
    announce(text);
    await loadConversationList(true);
  } catch (error) {
    show(error.message);
  } finally {
    $("import-button").disabled = false;
    $("import-file").value = "";
  }
}

export function wireImports() {
  $("import-button").addEventListener("click", importFile);
}
