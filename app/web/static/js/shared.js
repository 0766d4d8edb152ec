// The read-only view of a shared conversation at /s/{token}, for anyone holding the link: no
// sign-in. A signed-in reader can continue it as a conversation of their own (a copy).

import { api, ApiError } from "./api.js";
import { $, h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { formatTime } from "./state.js";

const RETURN_KEY = "chatwithme.shared-link";
const STATUS_TEXT = {
  cancelled: "Stopped: the answer was cut short.",
  incomplete: "Incomplete: the model stopped partway.",
  error: "Failed.",
};

/** The token when the page is a share link (`/s/{token}`), else null. */
export function sharedToken() {
  const match = /^\/s\/([^/]+)$/.exec(location.pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

export async function showShared(token) {
  $("loading").hidden = true;
  $("shared-view").hidden = false;
  const link = `/api/shared/${encodeURIComponent(token)}`;
  let shared, session;
  try {
    [shared, session] = await Promise.all([
      api("GET", link),
      api("GET", "/api/auth/session").catch(() => null),
    ]);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      $("shared-note").hidden = true;
      $("shared-missing").hidden = false;
      document.title = "Not found · ChatWithMe";
    } else {
      showError(err.message);
    }
    return;
  }
  const title = shared.title || "Shared conversation";
  document.title = `${title} · ChatWithMe`;
  $("shared-title").textContent = title;
  $("shared-note").textContent = `A read-only copy, shared ${formatTime(shared.sharedAt)}; later messages are not in it.`;
  $("shared-messages").replaceChildren(...shared.messages.map(messageElement));
  $("shared-copy").hidden = !session;
  $("shared-signin").hidden = Boolean(session);
  $("shared-copy").onclick = () => copy(link);
  $("shared-signin").onclick = () => remember(location.pathname);
}

function remember(path) {
  try {
    sessionStorage.setItem(RETURN_KEY, path);
  } catch {
    /* storage disabled: the reader opens the link again after signing in */
  }
}

/** After a sign-in that started from a shared link: back to it (true when leaving). */
export function returnToSharedLink() {
  let path = null;
  try {
    path = sessionStorage.getItem(RETURN_KEY);
    sessionStorage.removeItem(RETURN_KEY);
  } catch {
    return false;
  }
  if (!path || !/^\/s\/[A-Za-z0-9_-]+$/.test(path)) return false;
  location.assign(path);
  return true;
}

async function copy(link) {
  $("shared-copy").disabled = true;
  try {
    const conversation = await api("POST", `${link}/copy`);
    location.assign(`/#/c/${encodeURIComponent(conversation.id)}`);
  } catch (err) {
    $("shared-copy").disabled = false;
    showError(err.message);
  }
}

function showError(text) {
  $("shared-error").hidden = false;
  $("shared-error").textContent = text;
}

function messageElement(message) {
  const user = message.role === "user";
  const body = h("div", { class: "message-body" });
  if (user) body.textContent = message.content;
  else body.append(renderMarkdown(message.content));
  const status = STATUS_TEXT[message.status];
  return h("article", { class: `message ${user ? "user" : "assistant"}`, dataset: { status: message.status } },
    h("div", { class: "message-head" },
      h("strong", {}, user ? "User" : "Assistant"),
      !user && message.model ? h("span", {}, message.model) : null,
      h("time", { datetime: message.createdAt }, formatTime(message.createdAt)),
    ),
    body,
    status ? h("p", { class: "message-status" }, status) : null,
  );
}
