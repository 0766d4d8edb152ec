// ChatWithMe web page: sign-in, conversations, search, streamed chat, settings and stats,
// all through the public JSON API with the session cookie.

import { api, ApiError, sseFrames } from "./api.js";
import { $, announce, h, svg } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const PAGE_SIZE = 30;
const MESSAGE_PAGE = 100;
const THEME_KEY = "chatwithme.theme";
const LANGUAGES = [
  ["en", "English"], ["de", "Deutsch"], ["es", "Español"], ["fr", "Français"], ["it", "Italiano"],
  ["nl", "Nederlands"], ["pl", "Polski"], ["pt", "Português"], ["sv", "Svenska"], ["tr", "Türkçe"],
  ["ja", "日本語"], ["ko", "한국어"], ["zh", "中文"],
];
const REACTIONS = [
  ["like", "Like"],
  ["dislike", "Dislike"],
  ["helpful", "Helpful"],
];
const STATUS_TEXT = {
  streaming: "Being written…",
  incomplete: "Incomplete: the model stopped partway; the partial answer is kept.",
  cancelled: "Stopped: the partial answer is kept.",
  error: "Failed: no answer was produced.",
};

const state = {
  user: null,
  models: [],
  aliases: {},
  serverDefault: null,
  prefs: null,
  conversations: [],
  listCursor: null,
  listLoading: false,
  conversationId: null,
  messages: [],
  messagesCursor: null,
  shownVersion: new Map(), // replyToId -> index of the version shown
  live: null, // the answer being streamed: {conversationId, controller, bubble, ...}
};

// ---------------------------------------------------------------- start-up and sign-in

async function boot() {
  wireStaticHandlers();
  let session = null;
  try {
    session = await api("GET", "/api/auth/session");
  } catch (err) {
    showFatal(err);
    return;
  }
  $("loading").hidden = true;
  if (!session) {
    await showSignIn();
    return;
  }
  state.user = session.user;
  await startApp();
}

function showFatal(err) {
  $("loading").textContent = `The server did not answer: ${err.message}`;
}

async function showSignIn(message) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("loading").hidden = true;
  const note = $("signin-message");
  note.hidden = !message;
  note.textContent = message || "";
  const providers = await api("GET", "/api/auth/providers");
  $("signin-google").hidden = !providers.google;
  $("signin-email").hidden = !providers.email;
  $("signin-dev").hidden = !providers["dev-login"];
  $("signin-none").hidden = Object.keys(providers).length > 0;
  document.querySelector("#signin-google:not([hidden]) a, #signin form:not([hidden]) input")?.focus();
}

async function devLogin(event) {
  event.preventDefault();
  const email = $("dev-email").value.trim();
  const name = $("dev-name").value.trim() || undefined;
  try {
    const result = await api("POST", "/api/auth/dev-login", { email, name });
    state.user = result.user;
    $("signin").hidden = true;
    await startApp();
  } catch (err) {
    await showSignIn(err.message);
  }
}

async function emailLink(event) {
  event.preventDefault();
  const email = $("email-address").value.trim();
  try {
    const result = await api("POST", "/api/auth/signin/email", { email, callbackUrl: "/" });
    await showSignIn(`${result.message} (Without SMTP_URL the server logs the link.)`);
  } catch (err) {
    await showSignIn(err.message);
  }
}

async function signOut() {
  stopLiveLocally();
  try {
    await api("POST", "/api/auth/signout");
  } finally {
    resetState();
    history.replaceState(null, "", "#/");
    await showSignIn("Signed out.");
  }
}

function resetState() {
  Object.assign(state, {
    user: null, prefs: null, conversations: [], listCursor: null, conversationId: null,
    messages: [], messagesCursor: null, live: null,
  });
  state.shownVersion.clear();
  $("conversation-list").replaceChildren();
  $("message-list").replaceChildren();
}

