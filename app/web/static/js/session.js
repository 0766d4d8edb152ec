// The session: the sign-in screen (Google, email link, dev login), signing out, and the
// rule that a 401 anywhere means the session ended.

import { api, ApiError } from "./api.js";
import { $ } from "./dom.js";
import { resetState, state } from "./state.js";

let onSignedIn = null;

export function showFatal(err) {
  $("loading").textContent = `The server did not answer: ${err.message}`;
}

export async function showSignIn(message) {
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
    await onSignedIn();
  } catch (err) {
    await showSignIn(err.message);
  }
}

async function emailLink(event) {
  event.preventDefault();
  const email = $("email-address").value.trim();
  try {
    const result = await api("POST", "/api/auth/signin/email", { email, callbackUrl: "/" });
    await showSignIn(`${result.message} (Without SMTP_URL, in development, the email is written to DATA_DIR/outbox.)`);
  } catch (err) {
    await showSignIn(err.message);
  }
}

export async function signOut() {
  if (state.live) state.live.controller.abort();
  try {
    await api("POST", "/api/auth/signout");
  } finally {
    resetState();
    history.replaceState(null, "", "#/");
    await showSignIn("Signed out.");
  }
}

/** A 401 anywhere means the session ended: back to the sign-in screen. */
export async function guarded(work) {
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

/** The sign-in forms and the sign-out button; `signedIn` starts the app after a sign-in. */
export function wireSession(signedIn) {
  onSignedIn = signedIn;
  $("signin-dev").addEventListener("submit", devLogin);
  $("signin-email").addEventListener("submit", emailLink);
  $("signout-button").addEventListener("click", signOut);
}
