// The AI SDK's own chat transport against the API, as `useChat({ resume: true })` uses it.
// Usage: node client.mjs <ai major> <base URL> <bearer token> <chat id>
// 1. sends a question (only the last message, as the README's frontend example does),
//    reads two text deltas and aborts, like a tab that is closed;
// 2. re-attaches with reconnectToStream (GET {api}/{chatId}/stream) and reads the message to
//    its end through readUIMessageStream, which validates every chunk;
// 3. re-attaches again once the answer has ended: null (204).
// Prints one JSON line with what it saw.
import process from "node:process";

const [major, baseUrl, token, chatId] = process.argv.slice(2);
const { DefaultChatTransport, readUIMessageStream } = await import(`ai${major}`);

const transport = new DefaultChatTransport({
  api: `${baseUrl}/api/chat`,
  headers: { authorization: `Bearer ${token}` },
  prepareSendMessagesRequest: ({ id, messages }) => ({ body: { id, message: messages.at(-1) } }),
});
const question = {
  id: `question-${major}`,
  role: "user",
  parts: [{ type: "text", text: "Tell me a story" }],
};

const closedTab = new AbortController();
const first = await transport.sendMessages({
  chatId,
  messages: [question],
  trigger: "submit-message",
  messageId: undefined,
  abortSignal: closedTab.signal,
});
const firstChunks = [];
const reader = first.getReader();
while (firstChunks.filter((c) => c.type === "text-delta").length < 2) {
  const { value, done } = await reader.read();
  if (done) break;
  firstChunks.push(value);
}
closedTab.abort();
await reader.cancel().catch(() => {});

const errors = [];
const resumed = await transport.reconnectToStream({ chatId });
let message = null;
if (resumed !== null) {
  for await (const m of readUIMessageStream({ stream: resumed, onError: (e) => errors.push(String(e)) })) {
    message = m;
  }
}
const after = await transport.reconnectToStream({ chatId });
console.log(JSON.stringify({ firstChunks, message, errors, afterIsNull: after === null }));
