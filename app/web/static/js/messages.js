// The messages of the open conversation as shown: one version per answer slot, Markdown
// answers with the model's reasoning folded above them, status lines, versions, reactions,
// and the bubble of an answer being written.

import { api } from "./api.js";
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
  const thoughts = !user && message.reasoning ? reasoningElement(message.reasoning).el : null;
  const files = user ? messageFiles(message) : null;
  const el = h("article", { class: `message ${message.role}`, id: `m-${message.id}`, tabindex: "-1", dataset: { status: message.status } }, head, thoughts, files, body);
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
