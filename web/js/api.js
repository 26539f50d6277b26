// Talking to the controller's API: JSON in and out, the session's CSRF token on every
// change, and errors as ApiError carrying the server's {"error", "field"}.

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.field = body ? body.field : undefined;
    this.problems = body && body.problems ? body.problems : [];
  }
}

/** The logged-in user: {name, role, csrf_token}, or null. */
export const session = { user: null };

// In order; "bms" reads what a viewer reads and may write the BMS caps, which of the
// roles above it only "admin" may (see the BMS view).
const ROLES = ["viewer", "bms", "operator", "admin"];

/** Whether the logged-in user has at least `role`. */
export function can(role) {
  const user = session.user;
  return !!user && ROLES.indexOf(user.role) >= ROLES.indexOf(role);
}

async function send(method, path, body, contentType) {
  const headers = {};
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
  }
  if (method !== "GET" && session.user && session.user.csrf_token) {
    headers["X-CSRF-Token"] = session.user.csrf_token;
  }
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  if (text && (response.headers.get("Content-Type") || "").includes("json")) {
    data = JSON.parse(text);
  }
  if (!response.ok) {
    if (response.status === 401 && session.user) {
      session.user = null;
      window.dispatchEvent(new CustomEvent("session-lost"));
    }
    throw new ApiError(response.status, data);
  }
  return data === null ? text : data;
}

export const api = {
  get: (path) => send("GET", path),
  post: (path, body) => send("POST", path, body === undefined ? {} : body),
  put: (path, body) => send("PUT", path, body),
  del: (path) => send("DELETE", path),
  csv: (path, text) => send("POST", path, text, "text/csv"),
};

/** Asks who is logged in; fills `session.user`. */
export async function loadSession() {
  const answer = await api.get("/api/v1/auth/session");
  session.user = answer.authenticated ? answer : null;
  return session.user;
}

export async function login(name, password) {
  session.user = await api.post("/api/v1/auth/login", { name, password });
  return session.user;
}

export async function logout() {
  try {
    await api.post("/api/v1/auth/logout");
  } finally {
    session.user = null;
  }
}

/** A path with a query string from the non-empty values of `params`. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const text = q.toString();
  return text ? `${path}?${text}` : path;
}
