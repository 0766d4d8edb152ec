// ChatWithMe web page: sign-in, conversations, search, streamed chat, settings and stats,
// all through the public JSON API with the session cookie.
//
// This entry starts the page and routes `#/...` to a view; each view is a module of its own:
// session.js (sign-in), sidebar.js (list, search), chat.js with messages.js and stream.js,
// settings.js, stats.js, tags.js (tags, pins, the archive), shares.js (share links, yours).
// They share state.js, api.js, dom.js and dialogs.js. A share link (/s/{token}) is shared.js
// alone: read-only, no sign-in.

import { api } from "./api.js";
import { $ } from "./dom.js";
import { newChat, openConversation, wireChat } from "./chat.js";
import { wireConversationSettings } from "./convsettings.js";
import { wireImports } from "./imports.js";
import { showChatError } from "./messages.js";
import { guarded, showFatal, showSignIn, wireSession } from "./session.js";
import { applyPreferences, fillModelSelect, preferredModel, wireSettings } from "./settings.js";
import { closeSidebar, loadConversationList, wireSidebar } from "./sidebar.js";
import { state } from "./state.js";
import { returnToSharedLink, showShared, sharedToken } from "./shared.js";
import { wireShares } from "./shares.js";
import { renderStats, wireStats } from "./stats.js";
import { loadTags, wireTags } from "./tags.js";

// The views: the <section> each shows, and what opening it does with the rest of the path.
// A new view (shares, say) is a module, a <section> in index.html and an entry here.
const VIEWS = {
  stats: { section: "stats-view", open: () => guarded(renderStats) },
  c: {
    section: "chat-view",
    open: ([id, m, messageId]) => (id ? guarded(() => openConversation(id, m === "m" ? messageId : null)) : newChat()),
  },
};
const HOME = { section: "chat-view", open: () => newChat() };

async function boot() {
  const token = sharedToken();
  if (token !== null) {
    await showShared(token);
    return;
  }
  wireSession(startApp);
  wireSidebar();
  wireChat();
  wireSettings();
  wireImports();
  wireConversationSettings();
  wireStats();
  wireTags(() => loadConversationList(true));
  wireShares();
  window.addEventListener("hashchange", () => route().catch(reportError));
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

async function startApp() {
  if (returnToSharedLink()) return; // signed in to continue a shared conversation
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
  await Promise.all([loadConversationList(true), loadTags()]);
  // Shown only now: a message typed earlier would be wiped by the first route().
  $("app").hidden = false;
  await route();
}

async function route() {
  if (!state.user) return;
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, ...rest] = hash.split("/").map(decodeURIComponent);
  const view = Object.hasOwn(VIEWS, name) ? VIEWS[name] : HOME;
  closeSidebar();
  for (const { section } of [...Object.values(VIEWS), HOME]) $(section).hidden = section !== view.section;
  await view.open(rest);
}

function reportError(err) {
  showChatError(err.message || String(err));
}

window.addEventListener("unhandledrejection", (event) => reportError(event.reason));
boot();
