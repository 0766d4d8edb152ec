// The AI SDK's chat transport reading an answer with reasoning and a title part.
// Usage: node thinking.mjs <ai major> <base URL> <bearer token> <chat id> <model>
// Every chunk passes the SDK's own schema (the transport validates them, and throws on an
// unknown type); the chunks are then read into a message with readUIMessageStream.
// Prints one JSON line: the chunks' types, the data parts, the message and any errors.
import process from "node:process";

const [major, baseUrl, token, chatId, model] = process.argv.slice(2);
const { DefaultChatTransport, readUIMessageStream } = await import(`ai${major}`);

const transport = new DefaultChatTransport({
  api: `${baseUrl}/api/chat`,
  headers: { authorization: `Bearer ${token}` },
  prepareSendMessagesRequest: ({ id, messages }) => ({
    body: { id, message: messages.at(-1), model },
  }),
});
const errors = [];
const chunks = [];
try {
  const stream = await transport.sendMessages({
    chatId,
    messages: [{ id: `thinking-${major}`, role: "user", parts: [{ type: "text", text: "What is 2+2?" }] }],
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
  });
  for await (const chunk of stream) chunks.push(chunk);
} catch (error) {
  errors.push(String(error));
}
let message = null;
const replay = new ReadableStream({
  start(controller) {
    for (const chunk of chunks) controller.enqueue(chunk);
    controller.close();
  },
});
for await (const m of readUIMessageStream({ stream: replay, onError: (e) => errors.push(String(e)) })) {
  message = m;
}
const data = chunks.filter((c) => c.type.startsWith("data-"));
console.log(JSON.stringify({ types: chunks.map((c) => c.type), data, message, errors }));
