// The messages of the open conversation as shown: the branch the server shows, Markdown
// answers with the model's reasoning folded above them, status lines, the switch between
// branches and the edit box (branches.js), reactions, and the bubble of an answer being written.

import { api } from "./api.js";
import { branchSwitcher, editForm } from "./branches.js";
import { $, h } from "./dom.js";
import { messageFiles } from "./files.js";
import { renderMarkdown } from "./markdown.js";
import { guarded } from "./session.js";
import { formatTime, state } from "./state.js";

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

/** Scroll to a search hit and mark it (until the next render). */
export function focusMessage(messageId) {
  const el = document.getElementById(`m-${messageId}`);
  if (!el) return;
  el.scrollIntoView({ block: "center" });
  el.classList.add("target");
  el.focus({ preventScroll: true });
}

export function scrollToEnd() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

/** Messages as shown: the branch of the conversation the server shows, oldest first. */
function visibleMessages() {
  return state.messages.map((message) => ({ message }));
}

export function renderMessages() {
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

function messageElement({ message }, isLastAnswer) {
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
  const editing = user && state.editing === message.id;
  let body;
  if (editing) body = editForm(message);
  else if (user) body = h("div", { class: "message-body" }, message.content);
  else body = h("div", { class: "message-body" }, renderMarkdown(message.content));
  const thoughts = !user && message.reasoning ? reasoningElement(message.reasoning).el : null;
  const files = user ? messageFiles(message) : null;
  const el = h("article", { class: `message ${message.role}`, id: `m-${message.id}`, tabindex: "-1", dataset: { status: message.status } }, head, thoughts, files, body);
  if (!user) {
    const status = statusElement(message);
    if (status) el.append(status);
    el.append(answerActions(message, isLastAnswer));
  } else if (!editing && !message.id.startsWith("local-")) {
    // Its clicks are handled in chat.js, like the answers' Regenerate.
    el.append(h("div", { class: "message-actions" },
      branchSwitcher(message),
      h("button", { type: "button", class: "edit-message", "aria-label": "Edit this message", dataset: { messageId: message.id } }, "✎ Edit"),
    ));
  }
  return el;
}

function statusElement(message) {
  const text = STATUS_TEXT[message.status];
  if (!text) return null;
  const detail = message.status === "error" && message.errorCode ? ` (${message.errorCode})` : "";
  return h("p", { class: `message-status${message.status === "error" ? " error" : ""}`, dataset: { status: message.status } }, text + detail);
}

function answerActions(message, isLastAnswer) {
  const actions = h("div", { class: "message-actions" });
  const switcher = branchSwitcher(message);
  if (switcher) actions.append(switcher);
  for (const [type, label] of REACTIONS) {
    const pressed = (message.reactions || []).includes(type);
    actions.append(
      h("button", { type: "button", "aria-pressed": String(pressed), onclick: (e) => react(message, type, e.currentTarget) }, label),
    );
  }
  if (isLastAnswer && !message.supersededAt) {
    // Its click is handled in chat.js, which sends answers (this module only shows them).
    actions.append(h("button", { type: "button", class: "regenerate" }, "↻ Regenerate"));
  }
  return actions;
}

async function react(message, type, button) {
  const on = !(message.reactions || []).includes(type);
  await guarded(() => api(on ? "PUT" : "DELETE", `/api/messages/${encodeURIComponent(message.id)}/reactions/${type}`));
  message.reactions = on ? [...(message.reactions || []), type] : message.reactions.filter((r) => r !== type);
  button.setAttribute("aria-pressed", String(on));
}

export function showChatError(text) {
  const box = $("chat-error");
  box.hidden = !text;
  box.textContent = text || "";
}

/** The model's reasoning, folded: shown as plain text (it is untrusted model output). */
function reasoningElement(text) {
  const reasoningText = h("div", { class: "reasoning-text" }, text);
  const el = h("details", { class: "reasoning" }, h("summary", {}, "Reasoning"), reasoningText);
  return { el, reasoningText };
}

/** A bubble for the answer being streamed, filled as deltas arrive. */
export function liveBubble() {
  const body = h("div", { class: "message-body cursor" });
  const status = h("p", { class: "message-status live", role: "status" }, "Answering…");
  const model = h("span", {});
  const { el: reasoning, reasoningText } = reasoningElement("");
  reasoning.hidden = true;
  const el = h("article", { class: "message assistant live", tabindex: "-1", dataset: { status: "streaming" } },
    h("div", { class: "message-head" }, h("strong", {}, "Assistant"), model), reasoning, body, status);
  return { el, body, status, model, reasoning, reasoningText };
}