/** A 401 anywhere means the session ended: back to the sign-in screen. */
async function guarded(work) {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      resetState();
      await showSignIn("Your session has ended. Sign in again.");
      return undefined;
    }
    throw err;
  }
}

async function startApp() {
  $("signin").hidden = true;
  $("user-label").textContent = state.user.name || state.user.email || "";
  const [models, prefs] = await Promise.all([
    api("GET", "/api/models"),
    guarded(() => api("GET", "/api/users/me/preferences")),
  ]);
  if (!prefs) return;
  state.models = models.models;
  state.aliases = models.aliases;
  state.serverDefault = models.default;
  applyPreferences(prefs);
  fillModelSelect($("model-select"), preferredModel());
  await loadConversationList(true);
  // Shown only now: a message typed earlier would be wiped by the first route().
  $("app").hidden = false;
  await route();
}

// ---------------------------------------------------------------- preferences and theme

function applyPreferences(prefs) {
  state.prefs = prefs;
  applyTheme(prefs.theme);
  document.documentElement.lang = prefs.language || "en";
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  try {
    localStorage.setItem(THEME_KEY, theme);
  } catch {
    /* storage disabled */
  }
}

/** The model to preselect: the user's default when available, else the server's. */
function preferredModel() {
  const wanted = state.prefs?.defaultModel;
  const resolved = state.aliases[wanted] || wanted;
  return state.models.some((m) => m.id === resolved) ? resolved : state.serverDefault;
}

function fillModelSelect(select, selected, { withAliases = false } = {}) {
  const options = state.models.map((m) =>
    h("option", { value: m.id, selected: m.id === selected }, m.name),
  );
  if (withAliases) {
    for (const [alias, target] of Object.entries(state.aliases)) {
      options.push(h("option", { value: alias, selected: alias === selected }, `${alias} (${target})`));
    }
    if (selected && !state.models.some((m) => m.id === selected) && !(selected in state.aliases)) {
      options.push(h("option", { value: selected, selected: true }, `${selected} (not available)`));
    }
  }
  select.replaceChildren(...options);
}

function dateFormat(options) {
  return new Intl.DateTimeFormat(state.prefs?.language || undefined, options);
}

