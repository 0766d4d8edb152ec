// The page's modal dialogs: waiting for one to close, and the shared "Are you sure?" box.

import { $ } from "./dom.js";

export function closed(dialog) {
  return new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
}

/** Ask before something that cannot be undone; `typed` must be typed back to enable the button. */
export async function confirmAction({ title, text, button, typed }) {
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
