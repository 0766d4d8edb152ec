// The AI SDK's own chat transport sending a user message with `file` parts, as `useChat`'s
// sendMessage({ text, files }) builds them: one image as a `data:` URL (what the SDK makes of
// a picked file) and one by the URL POST /api/files returned.
// Usage: node files.mjs <ai major> <base URL> <bearer token> <chat id> <model> <file URL> <png base64>
// Prints one JSON line: the chunk types, the answer's text and any errors.
import process from "node:process";

const [major, baseUrl, token, chatId, model, fileUrl, pngBase64] = process.argv.slice(2);
const { DefaultChatTransport, readUIMessageStream } = await import(`ai${major}`);

const transport = new DefaultChatTransport({
  api: `${baseUrl}/api/chat`,
  headers: { authorization: `Bearer ${token}` },
  body: { model },
  prepareSendMessagesRequest: ({ id, messages, body }) => ({ body: { ...body, id, message: messages.at(-1) } }),
});
const question = {
  id: `files-${chatId}`, // a new message id per chat: a repeated one gets the earlier answer
  role: "user",
  parts: [
    { type: "file", mediaType: "image/png", filename: "inline.png", url: `data:image/png;base64,${pngBase64}` },
    { type: "file", mediaType: "image/png", filename: "uploaded.png", url: `${baseUrl}${fileUrl}` },
    { type: "text", text: "What is in these pictures?" },
  ],
};
const stream = await transport.sendMessages({
  chatId,
  messages: [question],
  trigger: "submit-message",
  messageId: undefined,
  abortSignal: undefined,
});
const errors = [];
let message = null;
for await (const m of readUIMessageStream({ stream, onError: (e) => errors.push(String(e)) })) {
  message = m;
}
const text = (message?.parts || []).filter((p) => p.type === "text").map((p) => p.text).join("");
console.log(JSON.stringify({ text, errors, status: message?.metadata?.status ?? null }));
