// What the views share: the signed-in user's data as the page holds it, and the few things
// that follow from it (dates in the user's language, the title of the open conversation).

export const state = {
  user: null,
  models: [],
  aliases: {},
  serverDefault: null,
  prefs: null,
  conversations: [],
  listCursor: null,
  listLoading: false,
  listArchived: false, // the archived view instead of the list
  listTag: "", // the list's tag filter (a tag id)
  tags: [],
  conversationTags: [], // the open conversation's
  conversationId: null,
  messages: [],
  messagesCursor: null,
  editing: null, // the id of the question being edited
  live: null, // the answer being streamed: {conversationId, controller, bubble, ...}
};

/** Forget the user's data (signed out, session ended, account deleted). */
export function resetState() {
  Object.assign(state, {
    user: null, prefs: null, conversations: [], listCursor: null, conversationId: null,
    messages: [], messagesCursor: null, live: null, tags: [], listTag: "", listArchived: false,
    editing: null,
  });
  document.getElementById("conversation-list").replaceChildren();
  document.getElementById("message-list").replaceChildren();
}

export function dateFormat(options) {
  return new Intl.DateTimeFormat(state.prefs?.language || undefined, options);
}

export function formatTime(iso) {
  if (!iso) return "";
  return dateFormat({ dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

/** The open conversation's title, in the chat header and the browser tab. */
export function setTitle(title) {
  document.getElementById("chat-title").textContent = title || (state.conversationId ? "Untitled conversation" : "New chat");
  document.title = title ? `${title} · ChatWithMe` : "ChatWithMe";
}
