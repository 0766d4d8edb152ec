// An edit through the AI SDK's own Chat: sendMessage({ text, messageId }) replaces the message
// in the client's list, drops what followed, and sends `trigger: "submit-message"` with that
// `messageId` through the stock DefaultChatTransport (the whole list in the body).
// Usage: node edit.mjs <ai major> <base URL> <bearer token> <chat id>
// Prints one JSON line: the client's messages after the edit, and any error.
import process from "node:process";

const [major, baseUrl, token, chatId] = process.argv.slice(2);
const { AbstractChat, DefaultChatTransport } = await import(`ai${major}`);

// The smallest ChatState (what @ai-sdk/react keeps in React state).
class State {
  constructor() {
    this.messages = [];
    this.status = "ready";
    this.error = undefined;
  }
  pushMessage = (message) => {
    this.messages = this.messages.concat(message);
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  };
  snapshot = (value) => structuredClone(value);
}

class Chat extends AbstractChat {
  constructor(options) {
    super({ ...options, state: new State() });
  }
}

const errors = [];
const chat = new Chat({
  id: chatId,
  transport: new DefaultChatTransport({
    api: `${baseUrl}/api/chat`,
    headers: { authorization: `Bearer ${token}` },
  }),
  onError: (error) => errors.push(String(error)),
});

await chat.sendMessage({ text: "First question" });
await chat.sendMessage({ text: "Second question" });
const edited = chat.messages[2].id;
await chat.sendMessage({ text: "Second question, edited", messageId: edited });
const text = (m) => m.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
console.log(
  JSON.stringify({
    edited,
    errors,
    messages: chat.messages.map((m) => ({ id: m.id, role: m.role, text: text(m) })),
  }),
);
