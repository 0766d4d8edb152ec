// The sidebar: the conversation list (paged as it scrolls, rename, delete), search, and
// its drawer on narrow screens.

import { api } from "./api.js";
import { closed, confirmAction } from "./dialogs.js";
import { $, announce, h } from "./dom.js";
import { guarded } from "./session.js";
import { setTitle, state } from "./state.js";
import { setLabel, tagChips } from "./tags.js";

const PAGE_SIZE = 30;

let listSeq = 0;

/** The first page again (`reset`: the view or filter changed, or a row moved; an older
 * answer still on its way is then dropped), or the next page. */
export async function loadConversationList(reset) {
  if (!reset && (state.listLoading || !state.listCursor)) return;
  const seq = ++listSeq;
  state.listLoading = true;
  try {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (!reset && state.listCursor) params.set("cursor", state.listCursor);
    if (state.listArchived) params.set("archived", "true");
    if (state.listTag) params.set("tag", state.listTag);
    const page = await guarded(() => api("GET", `/api/conversations?${params}`));
    if (!page || seq !== listSeq) return;
    state.conversations = reset ? page.conversations : [...state.conversations, ...page.conversations];
    state.listCursor = page.nextCursor;
    renderConversationList();
  } finally {
    if (seq === listSeq) state.listLoading = false;
  }
}

export function renderConversationList() {
  const list = $("conversation-list");
  list.replaceChildren(
    ...state.conversations.map((c) => {
      const title = c.title || "Untitled conversation";
      const pinned = Boolean(c.pinnedAt);
      const archived = Boolean(c.archivedAt);
      return h(
        "li",
        { class: [c.id === state.conversationId ? "current" : "", pinned ? "pinned" : ""].join(" ").trim(), dataset: { id: c.id } },
        h(
          "a",
          {
            class: "conversation-link",
            href: `#/c/${encodeURIComponent(c.id)}`,
            "aria-current": c.id === state.conversationId ? "page" : false,
          },
          h("span", { class: "title" }, pinned ? h("span", { class: "pin-mark", "aria-label": "Pinned" }, "★ ") : null, title),
          tagChips(c.tags),
          c.lastMessage ? h("span", { class: "preview" }, c.lastMessage.slice(0, 120)) : null,
        ),
        h("button", { type: "button", "aria-label": `${pinned ? "Unpin" : "Pin"} ${title}`, title: pinned ? "Unpin" : "Pin", "aria-pressed": String(pinned), onclick: () => setLabel(c, "pin", !pinned) }, pinned ? "★" : "☆"),
        h("button", { type: "button", "aria-label": `${archived ? "Unarchive" : "Archive"} ${title}`, title: archived ? "Unarchive" : "Archive", onclick: () => setLabel(c, "archive", !archived) }, archived ? "⊞" : "⊟"),
        h("button", { type: "button", "aria-label": `Rename ${title}`, title: "Rename", onclick: () => renameConversation(c) }, "✎"),
        h("button", { type: "button", "aria-label": `Delete ${title}`, title: "Delete", onclick: () => deleteConversation(c) }, "✕"),
      );
    }),
  );
  $("list-empty").hidden = state.conversations.length > 0;
  $("list-empty").textContent = state.listArchived ? "Nothing archived." : state.listTag ? "No conversation has this tag." : "No conversations yet.";
  $("load-more").hidden = !state.listCursor;
}

async function renameConversation(conversation) {
  const dialog = $("rename-dialog");
  const input = $("rename-input");
  input.value = conversation.title || "";
  dialog.returnValue = "";
  dialog.showModal();
  input.select();
  await closed(dialog);
  if (dialog.returnValue !== "ok") return;
  const updated = await guarded(() =>
    api("PATCH", `/api/conversations/${encodeURIComponent(conversation.id)}`, { title: input.value }),
  );
  if (!updated) return;
  conversation.title = updated.title;
  renderConversationList();
  if (state.conversationId === conversation.id) setTitle(updated.title);
  announce("Conversation renamed.");
}

/** A title made by the title model (streamed, or asked for again): list and header. */
export function showNewTitle(conversationId, title) {
  const listed = state.conversations.find((c) => c.id === conversationId);
  if (listed) {
    listed.title = title;
    renderConversationList();
  }
  if (state.conversationId === conversationId) setTitle(title);
}

