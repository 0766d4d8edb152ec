// The chat view: a new chat or an open conversation (paged back, opened at a search hit),
// sending a message, regenerating the last answer, editing a question, switching branches,
// and following an answer after a reload.

import { api, ApiError } from "./api.js";
import { editBody, messagesBeforeEdit, switchBranch } from "./branches.js";
import { fileParts, hasAttachments, restoreAttachments, takeAttachments, wireFiles } from "./files.js";
import { $ } from "./dom.js";
import { focusMessage, renderMessages, scrollToEnd, showChatError } from "./messages.js";
import { preferredModel } from "./settings.js";
import { loadConversationList, renderConversationList } from "./sidebar.js";
import { guarded } from "./session.js";
import { setTitle, state } from "./state.js";
import { showConversationTags } from "./tags.js";
import { detachLive, stopAnswer, stream } from "./stream.js";

const MESSAGE_PAGE = 100;

export function newChat() {
  if (state.live && state.live.conversationId === state.conversationId) detachLive();
  state.conversationId = null;
  state.messages = [];
  state.messagesCursor = null;
  state.editing = null;
  setTitle(null);
  showConversationTags([]);
  $("chat-tools").hidden = true;
  renderMessages();
  renderConversationList();
  $("composer-input").focus();
}

export async function openConversation(id, focusMessageId) {
  if (state.live && state.live.conversationId !== id) detachLive();
  const same = state.conversationId === id;
  state.conversationId = id;
  if (!same) {
    state.editing = null;
    state.messages = [];
  }
  renderConversationList();
  const base = `/api/conversations/${encodeURIComponent(id)}`;
  let detail, page;
  try {
    [detail, page] = await Promise.all([
      api("GET", `${base}?limit=1`),
      api("GET", `${base}/messages?limit=${MESSAGE_PAGE}`),
    ]);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      showChatError("This conversation does not exist (or was deleted).");
      location.hash = "#/";
      return;
    }
    throw err;
  }
  if (state.conversationId !== id) return;
  state.messages = page.messages;
  state.messagesCursor = page.nextCursor;
  setTitle(detail.title);
  showConversationTags(detail.tags);
  $("model-select").value = detail.model || preferredModel(); // the picker's model is sent
  $("export-json").href = `${base}/export?format=json`;
  $("export-md").href = `${base}/export?format=markdown`;
  $("chat-tools").hidden = false;
  if (focusMessageId) await loadUntil(focusMessageId);
  if (focusMessageId && !state.messages.some((m) => m.id === focusMessageId)) {
    // A search hit on another branch: show that branch.
    const shown = await switchBranch(focusMessageId).catch(() => null);
    if (shown && state.conversationId === id) {
      state.messages = shown.messages;
      state.messagesCursor = shown.nextCursor;
      await loadUntil(focusMessageId);
    }
  }
  renderMessages();
  if (focusMessageId) focusMessage(focusMessageId);
  else scrollToEnd();
  if (!state.live) await reattach(id);
}

/** Load older pages until the message is there (a search hit may be far back). */
async function loadUntil(messageId) {
  for (let n = 0; n < 20 && state.messagesCursor && !state.messages.some((m) => m.id === messageId); n++) {
    await loadEarlier(false);
  }
}

async function loadEarlier(render = true) {
  const id = state.conversationId;
  const params = new URLSearchParams({ limit: String(MESSAGE_PAGE), before: state.messagesCursor });
  const page = await api("GET", `/api/conversations/${encodeURIComponent(id)}/messages?${params}`);
  if (state.conversationId !== id) return;
  state.messages = [...page.messages, ...state.messages];
  state.messagesCursor = page.nextCursor;
  if (render) renderMessages();
}

function newId() {
  return crypto.randomUUID().replaceAll("-", "");
}


