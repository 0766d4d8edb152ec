// Share links, the owner's side: the Share button of an open conversation (a new link, shown
// this once, with Copy) and, in Settings, the list of your links, each revocable.

import { api } from "./api.js";
import { $, announce, h } from "./dom.js";
import { showChatError } from "./messages.js";
import { guarded } from "./session.js";
import { formatTime, state } from "./state.js";

let cursor = null;

async function share() {
  if (!state.conversationId) return;
  const path = `/api/conversations/${encodeURIComponent(state.conversationId)}/shares`;
  const made = await guarded(() => api("POST", path));
  if (!made) return;
  $("share-link").value = made.url;
  $("share-status").textContent = "";
  $("share-dialog").showModal();
  $("share-link").select();
}

async function copyLink() {
  const input = $("share-link");
  try {
    await navigator.clipboard.writeText(input.value);
    $("share-status").textContent = "Link copied.";
  } catch {
    input.select();
    $("share-status").textContent = "Copy the selected link (Ctrl+C or ⌘C).";
  }
}

async function renderShares(more = false) {
  const params = new URLSearchParams({ limit: "20" });
  if (more && cursor) params.set("cursor", cursor);
  const page = await guarded(() => api("GET", `/api/shares?${params}`));
  if (!page) return;
  cursor = page.nextCursor;
  const items = page.shares.map(shareItem);
  if (more) $("share-list").append(...items);
  else $("share-list").replaceChildren(...items);
  $("shares-empty").hidden = $("share-list").children.length > 0;
  $("shares-more").hidden = !cursor;
}

function shareItem(s) {
  return h("li", { dataset: { shareId: s.id } },
    h("span", {}, s.title || "Untitled conversation", h("br"),
      h("small", { class: "muted" }, `${s.messageCount} messages, shared ${formatTime(s.createdAt)}`),
      s.active ? null : h("small", { class: "share-inactive" }, " · in the trash: off until restored"),
    ),
    h("button", { type: "button", "aria-label": `Revoke the link to ${s.title || "this conversation"}`, onclick: () => revoke(s) }, "Revoke"),
  );
}

async function revoke(s) {
  await guarded(() => api("DELETE", `/api/shares/${encodeURIComponent(s.id)}`));
  announce("Link revoked: it no longer opens.");
  await renderShares();
}

export function wireShares() {
  $("share-button").addEventListener("click", () => share().catch((err) => showChatError(err.message)));
  $("share-copy").addEventListener("click", copyLink);
  $("settings-button").addEventListener("click", () => renderShares());
  $("shares-more").addEventListener("click", () => renderShares(true));
}
