// Settings: preferences (default model, theme, language), sessions, the account's data.
// Also how preferences apply to the page, which start-up needs too.

import { api } from "./api.js";
import { confirmAction } from "./dialogs.js";
import { $, announce, h } from "./dom.js";
import { guarded, showSignIn, signOut } from "./session.js";
import { formatTime, resetState, state } from "./state.js";

const THEME_KEY = "chatwithme.theme";
const LANGUAGES = [
  ["en", "English"], ["de", "Deutsch"], ["es", "Español"], ["fr", "Français"], ["it", "Italiano"],
  ["nl", "Nederlands"], ["pl", "Polski"], ["pt", "Português"], ["sv", "Svenska"], ["tr", "Türkçe"],
  ["ja", "日本語"], ["ko", "한국어"], ["zh", "中文"],
];

export function applyPreferences(prefs) {
  state.prefs = prefs;
  applyTheme(prefs.theme);
  document.documentElement.lang = prefs.language || "en";
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  try {
    localStorage.setItem(THEME_KEY, theme); // boot.js reads it before the first paint
  } catch {
    /* storage disabled */
  }
}

/** The model to preselect: the user's default when available, else the server's. */
export function preferredModel() {
  const wanted = state.prefs?.defaultModel;
  const resolved = state.aliases[wanted] || wanted;
  return state.models.some((m) => m.id === resolved) ? resolved : state.serverDefault;
}

export function fillModelSelect(select, selected, { withAliases = false } = {}) {
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

async function openSettings() {
  const dialog = $("settings-dialog");
  fillModelSelect($("pref-model"), state.prefs.defaultModel, { withAliases: true });
  $("pref-theme").value = state.prefs.theme;
  $("pref-system-prompt").value = state.prefs.systemPrompt ?? "";
  const lang = state.prefs.language;
  const languages = LANGUAGES.some(([code]) => code === lang) ? LANGUAGES : [...LANGUAGES, [lang, lang]];
  $("pref-language").replaceChildren(...languages.map(([code, name]) => h("option", { value: code, selected: code === lang }, name)));
  $("pref-status").textContent = "";
  dialog.showModal();
  await renderSessions();
}

async function savePreference(event) {
  const field = event.target.name;
  // A blank default system prompt is none of yours: the server's applies.
  const value = field === "systemPrompt" && !event.target.value.trim() ? null : event.target.value;
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

export function wireSettings() {
  $("settings-button").addEventListener("click", openSettings);
  $("preferences-form").addEventListener("change", savePreference);
  $("revoke-others").addEventListener("click", revokeOthers);
  $("delete-account").addEventListener("click", deleteAccount);
}