async function sendMessage(event) {
  event.preventDefault();
  const input = $("composer-input");
  const text = input.value;
  if ((!text.trim() && !hasAttachments()) || state.live) return;
  showChatError(null);
  const files = takeAttachments();
  const isNew = !state.conversationId;
  const conversationId = state.conversationId || newId();
  const model = $("model-select").value || undefined;
  const optimistic = { id: `local-${newId()}`, role: "user", content: text, files, createdAt: new Date().toISOString(), status: "complete" };
  state.conversationId = conversationId;
  state.messages = [...state.messages, optimistic];
  input.value = "";
  const message = { id: newId(), role: "user", parts: [...fileParts(files), { type: "text", text }] };
  const ok = await stream({ path: "/api/chat", body: { id: conversationId, message, model } }, conversationId, { isNew, refresh: refreshAfterAnswer });
  if (!ok) {
    input.value = text; // nothing was sent: give the text and the files back
    restoreAttachments(files);
    state.messages = state.messages.filter((m) => m !== optimistic);
    renderMessages();
  }
}

async function regenerate() {
  if (state.live || !state.conversationId) return;
  showChatError(null);
  const id = state.conversationId;
  const model = $("model-select").value || undefined;
  const last = [...state.messages].reverse().find((m) => m.role === "assistant");
  const question = [...state.messages].reverse().find((m) => m.role === "user");
  // As the AI SDK's regenerate() sends it: the chat id, the trigger and the messages so far.
  const messages = question ? [{ id: question.id, role: "user", parts: [{ type: "text", text: question.content }] }] : [];
  const body = { id, trigger: "regenerate-message", messageId: last?.id, messages, model };
  // The old answer stays a version (a sibling: "‹ 1 / 2 ›" after); the new one streams in its place.
  state.messages = state.messages.filter((m) => m !== last);
  await stream({ path: "/api/chat", body }, id, { refresh: refreshAfterAnswer });
}

/** Answer an edited question in a new branch; the old branch stays (‹ 1 / 2 ›). */
async function sendEdit(event) {
  event.preventDefault();
  const form = event.target;
  const text = form.querySelector("textarea").value;
  const messageId = form.dataset.messageId;
  if (!text.trim() || state.live || !state.conversationId) return;
  showChatError(null);
  const id = state.conversationId;
  const model = $("model-select").value || undefined;
  state.editing = null;
  state.messages = messagesBeforeEdit(messageId, text);
  await stream({ path: "/api/chat", body: editBody(id, messageId, text, model) }, id, { refresh: refreshAfterAnswer });
}

/** Show another branch (a sibling's); the server remembers it for the next message. */
async function showBranch(messageId) {
  if (state.live || !state.conversationId) return;
  const id = state.conversationId;
  await guarded(() => switchBranch(messageId));
  await openConversation(id, null);
  document.querySelector(`#m-${CSS.escape(messageId)} .versions button:not(:disabled)`)?.focus();
}

function onMessageClick(event) {
  const target = event.target;
  if (target.closest("button.regenerate")) regenerate();
  const branch = target.closest("button[data-branch]");
  if (branch && branch.dataset.branch) showBranch(branch.dataset.branch);
  const edit = target.closest("button.edit-message");
  if (edit && !state.live) {
    state.editing = edit.dataset.messageId;
    renderMessages();
  }
  if (target.closest("button.edit-cancel")) {
    state.editing = null;
    renderMessages();
  }
}

async function refreshAfterAnswer(conversationId, isNew) {
  await loadConversationList(true);
  if (state.conversationId === conversationId && !state.live) {
    await openConversation(conversationId, null);
    if (isNew) renderConversationList();
  }
}

/** After a reload (or on opening a conversation): follow an answer still being written. */
async function reattach(conversationId) {
  const path = `/api/chat/${encodeURIComponent(conversationId)}/stream`;
  await stream({ path }, conversationId, { resume: true, refresh: refreshAfterAnswer }).catch(() => undefined);
}

export function wireChat() {
  $("load-earlier").addEventListener("click", () => loadEarlier());
  $("composer").addEventListener("submit", sendMessage);
  $("stop-button").addEventListener("click", stopAnswer);
  wireFiles(showChatError);
  $("message-list").addEventListener("click", onMessageClick);
  $("message-list").addEventListener("submit", (event) => {
    if (event.target.matches("form.edit-form")) sendEdit(event);
  });
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    } else if (event.key === "Escape" && state.live) {
      stopAnswer();
    }
  });
}
