// The dashboard: start runs, watch them live, cancel them, read the history.
// Every string from the server is put on the page with textContent, never as HTML.

import { track, isTerminal } from "./collector-hub-client.js";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "collector-hub-api-key";
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

let tracker = null;
let currentBatch = null;

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || null;
}

function authHeaders() {
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

function formatTime(value) {
  return value ? timeFormat.format(new Date(value)) : "—";
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

/** Turn a failed response into a sentence a person can act on. */
async function describeFailure(resp) {
  const body = await resp.json().catch(() => ({}));
  const detail = body.error ? `: ${body.error}` : "";
  switch (resp.status) {
    case 401: return `Not signed in${detail}. Enter an API key below.`;
    case 403: return `This API key may not do that${detail}.`;
    case 404: return `Not found${detail}.`;
    case 429: return `Too many requests; try again in ${resp.headers.get("Retry-After") || "a few"} seconds.`;
    default: return `The server answered ${resp.status}${detail}.`;
  }
}

async function api(path, options = {}) {
  let resp;
  try {
    resp = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  } catch {
    throw new Error("The server is unreachable. Check your connection; the page retries by itself.");
  }
  if (!resp.ok) throw new Error(await describeFailure(resp));
  return resp.json();
}

function setConnection(text, state) {
  const el = $("connection");
  el.textContent = text;
  el.className = `connection ${state}`;
  el.dataset.state = state;
}

const TRANSPORT_NAMES = { websocket: "WebSocket", sse: "Server-Sent Events", poll: "polling" };

function onTransport(name, info) {
  const label = TRANSPORT_NAMES[name] || name;
  if (info.state === "connected") document.body.dataset.transport = name; // the one delivering
  if (info.state === "connected") setConnection(`Live via ${label}`, name === "poll" ? "degraded" : "live");
  else if (info.state === "lost") setConnection(`Connection lost (${label}); reconnecting…`, "lost");
  else setConnection(`Connecting via ${label}…`, "degraded");
}

function setBar(bar, percent, status) {
  const value = Math.max(0, Math.min(100, percent ?? 0));
  bar.setAttribute("aria-valuenow", String(value));
  bar.setAttribute("aria-valuetext", `${value}% ${status || ""}`.trim());
  bar.querySelector(".fill").style.width = `${value}%`;
  bar.querySelector(".bar-text").textContent = `${value}%`;
  bar.className = `bar status-${status}`;
}

function setStatus(el, status) {
  el.textContent = status;
  el.dataset.status = status;
}

function renderJob(job) {
  let li = document.querySelector(`li[data-job-id="${CSS.escape(job.job_id)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.jobId = job.job_id;
    const head = document.createElement("div");
    head.className = "job-head";
    const name = document.createElement("strong");
    name.className = "job-name";
    const status = document.createElement("span");
    status.className = "status job-status";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "cancel-job";
    cancel.addEventListener("click", () => cancelJob(job.job_id));
    head.append(name, status, cancel);
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    const fill = document.createElement("div");
    fill.className = "fill";
    const text = document.createElement("span");
    text.className = "bar-text";
    bar.append(fill, text);
    const message = document.createElement("p");
    message.className = "message job-message";
    const error = document.createElement("p");
    error.className = "error-text job-error";
    li.append(head, bar, message, error);
    $("jobs").append(li);
  }
  li.querySelector(".job-name").textContent = job.job_name;
  setStatus(li.querySelector(".job-status"), job.status);
  const bar = li.querySelector(".bar");
  bar.setAttribute("aria-label", `${job.job_name} progress`);
  setBar(bar, job.progress_percent, job.status);
  li.querySelector(".job-message").textContent = job.message || "";
  const error = li.querySelector(".job-error");
  error.textContent = job.error || "";
  error.hidden = !job.error;
  const cancel = li.querySelector(".cancel-job");
  cancel.textContent = `Cancel ${job.job_name}`;
  cancel.disabled = isTerminal(job.status);
}

/** Job statuses as last shown, so the history table is reloaded when one changes. */
let shownStatuses = "";

function renderBatch(batch) {
  currentBatch = batch;
  const statuses = batch.collectors.map((job) => `${job.job_id}:${job.status}`).join(",");
  if (statuses !== shownStatuses) {
    shownStatuses = statuses;
    loadHistory();
  }
  $("run-panel").hidden = false;
  $("batch-id").textContent = batch.batch_id;
  setStatus($("batch-status"), batch.status);
  setBar($("batch-bar"), batch.progress_percent, batch.status);
  $("batch-message").textContent = batch.message || "";
  $("batch-eta").textContent = isTerminal(batch.status) ? "finished" : formatTime(batch.estimated_completion);
  const error = $("batch-error");
  error.textContent = batch.error || "";
  error.hidden = !batch.error;
  $("cancel-batch").disabled = isTerminal(batch.status);
  for (const job of batch.collectors) renderJob(job);
}

function follow(batchId) {
  if (tracker) tracker.stop();
  $("jobs").replaceChildren();
  tracker = track(batchId, {
    onUpdate: (data) => renderBatch(data),
    onComplete: (data) => {
      renderBatch(data);
      setConnection(`Run ${data.status}`, data.status === "completed" ? "live" : "degraded");
      loadHistory();
    },
    onError: (err) => showError(err && err.message ? err.message : String(err)),
    onTransport,
  }, { token: apiKey() });
  window.collectorHubTracker = tracker; // for debugging and tests
  const url = new URL(window.location.href);
  url.searchParams.set("batch", batchId);
  history.replaceState(null, "", url);
}

async function startRun(event) {
  event.preventDefault();
  showError("");
  const collectors = [...document.querySelectorAll("input[name=collector]:checked")].map((el) => el.value);
  if (collectors.length === 0) {
    showError("Choose at least one collector.");
    return;
  }
  $("start-button").disabled = true;
  try {
    const created = await api("/api/collectors/run", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ collectors, priority: $("priority").value }),
    });
    follow(created.batch_id);
    loadHistory();
  } catch (err) {
    showError(err.message);
  } finally {
    $("start-button").disabled = false;
  }
}

async function cancelBatch() {
  if (!currentBatch) return;
  try {
    renderBatch(await api(`/api/collectors/runs/batch/${encodeURIComponent(currentBatch.batch_id)}/cancel`, { method: "POST" }));
  } catch (err) {
    showError(err.message);
  }
}

async function cancelJob(jobId) {
  try {
    await api(`/api/collectors/runs/job/${encodeURIComponent(jobId)}/cancel`, { method: "POST" });
  } catch (err) {
    showError(err.message);
  }
}

async function loadCollectors() {
  const box = $("collector-choices");
  try {
    const { collectors } = await api("/api/collectors");
    box.replaceChildren();
    for (const c of collectors) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "collector";
      input.value = c.name;
      input.checked = c.name === "demo";
      label.append(input, ` ${c.job_name}`);
      box.append(label);
    }
  } catch (err) {
    box.textContent = "Could not load collectors.";
    showError(err.message);
  }
}

async function loadHistory() {
  try {
    const { collection_history: runs } = await api("/api/collectors/history?limit=20");
    const rows = runs.map((run) => {
      const tr = document.createElement("tr");
      const status = document.createElement("span");
      status.className = "status";
      setStatus(status, run.status);
      const cells = [run.job_name, status, formatTime(run.started_at), formatTime(run.ended_at), run.duration || "—", run.error || run.message || ""];
      for (const value of cells) {
        const td = document.createElement("td");
        if (value instanceof Node) td.append(value);
        else td.textContent = value;
        tr.append(td);
      }
      tr.lastChild.className = "message-cell";
      return tr;
    });
    $("history").tBodies[0].replaceChildren(...rows);
  } catch (err) {
    showError(err.message);
  }
}

function init() {
  $("start-form").addEventListener("submit", startRun);
  $("cancel-batch").addEventListener("click", cancelBatch);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("api-key").value.trim();
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    showError("");
    loadCollectors();
    loadHistory();
    if (currentBatch) follow(currentBatch.batch_id);
  });
  loadCollectors();
  loadHistory();
  setInterval(loadHistory, 30000);
  const batch = new URL(window.location.href).searchParams.get("batch");
  if (batch && /^bc_\d{8}$/.test(batch)) follow(batch);
}

init();