function formatTime(iso) {
  if (!iso) return "";
  return dateFormat({ dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

// ---------------------------------------------------------------- routing

async function route() {
  if (!state.user) return;
  const hash = location.hash.replace(/^#\/?/, "");
  const parts = hash.split("/").map(decodeURIComponent);
  closeSidebar();
  if (parts[0] === "stats") {
    showView("stats");
    await guarded(renderStats);
  } else if (parts[0] === "c" && parts[1]) {
    showView("chat");
    await guarded(() => openConversation(parts[1], parts[2] === "m" ? parts[3] : null));
  } else {
    showView("chat");
    newChat();
  }
}

function showView(name) {
  $("chat-view").hidden = name !== "chat";
  $("stats-view").hidden = name !== "stats";
}

// ---------------------------------------------------------------- sidebar

async function loadConversationList(reset) {
  if (state.listLoading) return;
  if (!reset && !state.listCursor) return;
  state.listLoading = true;
  try {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (!reset && state.listCursor) params.set("cursor", state.listCursor);
    const page = await guarded(() => api("GET", `/api/conversations?${params}`));
    if (!page) return;
    state.conversations = reset ? page.conversations : [...state.conversations, ...page.conversations];
    state.listCursor = page.nextCursor;
    renderConversationList();
  } finally {
    state.listLoading = false;
  }
}

function renderConversationList() {
  const list = $("conversation-list");
  list.replaceChildren(
    ...state.conversations.map((c) => {
      const title = c.title || "Untitled conversation";
      return h(
        "li",
        { class: c.id === state.conversationId ? "current" : "", dataset: { id: c.id } },
        h(
          "a",
          {
            class: "conversation-link",
            href: `#/c/${encodeURIComponent(c.id)}`,
            "aria-current": c.id === state.conversationId ? "page" : false,
          },
          h("span", { class: "title" }, title),
          c.lastMessage ? h("span", { class: "preview" }, c.lastMessage.slice(0, 120)) : null,
        ),
        h("button", { type: "button", "aria-label": `Rename ${title}`, title: "Rename", onclick: () => renameConversation(c) }, "✎"),
        h("button", { type: "button", "aria-label": `Delete ${title}`, title: "Delete", onclick: () => deleteConversation(c) }, "✕"),
      );
    }),
  );
  $("list-empty").hidden = state.conversations.length > 0;
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

function closed(dialog) {
  return new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
}

async function confirmAction({ title, text, button, typed }) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = button;
  const input = $("confirm-input");
  $("confirm-typed").hidden = !typed;
  input.value = "";
  if (typed) $("confirm-input-label").textContent = `Type “${typed}” to confirm`;
  $("confirm-ok").disabled = Boolean(typed);
  input.oninput = () => ($("confirm-ok").disabled = input.value.trim() !== typed);
  dialog.returnValue = "";
  dialog.showModal();
  (typed ? input : $("confirm-cancel")).focus();
  await closed(dialog);
  return dialog.returnValue === "ok";
}

function toggleSidebar() {
  const open = !$("sidebar").classList.contains("open");
  $("sidebar").classList.toggle("open", open);
  $("menu-button").setAttribute("aria-expanded", String(open));
  if (open) $("search-input").focus();
}

function closeSidebar() {
  $("sidebar").classList.remove("open");
  $("menu-button").setAttribute("aria-expanded", "false");
}

// ---------------------------------------------------------------- search

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
        h("a", { class: "result-title", href: `#/c/${id}` }, title),
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

// ---------------------------------------------------------------- a conversation

function newChat() {
  if (state.live && state.live.conversationId === state.conversationId) detachLive();
  state.conversationId = null;
  state.messages = [];
  state.messagesCursor = null;
  state.shownVersion.clear();
  setTitle(null);
  $("chat-tools").hidden = true;
  renderMessages();
  renderConversationList();
  $("composer-input").focus();
}

function setTitle(title) {
  $("chat-title").textContent = title || (state.conversationId ? "Untitled conversation" : "New chat");
  document.title = title ? `${title} · ChatWithMe` : "ChatWithMe";
}

async function openConversation(id, focusMessageId) {
  if (state.live && state.live.conversationId !== id) detachLive();
  const same = state.conversationId === id;
  state.conversationId = id;
  if (!same) {
    state.shownVersion.clear();
    state.messages = [];
  }
  renderConversationList();
  const base = `/api/conversations/${encodeURIComponent(id)}`;
  let detail, page;
  try {
    [detail, page] = await Promise.all([
      api("GET", `${base}?limit=1`),
      api("GET", `${base}/messages?limit=${MESSAGE_PAGE}&includeVersions=true`),
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
  $("export-json").href = `${base}/export?format=json`;
  $("export-md").href = `${base}/export?format=markdown`;
  $("chat-tools").hidden = false;
  if (focusMessageId) await loadUntil(focusMessageId);
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
  const params = new URLSearchParams({ limit: String(MESSAGE_PAGE), includeVersions: "true", before: state.messagesCursor });
  const page = await api("GET", `/api/conversations/${encodeURIComponent(id)}/messages?${params}`);
  if (state.conversationId !== id) return;
  state.messages = [...page.messages, ...state.messages];
  state.messagesCursor = page.nextCursor;
  if (render) renderMessages();
}

/** Scroll to a search hit and mark it (until the next render). */
function focusMessage(messageId) {
  const el = document.getElementById(`m-${messageId}`);
  if (!el) return;
  el.scrollIntoView({ block: "center" });
  el.classList.add("target");
  el.focus({ preventScroll: true });
}

function scrollToEnd() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

/** Messages as shown: each answer slot holds one version of the answers to a user message. */
function visibleMessages() {
  const versions = new Map();
  for (const m of state.messages) {
    if (m.role === "assistant" && m.replyToId) {
      if (!versions.has(m.replyToId)) versions.set(m.replyToId, []);
      versions.get(m.replyToId).push(m);
    }
  }
  const shown = [];
  const placed = new Set();
  for (const m of state.messages) {
    if (m.role === "assistant" && m.replyToId && versions.get(m.replyToId).length > 1) {
      if (placed.has(m.replyToId)) continue;
      placed.add(m.replyToId);
      const all = versions.get(m.replyToId);
      const current = all.findIndex((v) => !v.supersededAt);
      const index = state.shownVersion.get(m.replyToId) ?? (current >= 0 ? current : all.length - 1);
      shown.push({ message: all[index], versions: all, index });
    } else if (!(m.supersededAt && m.role === "assistant")) {
      shown.push({ message: m, versions: [m], index: 0 });
    }
  }
  return shown;
}

function renderMessages() {
  const list = $("message-list");
  const shown = visibleMessages();
  const lastAssistant = [...shown].reverse().find((s) => s.message.role === "assistant");
  const live = state.live && state.live.conversationId === state.conversationId ? state.live : null;
  const rendered = shown
    .filter((s) => !(live && s.message.id === live.messageId))
    .map((s) => messageElement(s, s === lastAssistant && !live));
  list.replaceChildren(...rendered);
  if (live) list.append(live.bubble);
  $("chat-empty").hidden = shown.length > 0 || Boolean(live);
  $("load-earlier").hidden = !state.messagesCursor;
}

function messageElement({ message, versions, index }, isLastAnswer) {
  const user = message.role === "user";
  const head = h("div", { class: "message-head" },
    h("strong", {}, user ? "You" : "Assistant"),
    !user && message.model ? h("span", {}, message.model) : null,
    h("time", { datetime: message.createdAt }, formatTime(message.createdAt)),
    !user && message.timeToFirstTokenMs != null ? h("span", {}, `first token ${message.timeToFirstTokenMs} ms`) : null,
    !user && message.usage?.completionTokens != null
      ? h("span", {}, `${message.usage.completionTokens} tokens${message.usage.estimated ? " (estimated)" : ""}`)
      : null,
  );
  const body = h("div", { class: "message-body" });
  if (user) body.textContent = message.content;
  else body.append(renderMarkdown(message.content));
  const el = h("article", { class: `message ${message.role}`, id: `m-${message.id}`, tabindex: "-1", dataset: { status: message.status } }, head, body);
  if (!user) {
    const status = statusElement(message);
    if (status) el.append(status);
    el.append(answerActions(message, versions, index, isLastAnswer));
  }
  return el;
}

function statusElement(message) {
  const text = STATUS_TEXT[message.status];
  if (!text) return null;
  const detail = message.status === "error" && message.errorCode ? ` (${message.errorCode})` : "";
  return h("p", { class: `message-status${message.status === "error" ? " error" : ""}`, dataset: { status: message.status } }, text + detail);
}

function answerActions(message, versions, index, isLastAnswer) {
  const actions = h("div", { class: "message-actions" });
  if (versions.length > 1) {
    const replyTo = message.replyToId;
    const show = (n) => {
      state.shownVersion.set(replyTo, n);
      renderMessages();
      document.querySelector(`#m-${CSS.escape(versions[n].id)} .versions button:not(:disabled)`)?.focus();
    };
    actions.append(
      h("span", { class: "versions", role: "group", "aria-label": "Versions of this answer" },
        h("button", { type: "button", "aria-label": "Previous version", disabled: index === 0, onclick: () => show(index - 1) }, "‹"),
        h("span", {}, `${index + 1} / ${versions.length}`),
        h("button", { type: "button", "aria-label": "Next version", disabled: index === versions.length - 1, onclick: () => show(index + 1) }, "›"),
      ),
    );
  }
  for (const [type, label] of REACTIONS) {
    const pressed = (message.reactions || []).includes(type);
    actions.append(
      h("button", { type: "button", "aria-pressed": String(pressed), onclick: (e) => react(message, type, e.currentTarget) }, label),
    );
  }
  if (isLastAnswer && !message.supersededAt) {
    actions.append(h("button", { type: "button", class: "regenerate", onclick: regenerate }, "↻ Regenerate"));
  }
  return actions;
}

async function react(message, type, button) {
  const on = !(message.reactions || []).includes(type);
  await guarded(() => api(on ? "PUT" : "DELETE", `/api/messages/${encodeURIComponent(message.id)}/reactions/${type}`));
  message.reactions = on ? [...(message.reactions || []), type] : message.reactions.filter((r) => r !== type);
  button.setAttribute("aria-pressed", String(on));
}

function showChatError(text) {
  const box = $("chat-error");
  box.hidden = !text;
  box.textContent = text || "";
}

// ---------------------------------------------------------------- streaming answers

function newId() {
  return crypto.randomUUID().replaceAll("-", "");
}

function setBusy(busy) {
  $("send-button").disabled = busy;
  $("stop-button").hidden = !busy;
  $("composer").setAttribute("aria-busy", String(busy));
}

/** A bubble for the answer being streamed, filled as deltas arrive. */
function liveBubble() {
  const body = h("div", { class: "message-body cursor" });
  const status = h("p", { class: "message-status live", role: "status" }, "Answering…");
  const model = h("span", {});
  const el = h("article", { class: "message assistant live", tabindex: "-1", dataset: { status: "streaming" } },
    h("div", { class: "message-head" }, h("strong", {}, "Assistant"), model), body, status);
  return { el, body, status, model };
}

async function sendMessage(event) {
  event.preventDefault();
  const input = $("composer-input");
  const text = input.value;
  if (!text.trim() || state.live) return;
  showChatError(null);
  const isNew = !state.conversationId;
  const conversationId = state.conversationId || newId();
  const model = $("model-select").value || undefined;
  const optimistic = { id: `local-${newId()}`, role: "user", content: text, createdAt: new Date().toISOString(), status: "complete" };
  state.conversationId = conversationId;
  state.messages = [...state.messages, optimistic];
  input.value = "";
  const message = { id: newId(), role: "user", parts: [{ type: "text", text }] };
  const ok = await stream({ path: "/api/chat", body: { id: conversationId, message, model } }, conversationId, { isNew });
  if (!ok) {
    input.value = text; // nothing was sent: give the text back
    state.messages = state.messages.filter((m) => m !== optimistic);
    renderMessages();
  }
}

async function regenerate() {
  if (state.live || !state.conversationId) return;
  showChatError(null);
  const id = state.conversationId;
  const model = $("model-select").value || undefined;
  const last = [...state.messages].reverse().find((m) => m.role === "assistant" && !m.supersededAt);
  const question = [...state.messages].reverse().find((m) => m.role === "user");
  // As the AI SDK's regenerate() sends it: the chat id, the trigger and the messages so far.
  const messages = question ? [{ id: question.id, role: "user", parts: [{ type: "text", text: question.content }] }] : [];
  const body = { id, trigger: "regenerate-message", messageId: last?.id, messages, model };
  if (last) state.shownVersion.delete(last.replyToId);
  // The old answer stays a version (reloaded after); the new one streams in its place.
  state.messages = state.messages.filter((m) => m !== last);
  await stream({ path: "/api/chat", body }, id);
}

/** Run one streamed answer; false when the request was refused before anything started. */
async function stream(request, conversationId, { isNew = false, resume = false } = {}) {
  const controller = new AbortController();
  const live = { conversationId, controller, bubble: null, parts: null, text: "", messageId: null, stopped: false };
  if (!resume) begin(live, "Answering…");
  let response;
  try {
    response = resume
      ? await api("GET", request.path, undefined, { raw: true, signal: controller.signal, accept: "text/event-stream" })
      : await api("POST", request.path, request.body, { raw: true, signal: controller.signal, accept: "text/event-stream" });
  } catch (err) {
    finishLive(live);
    if (resume || err.name === "AbortError") return true;
    if (err instanceof ApiError && err.status === 401) return guarded(() => Promise.reject(err));
    showChatError(err.message);
    if (isNew) {
      state.conversationId = null;
      renderMessages();
    } else {
      await refreshAfterAnswer(conversationId, false);
    }
    return false;
  }
  if (resume) {
    if (response.status === 204 || state.live || state.conversationId !== conversationId) {
      controller.abort();
      return true;
    }
    begin(live, "Re-attached to the answer being written.");
  }
  if (isNew) history.replaceState(null, "", `#/c/${encodeURIComponent(conversationId)}`);
  try {
    await readUiMessageStream(response, live);
  } catch (err) {
    if (err.name !== "AbortError") showChatError(`The stream broke off: ${err.message}`);
  }
  const detached = state.live !== live;
  finishLive(live);
  if (detached) return true;
  await refreshAfterAnswer(live.conversationId, isNew);
  announce(live.stopped ? "Stopped." : "Answer complete.");
  return true;
}

function begin(live, message) {
  const bubble = liveBubble();
  live.bubble = bubble.el;
  live.parts = bubble;
  state.live = live;
  setBusy(true);
  renderMessages();
  scrollToEnd();
  announce(message);
}

async function readUiMessageStream(response, live) {
  for await (const frame of sseFrames(response)) {
    if (frame.data === "[DONE]") break;
    let chunk;
    try {
      chunk = JSON.parse(frame.data);
    } catch {
      continue;
    }
    switch (chunk.type) {
      case "start":
        live.messageId = chunk.messageId || null;
        if (live.messageId) live.bubble.id = `m-${live.messageId}`;
        if (chunk.messageMetadata?.model) live.parts.model.textContent = chunk.messageMetadata.model;
        live.text = ""; // a replay starts from the beginning
        renderMessages(); // hides the stored row of this answer, if it is listed
        paint(live);
        break;
      case "text-delta":
        live.text += chunk.delta || "";
        paint(live);
        break;
      case "finish":
        live.status = chunk.messageMetadata?.status;
        break;
      case "error":
        showChatError(chunk.errorText || "The answer failed.");
        break;
      default:
        break; // text-start, text-end, steps and metadata need nothing here
    }
  }
}

let painting = false;

/** Re-render the streamed Markdown at most once a frame. */
function paint(live) {
  if (painting) return;
  painting = true;
  requestAnimationFrame(() => {
    painting = false;
    const box = $("messages");
    const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    live.parts.body.replaceChildren(renderMarkdown(live.text));
    if (atEnd) scrollToEnd();
  });
}

function finishLive(live) {
  if (state.live !== live) return;
  state.live = null;
  setBusy(false);
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
  await stream({ path: `/api/chat/${encodeURIComponent(conversationId)}/stream` }, conversationId, { resume: true })
    .catch(() => undefined);
}

async function stopAnswer() {
  const live = state.live;
  if (!live) return;
  live.stopped = true;
  $("stop-button").disabled = true;
  try {
    await api("POST", `/api/chat/${encodeURIComponent(live.conversationId)}/stop`);
    // The server ends the stream with the stored partial answer; give it a moment.
    setTimeout(() => state.live === live && live.controller.abort(), 5000);
  } catch {
    live.controller.abort(); // the stream ends here at least
  } finally {
    $("stop-button").disabled = false;
  }
}

/** Leave the stream without stopping the generation (switching conversations). */
function detachLive() {
  const live = state.live;
  if (!live) return;
  state.live = null;
  setBusy(false);
  live.controller.abort();
}

function stopLiveLocally() {
  if (state.live) state.live.controller.abort();
}

// ---------------------------------------------------------------- settings

async function openSettings() {
  const dialog = $("settings-dialog");
  fillModelSelect($("pref-model"), state.prefs.defaultModel, { withAliases: true });
  $("pref-theme").value = state.prefs.theme;
  const lang = state.prefs.language;
  const languages = LANGUAGES.some(([code]) => code === lang) ? LANGUAGES : [...LANGUAGES, [lang, lang]];
  $("pref-language").replaceChildren(...languages.map(([code, name]) => h("option", { value: code, selected: code === lang }, name)));
  $("pref-status").textContent = "";
  dialog.showModal();
  await renderSessions();
}

async function savePreference(event) {
  const field = event.target.name;
  const value = event.target.value;
  if (field === "theme") applyTheme(value);
  try {
    const prefs = await guarded(() => api("PATCH", "/api/users/me/preferences", { [field]: value }));
    if (!prefs) return;
    applyPreferences(prefs);
    if (field === "defaultModel") fillModelSelect($("model-select"), preferredModel());
    $("pref-status").textContent = "Saved.";
  } catch (err) {
    $("pref-status").textContent = err.message;
    applyTheme(state.prefs.theme);
  }
}

async function renderSessions() {
  const sessions = await guarded(() => api("GET", "/api/auth/sessions"));
  if (!sessions) return;
  $("session-list").replaceChildren(
    ...sessions.map((s) =>
      h("li", {},
        h("span", {}, s.current ? "This browser" : "Another session", h("br"),
          h("small", { class: "muted" }, `${s.createdAt ? `signed in ${formatTime(s.createdAt)}, ` : ""}expires ${formatTime(s.expires)}`)),
        s.current
          ? h("button", { type: "button", onclick: signOut }, "Sign out")
          : h("button", { type: "button", onclick: () => revokeSession(s.id) }, "Revoke"),
      ),
    ),
  );
  $("revoke-others").disabled = sessions.length < 2;
}

async function revokeSession(id) {
  await guarded(() => api("DELETE", `/api/auth/sessions/${encodeURIComponent(id)}`));
  announce("Session revoked.");
  await renderSessions();
}

async function revokeOthers() {
  const result = await guarded(() => api("POST", "/api/auth/sessions/revoke-others"));
  if (result) announce(`${result.revoked} sessions signed out.`);
  await renderSessions();
}

async function deleteAccount() {
  const email = state.user.email || "delete";
  $("settings-dialog").close();
  const ok = await confirmAction({
    title: "Delete your account?",
    text: "Your account, all conversations, messages, sessions and preferences will be deleted for good. Export your data first if you want to keep it.",
    button: "Delete my account",
    typed: email,
  });
  if (!ok) return;
  await guarded(() => api("DELETE", "/api/users/me"));
  resetState();
  history.replaceState(null, "", "#/");
  await showSignIn("Your account was deleted.");
}

// ---------------------------------------------------------------- stats

async function renderStats() {
  const days = $("stats-days").value;
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const stats = await api("GET", `/api/users/me/stats?${new URLSearchParams({ days, tz })}`);
  const number = new Intl.NumberFormat(state.prefs?.language || undefined);
  const card = (label, value) => h("div", { class: "stat-card" }, h("strong", {}, value), h("span", { class: "muted small" }, label));
  $("stats-body").replaceChildren(
    h("div", { class: "stat-cards" },
      card("conversations", number.format(stats.conversationCount)),
      card("messages", number.format(stats.messageCount)),
      card("prompt tokens", number.format(stats.tokens.prompt)),
      card("completion tokens", number.format(stats.tokens.completion)),
      card("active days", number.format(stats.activeDays)),
      card("day streak", number.format(stats.currentStreakDays)),
    ),
    h("h2", {}, `Messages per day (last ${days} days)`),
    dailyChart(stats.daily),
    h("h2", {}, "Per model"),
    modelTable(stats.models, number),
  );
}

function dailyChart(daily) {
  const width = 720, height = 220, left = 36, bottom = 28, top = 10;
  const max = Math.max(1, ...daily.map((d) => d.messages));
  const step = (width - left - 8) / Math.max(1, daily.length);
  const y = (v) => height - bottom - (v / max) * (height - bottom - top);
  const short = dateFormat({ month: "short", day: "numeric" });
  const bars = daily.map((d, i) => {
    const x = left + i * step + step * 0.15;
    const label = `${short.format(new Date(`${d.date}T12:00:00`))}: ${d.messages} messages, ${d.tokens} tokens`;
    return svg("rect", { class: "bar", x: x.toFixed(1), y: y(d.messages).toFixed(1), width: Math.max(1, step * 0.7).toFixed(1), height: (height - bottom - y(d.messages)).toFixed(1) }, svg("title", {}, label));
  });
  const every = Math.ceil(daily.length / 8);
  const labels = daily
    .map((d, i) => (i % every === 0 ? svg("text", { x: (left + i * step).toFixed(1), y: height - 8 }, short.format(new Date(`${d.date}T12:00:00`))) : null))
    .filter(Boolean);
  const total = daily.reduce((sum, d) => sum + d.messages, 0);
  return svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Messages per day: ${total} in ${daily.length} days, at most ${max} a day` },
    svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }),
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom }),
    svg("text", { x: 2, y: top + 10 }, String(max)),
    svg("text", { x: 2, y: height - bottom }, "0"),
    ...bars,
    ...labels,
  );
}

function modelTable(models, number) {
  if (!models.length) return h("p", { class: "muted" }, "No answers yet.");
  return h("div", { class: "table-wrap" },
    h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["Model", "Messages", "Prompt tokens", "Completion tokens", "Avg. first token", "Errors"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, models.map((m) =>
        h("tr", {},
          h("th", { scope: "row" }, m.model || "unknown"),
          h("td", {}, number.format(m.messages)),
          h("td", {}, number.format(m.promptTokens)),
          h("td", {}, number.format(m.completionTokens)),
          h("td", {}, m.avgTimeToFirstTokenMs == null ? "–" : `${number.format(Math.round(m.avgTimeToFirstTokenMs))} ms`),
          h("td", {}, `${(100 * (m.errorRate || 0)).toFixed(1)} %`),
        ))),
    ));
}

// ---------------------------------------------------------------- wiring

function wireStaticHandlers() {
  $("signin-dev").addEventListener("submit", devLogin);
  $("signin-email").addEventListener("submit", emailLink);
  $("signout-button").addEventListener("click", signOut);
  $("menu-button").addEventListener("click", toggleSidebar);
  $("settings-button").addEventListener("click", openSettings);
  $("preferences-form").addEventListener("change", savePreference);
  $("revoke-others").addEventListener("click", revokeOthers);
  $("delete-account").addEventListener("click", deleteAccount);
  $("search-form").addEventListener("submit", runSearch);
  $("search-input").addEventListener("input", scheduleSearch);
  $("load-more").addEventListener("click", () => loadConversationList(false));
  $("load-earlier").addEventListener("click", () => loadEarlier());
  $("composer").addEventListener("submit", sendMessage);
  $("stop-button").addEventListener("click", stopAnswer);
  $("stats-days").addEventListener("change", () => guarded(renderStats));
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    } else if (event.key === "Escape" && state.live) {
      stopAnswer();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && $("sidebar").classList.contains("open")) closeSidebar();
  });
  window.addEventListener("hashchange", () => route().catch(reportError));
  // Keyset paging: the next page loads as the end of the list scrolls into view.
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !$("conversation-list").hidden) loadConversationList(false);
  }, { root: $("sidebar") }).observe($("list-sentinel"));
}

function reportError(err) {
  showChatError(err.message || String(err));
}

window.addEventListener("unhandledrejection", (event) => reportError(event.reason));
boot();
