// The console's credentials and REST calls: the API key (kept in sessionStorage: this tab only)
// and the one place that turns it into a request header or a tracker option, errors turned
// into sentences a person can act on (one wording for a missing or refused key, whatever the
// view), and what the key may do.

import { seqFromEtag } from "../collector-hub-client.js";

const KEY_STORAGE = "collector-hub-api-key";
const listeners = new Set();

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || null;
}

export function setApiKey(value) {
  if (value) sessionStorage.setItem(KEY_STORAGE, value);
  else sessionStorage.removeItem(KEY_STORAGE);
  permissions = null;
  for (const fn of listeners) fn();
}

/** Called after the key changes (views reload, trackers reconnect with it). */
export function onKeyChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

let unauthorizedHandler = () => {};
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

/** The headers of a REST call: the key as X-API-Key (the only place the console builds it). */
function headers(extra = {}) {
  const key = apiKey();
  return key ? { "X-API-Key": key, ...extra } : { ...extra };
}

/** Options for the client library's trackers: the key, which the library sends as X-API-Key on
 * REST calls and as access_token on WebSocket and SSE addresses. */
export function trackerOptions(extra = {}) {
  return { token: apiKey(), tokenType: "api-key", ...extra };
}

/** What to do about a 401: the same sentence in every view, the banner and the indicator. */
export function keyProblem() {
  return apiKey()
    ? "This server did not accept the API key. Choose “Change API key” at the top right to enter another."
    : "This server needs an API key. Choose “API key” at the top right to enter one.";
}

/** A sentence for any error: an ApiError (already one), or the client library's (with a
 * status where there is one), or anything else. */
export function explain(err) {
  if (err instanceof ApiError) return err.message;
  const status = err && typeof err === "object" ? err.status : undefined;
  const text = (err && err.message) || String(err || "");
  if (status === 401) return keyProblem();
  if (status === 403) return `This API key may not do that${text ? `: ${text}` : ""}.`;
  return text;
}

async function describe(resp) {
  const body = await resp.json().catch(() => ({}));
  const detail = body.error ? `: ${body.error}` : "";
  switch (resp.status) {
    case 401: return keyProblem();
    case 403: return `This API key may not do that${detail}.`;
    case 404: return `Not found${detail}.`;
    case 429: return `Too many requests; try again in ${resp.headers.get("Retry-After") || "a few"} seconds.`;
    default: return `The server answered ${resp.status}${detail}.`;
  }
}

async function request(path, { method = "GET", body, signal } = {}) {
  const sentWith = apiKey();
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }), signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    if (signal && signal.aborted) throw err;
    throw new ApiError("The server is unreachable; the console retries by itself.", 0);
  }
  // A refusal of the key this request was sent with; not of one saved while it was under way
  // (asking again then would cover the page with the prompt just answered).
  if (resp.status === 401 && apiKey() === sentWith) unauthorizedHandler();
  if (!resp.ok) throw new ApiError(await describe(resp), resp.status);
  return resp;
}

/** fetch + JSON; throws ApiError with a readable message. */
export async function api(path, options = {}) {
  const resp = await request(path, options);
  if (resp.status === 204) return null;
  return resp.json();
}

/** A GET of a versioned object (a batch, a job): its body and the seq of its ETag. */
export async function apiVersioned(path, options = {}) {
  const resp = await request(path, options);
  return { body: await resp.json(), seq: seqFromEtag(resp.headers.get("ETag")) };
}

/** Download a file the API answers (an export) with the key's header, which a plain link
 * cannot send: saved under the name of its Content-Disposition, else `fallback`. Throws
 * ApiError with a readable message, as api() does. */
export async function download(path, { signal, fallback = "download" } = {}) {
  const resp = await request(path, { signal });
  const named = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "");
  const url = URL.createObjectURL(await resp.blob());
  const save = document.createElement("a");
  save.href = url;
  save.download = named ? named[1] : fallback;
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Who the key is and what it may do: GET /api/me, read once per key (docs/CONSOLE.md, API
// keys). Nothing is probed with requests that could change something.
let permissions = null;

/** The caller as GET /api/me says (actor, role, roles, open_mode…); read once per key. */
export function me() {
  if (!permissions) {
    permissions = api("/api/me").catch((err) => {
      permissions = null; // asked again next time (a key entered, the server back)
      throw err;
    });
  }
  return permissions;
}

/** What the key may do: {trigger, admin}; nothing when the server did not say. */
export async function can() {
  try {
    const { roles } = await me();
    return { trigger: roles.includes("trigger"), admin: roles.includes("admin") };
  } catch {
    return { trigger: false, admin: false };
  }
}
