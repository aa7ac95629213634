// The console's one live subscription: every run of every collector (trackCollectors), over
// WebSocket, SSE or polling. It keeps the runs it has seen grouped by batch and tells the views
// which batches changed, at most once per animation frame, however fast updates arrive. Of the
// finished batches it keeps the newest KEEP_FINISHED, so a tab left open for weeks stays small.

import { trackCollectors, isTerminal } from "../collector-hub-client.js";
import { api, apiVersioned, explain, trackerOptions } from "./api.js";
import * as connection from "./connection.js";
import * as debug from "./debug.js";

// More than the Overview shows (5): a view drawing a finished run has it for a while.
export const KEEP_FINISHED = 20;

/** batch_id -> {batch_id, status, progress_percent, message, estimated_completion, priority,
 *  started_at, seq, jobs: Map(job_id -> job)} */
export const batches = new Map();
const listeners = new Set();
const dirty = new Set();
let frame = null;
let tracker = null;
let names = [];
let pruneDue = false; // a batch ended since the last frame

// With the debug flag (debug.js), bench/console.py reads the time spent handling updates and
// drawing them from here; without it nothing is timed.
const stats = debug.stats;
debug.expose("stats", stats);
debug.expose("batches", batches);
debug.expose("keepFinished", KEEP_FINISHED);

/** fn(changedBatchIds: Set) after each frame with changes; returns an unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function flush() {
  frame = null;
  const started = debug.clock();
  const changed = new Set(dirty);
  dirty.clear();
  for (const fn of listeners) {
    try {
      fn(changed);
    } catch (err) {
      console.error("console: a view failed to draw", err);
    }
  }
  if (pruneDue) pruneFinished();
  if (stats) {
    stats.renderMs += debug.clock() - started;
    stats.frames += 1;
  }
}

/** Forget all but the newest KEEP_FINISHED finished batches (after the views have drawn their
 * end). One that is heard of again is simply read again. */
function pruneFinished() {
  pruneDue = false;
  const finished = [];
  for (const batch of batches.values()) if (isTerminal(batch.status)) finished.push(batch);
  if (finished.length <= KEEP_FINISHED) return;
  finished.sort((a, b) => a.seq - b.seq);
  for (const batch of finished.slice(0, finished.length - KEEP_FINISHED)) batches.delete(batch.batch_id);
}

function setBatchStatus(batch, status) {
  if (status !== batch.status && isTerminal(status)) pruneDue = true;
  batch.status = status;
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
  const started = debug.clock();
  const batch = batchOf(job.batch_id);
  const known = batch.jobs.get(job.job_id);
  if (!known || (known.seq ?? -1) <= (seq ?? 0)) batch.jobs.set(job.job_id, { ...job, seq });
  if ((seq ?? 0) >= batch.seq) {
    batch.seq = seq ?? batch.seq;
    setBatchStatus(batch, job.batch_status);
    batch.progress_percent = job.batch_progress_percent;
    batch.message = job.batch_message;
    batch.estimated_completion = job.estimated_completion;
  }
  // A batch first seen mid-run: read it once for its other jobs (not polled: the stream
  // brings every later change of each of its jobs).
  if (!batch.loaded && !isTerminal(batch.status)) batch.loading = loadBatch(batch);
  touch(job.batch_id);
  if (stats) {
    stats.updates += 1;
    stats.handleMs += debug.clock() - started;
  }
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
    setBatchStatus(batch, body.status);
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
    const { body, seq } = await apiVersioned(`/api/collectors/runs/batch/${encodeURIComponent(batch.batch_id)}`);
    receiveBatch(body, seq);
  } catch (err) {
    if (err.status === 0) batch.loaded = false; // unreachable now: the next update tries again
  }
}

/** Make sure a batch known to be active is shown: read it once unless the stream already has.
 * Resolves once it is read (or could not be). */
export function ensureBatch(batchId) {
  const batch = batchOf(batchId);
  if (!batch.loaded) batch.loading = loadBatch(batch);
  return batch.loading || Promise.resolve();
}

/** After the stream was lost, read once more every batch still shown as active. Resuming, each
 * transport brings every collector's active (else latest) run only: a run that ended while
 * the console was away, while another run of its collector was active, has no later state
 * for any stream to bring, and would be shown running for ever. */
function rereadActive() {
  for (const batch of batches.values()) {
    if (batch.loaded && !isTerminal(batch.status)) batch.loading = loadBatch(batch);
  }
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
    connection.stopped(explain(err));
    return;
  }
  if (names.length === 0) {
    connection.stopped("No collectors are configured.");
    return;
  }
  let lost = false;
  tracker = trackCollectors(names, {
    onUpdate: (data, { type, seq }) => {
      if (type === "job") receiveJob(data, seq);
    },
    onTransport: (name, info) => {
      connection.onTransport(name, info);
      if (info.state === "lost") lost = true;
      else if (info.state === "connected" && lost) {
        lost = false;
        rereadActive();
      }
    },
    onError: (err) => {
      if (err && (err.status === 401 || err.status === 403)) connection.stopped(explain(err));
    },
  }, trackerOptions());
  debug.expose("tracker", tracker);
}
