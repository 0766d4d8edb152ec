// The API client: same-origin fetch with the session cookie, the CSRF header on every
// unsafe request (as a NextAuth frontend sends it), problem details turned into errors.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export async function csrf() {
  if (csrfToken === null) {
    const response = await fetch("/api/auth/csrf", { credentials: "same-origin" });
    csrfToken = (await response.json()).csrfToken;
  }
  return csrfToken;
}

async function errorOf(response) {
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    /* not JSON */
  }
  return new ApiError(response.status, problem);
}

/** Send a request; returns the decoded JSON (null for 204), or the response when `raw`. */
export async function api(method, path, body, { raw = false, signal, accept } = {}, retried = false) {
  const headers = { accept: accept || "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["x-csrf-token"] = await csrf();
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 403 && !retried && /CSRF/.test(error.message)) {
      csrfToken = null; // the CSRF cookie was cleared or replaced: fetch a new token, once
      return api(method, path, body, { raw, signal, accept }, true);
    }
    throw error;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

/** The frames of a server-sent event stream: `{event, data}` with data as text. */
export async function* sseFrames(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const raw = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      const data = [];
      for (const line of raw.split(/\r?\n/)) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}
