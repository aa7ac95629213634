// The console's one live subscription: every run of every collector (trackCollectors), over
// WebSocket, SSE or polling. It keeps the runs it has seen grouped by batch and tells the views
// which batches changed, at most once per animation frame, however fast updates arrive.

import { trackCollectors, isTerminal } from "../collector-hub-client.js";
import { api, apiKey } from "./api.js";
import * as connection from "./connection.js";

/** batch_id -> {batch_id, status, progress_percent, message, estimated_completion, priority,
 *  started_at, seq, jobs: Map(job_id -> job)} */
export const batches = new Map();
const listeners = new Set();
const dirty = new Set();
let frame = null;
let tracker = null;
let names = [];

// Figures for the benchmark (bench/console.py): time spent handling updates and drawing them,
// from the Performance API, and how many updates arrived.
export const stats = { updates: 0, handleMs: 0, renderMs: 0, frames: 0 };

/** fn(changedBatchIds: Set) after each frame with changes; returns an unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function flush() {
  frame = null;
  const started = performance.now();
  const changed = new Set(dirty);
  dirty.clear();
  for (const fn of listeners) {
    try {
      fn(changed);
    } catch (err) {
      console.error("console: a view failed to draw", err);
    }
  }
  stats.renderMs += performance.now() - started;
  stats.frames += 1;
}

function touch(batchId) {
  dirty.add(batchId);
  if (frame === null) frame = requestAnimationFrame(flush);
}

function batchOf(batchId) {
  let batch = batches.get(batchId);
  if (!batch) {
    // loaded: its GET is asked for (or done); complete: a GET body has filled in every job.
    batch = { batch_id: batchId, seq: -1, jobs: new Map(), loaded: false, complete: false };
    batches.set(batchId, batch);
  }
  return batch;
}

/** A job state from the stream (the GET job shape: the job with its batch's summary). */
function receiveJob(job, seq) {
  const started = performance.now();
  stats.updates += 1;
  const batch = batchOf(job.batch_id);
  const known = batch.jobs.get(job.job_id);
  if (!known || (known.seq ?? -1) <= (seq ?? 0)) batch.jobs.set(job.job_id, { ...job, seq });
  if ((seq ?? 0) >= batch.seq) {
    batch.seq = seq ?? batch.seq;
    batch.status = job.batch_status;
    batch.progress_percent = job.batch_progress_percent;
    batch.message = job.batch_message;
    batch.estimated_completion = job.estimated_completion;
  }
  // A batch first seen mid-run: read it once for its other jobs (not polled: the stream
  // brings every later change of each of its jobs).
  if (!batch.loaded && !isTerminal(batch.status)) loadBatch(batch);
  touch(job.batch_id);
  stats.handleMs += performance.now() - started;
}

/** Apply a GET batch body (also used after re-runs and starts, so a new batch shows at once). */
export function receiveBatch(body, seq) {
  const batch = batchOf(body.batch_id);
  batch.loaded = true;
  batch.complete = true;
  batch.priority = body.priority;
  batch.started_at = body.started_at;
  if (seq === null || seq >= batch.seq) {
    batch.seq = seq ?? batch.seq;
    batch.status = body.status;
    batch.progress_percent = body.progress_percent;
    batch.message = body.message;
    batch.estimated_completion = body.estimated_completion;
    batch.error = body.error;
  }
  for (const job of body.collectors) {
    const known = batch.jobs.get(job.job_id);
    if (!known || seq === null || (known.seq ?? -1) <= seq) batch.jobs.set(job.job_id, { ...known, ...job, batch_id: body.batch_id, seq });
  }
  touch(body.batch_id);
  return batch;
}

async function loadBatch(batch) {
  batch.loaded = true;
  try {
    const resp = await fetch(`/api/collectors/runs/batch/${encodeURIComponent(batch.batch_id)}`, {
      headers: apiKey() ? { "X-API-Key": apiKey() } : {},
    });
    if (!resp.ok) return;
    const etag = /-(\d+)"$/.exec(resp.headers.get("ETag") || "");
    receiveBatch(await resp.json(), etag ? Number(etag[1]) : null);
  } catch {
    batch.loaded = false; // unreachable now: the next update tries again
  }
}

/** Make sure a batch known to be active is shown: read it once unless the stream already has. */
export function ensureBatch(batchId) {
  const batch = batchOf(batchId);
  if (!batch.loaded) loadBatch(batch);
}

/** The collectors this server knows (from GET /api/collectors). */
export function collectorNames() {
  return names;
}

/** Start (or restart with the current key) the subscription. `transports` is for tests. */
export async function start() {
  if (tracker) tracker.stop();
  tracker = null;
  try {
    names = (await api("/api/collectors")).collectors.map((c) => c.name);
  } catch (err) {
    connection.stopped(err.message);
    return;
  }
  if (names.length === 0) {
    connection.stopped("No collectors are configured.");
    return;
  }
  tracker = trackCollectors(names, {
    onUpdate: (data, { type, seq }) => {
      if (type === "job") receiveJob(data, seq);
    },
    onTransport: connection.onTransport,
    onError: (err) => {
      if (err && (err.status === 401 || err.status === 403)) connection.stopped(err.message || String(err));
    },
  }, { token: apiKey() });
  window.collectorHubTracker = tracker; // for tests and debugging
}
