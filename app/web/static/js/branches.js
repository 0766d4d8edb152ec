// Branches of the open conversation (issue 23 item 2). A message that has siblings (the other
// edits of a question, the other versions of an answer) shows "‹ 2 / 3 ›"; choosing one asks
// the server to show that branch, so the next message continues it. A question of yours can be
// edited: the edit is answered in a new branch and the old branch stays, one click away.
// Clicks are handled in chat.js (which loads and sends); this module builds and asks.

import { api } from "./api.js";
import { h } from "./dom.js";
import { state } from "./state.js";

/** The "‹ i / n ›" group of a message with siblings, or null. */
export function branchSwitcher(message) {
  const ids = message.siblingIds || [];
  if (ids.length < 2) return null;
  const index = message.siblingIndex;
  const user = message.role === "user";
  const noun = user ? "edit" : "version";
  const step = (n, label, text) =>
    h("button", { type: "button", "aria-label": label, disabled: n < 0 || n >= ids.length, dataset: { branch: ids[n] ?? "" } }, text);
  return h("span", { class: "versions", role: "group", "aria-label": user ? "Edits of this message" : "Versions of this answer" },
    step(index - 1, `Previous ${noun}`, "‹"),
    h("span", {}, `${index + 1} / ${ids.length}`),
    step(index + 1, `Next ${noun}`, "›"),
  );
}

/** Show the branch through `messageId` (down to its newest answer); the conversation. */
export function switchBranch(messageId) {
  const id = encodeURIComponent(state.conversationId);
  return api("POST", `/api/conversations/${id}/branch`, { messageId });
}

/** The edit box that replaces a question's text while it is being edited. */
export function editForm(message) {
  const input = h("textarea", { class: "edit-input", rows: "3", "aria-label": "Edit your message", required: true });
  input.value = message.content;
  const form = h("form", { class: "edit-form", dataset: { messageId: message.id } },
    input,
    h("div", { class: "message-actions" },
      h("button", { type: "submit" }, "Save and answer"),
      h("button", { type: "button", class: "edit-cancel" }, "Cancel"),
    ),
  );
  queueMicrotask(() => input.focus());
  return form;
}

/** The messages shown while an edit is answered: the branch up to the edited question's
 *  parent, then the new text in its place. */
export function messagesBeforeEdit(messageId, text) {
  const at = state.messages.findIndex((m) => m.id === messageId);
  const kept = at >= 0 ? state.messages.slice(0, at) : state.messages;
  const optimistic = { id: `local-edit-${messageId}`, role: "user", content: text, createdAt: new Date().toISOString(), status: "complete" };
  return [...kept, optimistic];
}

/** The body of an edit as the AI SDK's sendMessage({text, messageId}) sends it. */
export function editBody(conversationId, messageId, text, model) {
  const message = { id: messageId, role: "user", parts: [{ type: "text", text }] };
  return { id: conversationId, trigger: "submit-message", messageId, message, model };
}
