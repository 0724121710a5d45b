// The playground's client for stackkit's /v1 API (the same routes the openai SDK calls). The API key lives
// only in this module's memory: never in storage, the URL or the page's markup.

const BASE = new URL("../v1/", location.href);
let apiKey = "";

export function setKey(key) {
  apiKey = key.trim();
}

function headers(extra = {}) {
  return apiKey ? { ...extra, authorization: `Bearer ${apiKey}` } : extra;
}

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? null;
    this.type = error?.type ?? null;
  }
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: the status says enough */ }
  return new ApiError(response.status, body?.error);
}

export function url(path) {
  return new URL(path.replace(/^\//, ""), BASE);
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const response = await fetch(url(path), {
    method, signal,
    headers: headers(body === undefined ? {} : { "content-type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

// POSTs `body` and yields each server-sent event's JSON (chat chunks or Responses events).
export async function* stream(path, body, signal) {
  const response = await fetch(url(path), {
    method: "POST", signal, headers: headers({ "content-type": "application/json", accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data || data === "[DONE]") continue;
      const event = JSON.parse(data);
      if (event.error && !event.type) throw new ApiError(500, event.error);
      yield event;
    }
  }
}

// Uploads a file (multipart, as the SDK does) and reports progress in [0, 1].
export function upload(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url("files"));
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* reported below */ }
      if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
      else reject(new ApiError(xhr.status, body?.error));
    };
    xhr.onerror = () => reject(new ApiError(0, { message: "the upload failed: the server could not be reached" }));
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file, file.name);
    xhr.send(form);
  });
}
