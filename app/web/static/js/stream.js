// An answer being written: the request, the stream of UI message chunks painted into a live
// bubble (the model's reasoning folded above the answer, a new title in the header), Stop,
// and leaving a stream without stopping it.

import { api, ApiError, sseFrames } from "./api.js";
import { $, announce } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { liveBubble, renderMessages, scrollToEnd, showChatError } from "./messages.js";
import { guarded } from "./session.js";
import { showNewTitle } from "./sidebar.js";
import { state } from "./state.js";

function setBusy(busy) {
  $("send-button").disabled = busy;
  $("stop-button").hidden = !busy;
  $("composer").setAttribute("aria-busy", String(busy));
}

/**
 * Run one streamed answer; false when the request was refused before anything started.
 * `refresh(conversationId, isNew)` reloads what the answer changed, once it has ended.
 */
export async function stream(request, conversationId, { isNew = false, resume = false, refresh }) {
  const controller = new AbortController();
  const live = { conversationId, controller, bubble: null, parts: null, text: "", reasoning: "", messageId: null, stopped: false };
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
      await refresh(conversationId, false);
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
  await refresh(live.conversationId, isNew);
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
        live.reasoning = "";
        renderMessages(); // hides the stored row of this answer, if it is listed
        paint(live);
        break;
      case "text-delta":
        live.text += chunk.delta || "";
        paint(live);
        break;
      case "reasoning-delta":
        live.reasoning += chunk.delta || "";
        live.parts.reasoning.hidden = false;
        live.parts.reasoningText.textContent = live.reasoning;
        break;
      case "data-chat-title":
        if (typeof chunk.data === "string") showNewTitle(live.conversationId, chunk.data);
        break;
      case "finish":
        live.status = chunk.messageMetadata?.status;
        break;
      case "error":
        showChatError(chunk.errorText || "The answer failed.");
        break;
      default:
        break; // text-start, text-end, reasoning-start/-end and metadata need nothing here
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

export async function stopAnswer() {
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
export function detachLive() {
  const live = state.live;
  if (!live) return;
  state.live = null;
  setBusy(false);
  live.controller.abort();
}
