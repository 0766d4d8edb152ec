// The open conversation's own settings (system prompt, model, temperature, output limit) and
// a new title from the title model. Blank fields go back to the default: your preference,
// else the server's.

import { api } from "./api.js";
import { closed } from "./dialogs.js";
import { $, announce } from "./dom.js";
import { guarded } from "./session.js";
import { fillModelSelect } from "./settings.js";
import { showNewTitle } from "./sidebar.js";
import { state } from "./state.js";

function path(suffix = "") {
  return `/api/conversations/${encodeURIComponent(state.conversationId)}${suffix}`;
}

function fill(detail) {
  const select = $("conv-model");
  fillModelSelect(select, detail.model || "");
  select.prepend(new Option("Default", "", false, !detail.model));
  $("conv-system-prompt").value = detail.systemPrompt ?? "";
  $("conv-temperature").value = detail.temperature ?? "";
  $("conv-max-tokens").value = detail.maxOutputTokens ?? "";
  $("conv-status").textContent = "";
}

/** Blank is null (the default); the system prompt's blank too, unless "none" is ticked. */
function formBody() {
  const number = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));
  const prompt = $("conv-system-prompt").value;
  return {
    systemPrompt: $("conv-no-prompt").checked ? "" : prompt.trim() ? prompt : null,
    model: $("conv-model").value || null,
    temperature: number("conv-temperature"),
    maxOutputTokens: number("conv-max-tokens"),
  };
}

async function openConversationSettings() {
  if (!state.conversationId) return;
  const detail = await guarded(() => api("GET", `${path()}?limit=1`));
  if (!detail) return;
  fill(detail);
  $("conv-no-prompt").checked = detail.systemPrompt === "";
  const dialog = $("conv-settings-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  await closed(dialog);
}

async function save(event) {
  event.preventDefault();
  try {
    const saved = await api("PATCH", path(), formBody());
    fill(saved);
    $("conv-no-prompt").checked = saved.systemPrompt === "";
    if (saved.model) $("model-select").value = saved.model; // the composer sends its model
    $("conv-status").textContent = "Saved: the next answer uses these settings.";
  } catch (err) {
    $("conv-status").textContent = err.message; // a 400 names the field and the limit
  }
}

async function newTitle() {
  $("conv-status").textContent = "Asking the title model…";
  try {
    const made = await api("POST", path("/title"));
    showNewTitle(made.id, made.title);
    $("conv-status").textContent = `New title: ${made.title}`;
    announce("The conversation has a new title.");
  } catch (err) {
    $("conv-status").textContent = err.message;
  }
}

export function wireConversationSettings() {
  $("conv-settings-button").addEventListener("click", openConversationSettings);
  $("conv-settings-form").addEventListener("submit", save);
  $("conv-new-title").addEventListener("click", newTitle);
}
