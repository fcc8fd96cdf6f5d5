// The data layer: every request the dashboard makes, with the key, and errors sorted
// into what the page does about them (ask for the key, show a banner, say the message).
// A new page with a new route adds one function here.

const KEY_STORAGE = "conveyor-api-key";

/** The server answered with an error body ({"error": {"code", "message"}}). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** 401: no key, or a key the server does not accept. */
export class AuthError extends ApiError {}

/** The server could not be reached at all. */
export class NetworkError extends Error {}

export const key = {
  get: () => sessionStorage.getItem(KEY_STORAGE),
  set: (value) => sessionStorage.setItem(KEY_STORAGE, value),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

/** One request; paths are relative so the dashboard also works under a path prefix. */
export async function request(method, path, { query, body } = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(query || {})) {
    if (value != null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { accept: "application/json" };
  const stored = key.get();
  if (stored) headers["x-api-key"] = stored;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit",
    });
  } catch (error) {
    throw new NetworkError("cannot reach the server at " + url.origin + " (" + error.message + ")");
  }
  let data = null;
  try { data = await response.json(); } catch { /* not JSON: described below */ }
  if (!response.ok) {
    const code = data && data.error ? data.error.code : "http_" + response.status;
    const message = data && data.error ? data.error.message : "HTTP " + response.status + " " + response.statusText;
    throw new (response.status === 401 ? AuthError : ApiError)(response.status, code, message);
  }
  return data;
}

const job = (id) => encodeURIComponent(id);
const named = (name) => encodeURIComponent(name);

/** The key roles, each allowing what the ones before it do (docs/http-api.md, "Key roles"). */
export const ROLES = ["read", "write", "admin"];

/** True when a key of ``role`` may do what needs ``needed``. */
export function allows(role, needed) {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** The HTTP API routes the dashboard uses (docs/http-api.md). */
export const api = {
  stats: () => request("GET", "api/queue/stats"),
  jobs: ({ status, queue, task, group, error, limit = 50, offset = 0 } = {}) =>
    request("GET", "api/queue", { query: { status, queue, task, group, error, limit, offset } }),
  job: (id) => request("GET", "api/jobs/" + job(id)),
  retry: (id, edits) => request("POST", "api/queue/" + job(id) + "/retry", { body: edits }),
  cancel: (id) => request("POST", "api/queue/" + job(id) + "/cancel"),
  remove: (id) => request("DELETE", "api/queue/" + job(id)),
  /** Every failed job matching ``filter`` (the filters of GET /api/queue); dry run: count only. */
  retryMatching: (filter, dryRun) => request("POST", "api/queue/retry", { body: { ...filter, dry_run: dryRun } }),
  deleteMatching: (filter, dryRun) => request("POST", "api/queue/delete", { body: { ...filter, dry_run: dryRun } }),
  actions: (id) => request("GET", "api/actions", { query: { job_id: id, limit: 100 } }),
  keyInfo: () => request("GET", "api/key"),
  /** The routes this server has ("GET /api/queues", ...), from its OpenAPI document (needs no key). */
  routes: async () => {
    const document = await request("GET", "openapi.json");
    const routes = new Set();
    for (const [path, operations] of Object.entries(document.paths || {})) {
      for (const method of Object.keys(operations)) routes.add(method.toUpperCase() + " " + path);
    }
    return routes;
  },
  // Flow control (docs/flow-control.md): queues, their limits, pause and resume.
  queues: () => request("GET", "api/queues"),
  /** ``changes``: {concurrency, rate_limit, group_concurrency, group_rate_limit}; null removes a limit. */
  configureQueue: (name, changes) => request("PATCH", "api/queues/" + named(name), { body: changes }),
  pauseQueue: (name) => request("POST", "api/queues/" + named(name) + "/pause"),
  resumeQueue: (name) => request("POST", "api/queues/" + named(name) + "/resume"),
  // Schedules and failure alerts (docs/schedules.md).
  schedules: () => request("GET", "api/schedules"),
  pauseSchedule: (name) => request("POST", "api/schedules/" + named(name) + "/pause"),
  resumeSchedule: (name) => request("POST", "api/schedules/" + named(name) + "/resume"),
  runSchedule: (name) => request("POST", "api/schedules/" + named(name) + "/run"),
  alerts: () => request("GET", "api/alerts"),
  // Live workers (docs/observability.md).
  workers: () => request("GET", "api/workers"),
  /** Jobs completed and failed per minute over the last ``minutes`` (docs/http-api.md). */
  throughput: (minutes = 60, queue) => request("GET", "api/throughput", { query: { minutes, queue } }),
};

/** Runs ``action`` for each id, one at a time: {done, failed: [{id, message}]}. */
export async function forEachJob(ids, action) {
  const failed = [];
  let done = 0;
  for (const id of ids) {
    try { await action(id); done += 1; } catch (error) {
      if (error instanceof AuthError || error instanceof NetworkError) throw error;
      failed.push({ id, message: error.message });
    }
  }
  return { done, failed };
}
