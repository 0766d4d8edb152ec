// Tags, pins and the archive: the tag manager (create with a colour, rename, recolour,
// delete), the tags of the open conversation, the list's view (conversations or archived) and
// its tag filter. Tag colours are set through the CSSOM (allowed by the page's CSP, which
// refuses inline style attributes).

import { api } from "./api.js";
import { closed } from "./dialogs.js";
import { $, announce, h } from "./dom.js";
import { guarded } from "./session.js";
import { state } from "./state.js";

/** A small coloured label for each tag. */
export function tagChips(tags) {
  if (!tags || !tags.length) return null;
  return h("span", { class: "tag-chips" }, tags.map((tag) => chip(tag)));
}

function chip(tag) {
  const el = h("span", { class: "tag-chip", title: tag.name }, tag.name);
  el.style.setProperty("--tag", tag.color);
  return el;
}

export async function loadTags() {
  const found = await guarded(() => api("GET", "/api/tags"));
  if (!found) return;
  state.tags = found.tags;
  renderTagFilter();
}

function renderTagFilter() {
  const select = $("tag-filter");
  const known = state.tags.some((t) => t.id === state.listTag);
  if (!known) state.listTag = "";
  select.replaceChildren(
    h("option", { value: "" }, "All tags"),
    ...state.tags.map((t) => h("option", { value: t.id, selected: t.id === state.listTag }, `${t.name} (${t.conversationCount})`)),
  );
  select.hidden = state.tags.length === 0;
}

/** The tag manager: every tag with its colour and name, and a form for a new one. */
async function manageTags() {
  const dialog = $("tags-dialog");
  renderTagManager();
  dialog.showModal();
  $("new-tag-name").focus();
  await closed(dialog);
  await loadTags();
}

function renderTagManager() {
  $("tag-manager-list").replaceChildren(
    ...state.tags.map((tag) => {
      const name = h("input", { value: tag.name, maxlength: "40", "aria-label": `Name of ${tag.name}` });
      const color = h("input", { type: "color", value: tag.color, "aria-label": `Colour of ${tag.name}` });
      const save = async (body) => {
        const updated = await guarded(() => api("PATCH", `/api/tags/${encodeURIComponent(tag.id)}`, body));
        if (updated) Object.assign(tag, updated);
        renderTagManager();
      };
      name.addEventListener("change", () => save({ name: name.value }));
      color.addEventListener("change", () => save({ color: color.value }));
      return h("li", { class: "tag-row" }, color, name,
        h("button", { type: "button", class: "small-button", "aria-label": `Delete tag ${tag.name}`, onclick: () => deleteTag(tag) }, "Delete"));
    }),
  );
  $("tag-manager-empty").hidden = state.tags.length > 0;
}

async function createTag(event) {
  event.preventDefault();
  const status = $("tag-status");
  status.textContent = "";
  try {
    const made = await api("POST", "/api/tags", { name: $("new-tag-name").value, color: $("new-tag-color").value });
    state.tags = [...state.tags, made].sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
    $("new-tag-name").value = "";
    renderTagManager();
    announce(`Tag ${made.name} created.`);
  } catch (err) {
    status.textContent = err.message;
  }
}

async function deleteTag(tag) {
  await guarded(() => api("DELETE", `/api/tags/${encodeURIComponent(tag.id)}`));
  state.tags = state.tags.filter((t) => t.id !== tag.id);
  renderTagManager();
}

/** The open conversation's tags in the chat header. */
export function showConversationTags(tags) {
  state.conversationTags = tags || [];
  $("chat-tags").replaceChildren(...state.conversationTags.map((tag) => chip(tag)));
}

/** Tick the tags of the open conversation. */
async function assignTags() {
  const id = state.conversationId;
  if (!id) return;
  const dialog = $("assign-dialog");
  const on = new Set(state.conversationTags.map((t) => t.id));
  $("assign-list").replaceChildren(
    ...state.tags.map((tag) => {
      const box = h("input", { type: "checkbox", id: `assign-${tag.id}`, checked: on.has(tag.id) });
      box.addEventListener("change", async () => {
        const labels = await guarded(() =>
          api(box.checked ? "PUT" : "DELETE", `/api/conversations/${encodeURIComponent(id)}/tags/${encodeURIComponent(tag.id)}`),
        );
        if (labels && state.conversationId === id) showConversationTags(labels.tags);
      });
      return h("li", {}, box, " ", h("label", { for: `assign-${tag.id}` }, chip(tag)));
    }),
  );
  $("assign-empty").hidden = state.tags.length > 0;
  dialog.showModal();
  await closed(dialog);
  await loadTags();
  const { loadConversationList } = await import("./sidebar.js");
  await loadConversationList(true);
}

/** Pin or unpin, archive or unarchive a conversation of the list. */
export async function setLabel(conversation, what, on) {
  const labels = await guarded(() =>
    api(on ? "PUT" : "DELETE", `/api/conversations/${encodeURIComponent(conversation.id)}/${what}`),
  );
  if (!labels) return;
  announce(`${what === "pin" ? (on ? "Pinned" : "Unpinned") : on ? "Archived" : "Back from the archive"}.`);
  const { loadConversationList } = await import("./sidebar.js");
  await loadConversationList(true);
}

export function wireTags(onViewChange) {
  $("manage-tags").addEventListener("click", () => manageTags());
  $("new-tag-form").addEventListener("submit", createTag);
  $("assign-tags").addEventListener("click", () => assignTags());
  $("list-view").addEventListener("change", () => {
    state.listArchived = $("list-view").value === "archived";
    onViewChange();
  });
  $("tag-filter").addEventListener("change", () => {
    state.listTag = $("tag-filter").value;
    onViewChange();
  });
}
