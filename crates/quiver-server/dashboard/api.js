// Calls to Quiver's REST API, with the key the user gave (kept for the browser session).

const KEY = "quiver-api-key";

export const session = { key: sessionStorage.getItem(KEY), access: "full", auth: false };

export function setKey(key) {
  session.key = key;
  sessionStorage.setItem(KEY, key);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Calls `method path` with a JSON body (if any); resolves to the envelope's `result`, rejects
// with the server's own error message.
export async function call(method, path, body) {
  const headers = {};
  if (session.key) headers["api-key"] = session.key;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let json = null;
  try {
    json = await response.json();
  } catch (_) {
    // Not JSON: reported below by status.
  }
  if (!response.ok) {
    const message = json && json.status && json.status.error ? json.status.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return json ? json.result : null;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});
export const put = (path, body) => call("PUT", path, body ?? {});
export const del = (path) => call("DELETE", path);

export const enc = encodeURIComponent;

// The collection's info (GET /collections/{name}).
export const info = (name) => get(`/collections/${enc(name)}`);

// Names of the collections.
export async function collectionNames() {
  const r = await get("/collections");
  return r.collections.map((c) => c.name).sort();
}