async function deleteConversation(conversation) {
  const title = conversation.title || "Untitled conversation";
  const ok = await confirmAction({
    title: "Delete this conversation?",
    text: `“${title}” and all its messages will be deleted. This cannot be undone.`,
    button: "Delete",
  });
  if (!ok) return;
  await guarded(() => api("DELETE", `/api/conversations/${encodeURIComponent(conversation.id)}`));
  state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
  renderConversationList();
  announce("Conversation deleted.");
  if (state.conversationId === conversation.id) location.hash = "#/";
}

function toggleSidebar() {
  const open = !$("sidebar").classList.contains("open");
  $("sidebar").classList.toggle("open", open);
  $("menu-button").setAttribute("aria-expanded", String(open));
  if (open) $("search-input").focus();
}

export function closeSidebar() {
  $("sidebar").classList.remove("open");
  $("menu-button").setAttribute("aria-expanded", "false");
}

// Search: results replace the list while the box holds a query.

let searchTimer = null;
let searchSeq = 0;

function scheduleSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 300);
}

async function runSearch(event) {
  event?.preventDefault();
  clearTimeout(searchTimer);
  const q = $("search-input").value.trim();
  const box = $("search-results");
  const seq = ++searchSeq;
  if (!q) {
    box.hidden = true;
    $("conversation-list").hidden = false;
    $("load-more").hidden = !state.listCursor;
    return;
  }
  let page;
  try {
    page = await guarded(() => api("GET", `/api/conversations/search?${new URLSearchParams({ q, limit: "20" })}`));
  } catch (err) {
    page = { error: err.message };
  }
  if (seq !== searchSeq || page === undefined) return;
  $("conversation-list").hidden = true;
  $("load-more").hidden = true;
  box.hidden = false;
  if (page.error) {
    box.replaceChildren(h("p", { class: "notice error" }, page.error));
    return;
  }
  const heading = h("p", { class: "muted small" },
    page.results.length
      ? `${page.results.length}${page.nextCursor ? "+" : ""} conversation${page.results.length === 1 && !page.nextCursor ? "" : "s"}`
      : "Nothing found.",
    page.mode === "fuzzy" ? " (close matches)" : "");
  box.replaceChildren(
    heading,
    ...page.results.map((result) => {
      const id = encodeURIComponent(result.conversation.id);
      // A title match has no message to scroll to: it is the link to the conversation itself.
      const titleMatch = result.matches.find((match) => match.source === "title");
      const title = titleMatch ? snippetNodes(titleMatch.snippet) : result.conversation.title || "Untitled conversation";
      return h(
        "div",
        { class: "search-result" },
        h("a", { class: "result-title", href: `#/c/${id}` }, title,
          result.conversation.archivedAt ? h("span", { class: "muted small" }, " (archived)") : null),
        result.matches
          .filter((match) => match.source === "message" && match.messageId)
          .map((match) =>
            h(
              "a",
              { class: "snippet", href: `#/c/${id}/m/${encodeURIComponent(match.messageId)}` },
              h("span", { class: "muted" }, match.role === "user" ? "You: " : "Assistant: "),
              snippetNodes(match.snippet),
            ),
          ),
      );
    }),
  );
  announce(page.results.length ? `${page.results.length} conversations found.` : "Nothing found.");
}

const ENTITIES = { "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#x27;": "'", "&#39;": "'" };

/** The API's snippet (escaped text with <mark> around matches) as text nodes and marks. */
export function snippetNodes(snippet) {
  const nodes = [];
  let marked = false;
  for (const piece of snippet.split(/(<mark>|<\/mark>)/)) {
    if (piece === "<mark>") marked = true;
    else if (piece === "</mark>") marked = false;
    else if (piece) {
      const text = piece.replace(/&(lt|gt|amp|quot|#x27|#39);/g, (e) => ENTITIES[e]);
      nodes.push(marked ? h("mark", {}, text) : text);
    }
  }
  return nodes;
}

export function wireSidebar() {
  $("menu-button").addEventListener("click", toggleSidebar);
  $("search-form").addEventListener("submit", runSearch);
  $("search-input").addEventListener("input", scheduleSearch);
  $("load-more").addEventListener("click", () => loadConversationList(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && $("sidebar").classList.contains("open")) closeSidebar();
  });
  // Keyset paging: the next page loads as the end of the list scrolls into view.
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !$("conversation-list").hidden) loadConversationList(false);
  }, { root: $("sidebar") }).observe($("list-sentinel"));
}
