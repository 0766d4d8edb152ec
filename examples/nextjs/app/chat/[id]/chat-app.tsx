"use client";

import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport, type UIMessage } from "ai";
import Link from "next/link";
import { useCallback, useEffect, useMemo, useState } from "react";

type Props = { apiBase: string; chatId: string; email: string };
type Metadata = { status?: string; model?: string | null; conversationId?: string };
type ChatMessage = UIMessage<Metadata>;
type StoredMessage = {
  id: string;
  role: string;
  content: string;
  status: string;
  model: string | null;
  supersededAt: string | null;
};
type Summary = { id: string; title: string | null; lastMessage: string | null };
type Found = { conversation: { id: string; title: string | null }; matches: { snippet: string }[] };

// Every call carries the cookies (same origin, or the API's origin of the same site with
// CORS_ALLOWED_ORIGINS); unsafe methods also carry the CSRF token.
function api(apiBase: string, csrf?: string) {
  return (path: string, init: RequestInit = {}) =>
    fetch(`${apiBase}${path}`, {
      ...init,
      credentials: "include",
      headers: { ...(csrf ? { "x-csrf-token": csrf } : {}), ...(init.headers ?? {}) },
    });
}

// Loads what the chat needs before useChat starts: the CSRF token and the stored messages.
export function ChatApp({ apiBase, chatId, email }: Props) {
  const [csrf, setCsrf] = useState<string | null>(null);
  const [initial, setInitial] = useState<ChatMessage[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const call = api(apiBase);
    (async () => {
      // With rewrites this is Auth.js's own /api/auth/csrf; cross-origin, the API's. Either
      // way the token is the one of the shared authjs.csrf-token cookie.
      const token = await call("/api/auth/csrf");
      if (!token.ok) throw new Error(`csrf: ${token.status}`);
      setCsrf((await token.json()).csrfToken);
      const stored = await call(`/api/conversations/${chatId}?limit=100`);
      if (stored.status === 404) return setInitial([]);
      if (!stored.ok) throw new Error(`conversation: ${stored.status} ${await stored.text()}`);
      const messages: StoredMessage[] = (await stored.json()).messages;
      setInitial(
        messages
          // An answer still being written is left to useChat's resume, which replays it.
          .filter((m) => m.supersededAt === null && m.status !== "streaming")
          .map((m) => ({
            id: m.id,
            role: m.role === "user" ? "user" : "assistant",
            parts: [{ type: "text", text: m.content }],
            metadata: { status: m.status, model: m.model },
          })),
      );
    })().catch((e) => setError(String(e)));
  }, [apiBase, chatId]);

  if (error) return <main className="error" id="load-error">{error}</main>;
  if (csrf === null || initial === null) return <main>Loading…</main>;
  return <Chat apiBase={apiBase} chatId={chatId} email={email} csrf={csrf} initial={initial} />;
}

function Chat({ apiBase, chatId, email, csrf, initial }: Props & { csrf: string; initial: ChatMessage[] }) {
  const call = useMemo(() => api(apiBase, csrf), [apiBase, csrf]);
  const [conversations, setConversations] = useState<Summary[]>([]);
  const [input, setInput] = useState("");
  const [query, setQuery] = useState("");
  const [found, setFound] = useState<Found[] | null>(null);

  const transport = useMemo(
    () =>
      new DefaultChatTransport<ChatMessage>({
        api: `${apiBase}/api/chat`,
        credentials: "include",
        headers: { "x-csrf-token": csrf },
        // The API keeps the history: send only the new message.
        prepareSendMessagesRequest: ({ id, messages }) => ({ body: { id, message: messages.at(-1) } }),
      }),
    [apiBase, csrf],
  );

  const refreshList = useCallback(async () => {
    const response = await call("/api/conversations?limit=20");
    if (response.ok) setConversations((await response.json()).conversations);
  }, [call]);

  const { messages, sendMessage, status, stop, error } = useChat<ChatMessage>({
    id: chatId,
    messages: initial,
    transport,
    resume: true, // GET /api/chat/{id}/stream: an answer still being written is replayed
    onFinish: () => void refreshList(),
  });

  useEffect(() => void refreshList(), [refreshList]);

  const busy = status === "submitted" || status === "streaming";

  async function stopAnswer() {
    // The API stops the generation and keeps the partial answer (stored as cancelled); the
    // stream then ends by itself, its last part carrying that status, which aborting it here
    // could cut off. stop() alone would only close this tab's connection: it is the fallback
    // when the API had nothing running to stop or could not be reached.
    const stopped = await call(`/api/chat/${chatId}/stop`, { method: "POST" })
      .then(async (response) => response.ok && (await response.json()).stopped === true)
      .catch(() => false);
    if (!stopped) stop();
    void refreshList();
  }

  async function search(event: React.FormEvent) {
    event.preventDefault();
    const response = await call(`/api/conversations/search?q=${encodeURIComponent(query)}`);
    setFound(response.ok ? (await response.json()).results : []);
  }

  return (
    <main className="layout">
      <aside>
        <p>{email}</p>
        <p>
          <a href="/chat">New chat</a>
        </p>
        <form onSubmit={search} id="search">
          <input id="search-input" value={query} onChange={(e) => setQuery(e.target.value)} placeholder="Search" />
        </form>
        {found && (
          <ul id="search-results">
            {found.map((r) => (
              <li key={r.conversation.id}>
                <Link href={`/chat/${r.conversation.id}`}>{r.conversation.title ?? r.conversation.id}</Link>
              </li>
            ))}
          </ul>
        )}
        <ul id="conversations">
          {conversations.map((c) => (
            <li key={c.id}>
              <Link href={`/chat/${c.id}`}>{c.title ?? c.lastMessage ?? c.id}</Link>
            </li>
          ))}
        </ul>
      </aside>
      <section>
        <div id="messages">
          {messages.map((m) => (
            <article key={m.id} className={m.role} data-status={m.metadata?.status ?? ""}>
              {m.parts.map((p, i) => (p.type === "text" ? <span key={i}>{p.text}</span> : null))}
            </article>
          ))}
        </div>
        {error && <p className="error" id="chat-error">{error.message}</p>}
        <p id="chat-status" data-status={status}>{status}</p>
        <form
          className="composer"
          onSubmit={(e) => {
            e.preventDefault();
            if (!input.trim() || busy) return;
            void sendMessage({ text: input });
            setInput("");
          }}
        >
          <input id="composer" value={input} onChange={(e) => setInput(e.target.value)} placeholder="Message" />
          {busy ? (
            <button type="button" id="stop" onClick={stopAnswer}>
              Stop
            </button>
          ) : (
            <button type="submit" id="send">
              Send
            </button>
          )}
        </form>
      </section>
    </main>
  );
}
