// Collector Hub browser client: follows a batch, a job, the runs of some collectors, a job's
// log or the variances' changes, picking the best transport by itself (WebSocket, then Server-Sent Events, then polling),
// resuming from the last seq (or log line) it saw, and climbing back to a better transport when
// it can.
//
//   import { track } from "/static/collector-hub-client.js";
//   const handle = track("bc_12345678", { onUpdate, onComplete, onError, onTransport });
//   handle.stop();
//
// No build step, no dependencies, no network fetch other than to the Collector Hub server.

// The facts of the API contract a page needs. The server's copy is collectors/contract.py;
// tests/test_contract.py checks that these equal it and that nothing else under static/
// restates them, so a page imports them from here.
export const JOB_STATUSES = Object.freeze(["queued", "running", "completed", "failed", "cancelled"]);
export const TERMINAL_STATUSES = Object.freeze(["completed", "failed", "cancelled"]);
export const PRIORITIES = Object.freeze(["high", "normal", "low"]);
export const DEFAULT_PRIORITY = "normal";
// What became of a change in the audit trail (server/audit/entry.py, OUTCOMES).
export const AUDIT_OUTCOMES = Object.freeze(["succeeded", "refused", "failed"]);

const TERMINAL = new Set(TERMINAL_STATUSES);
const TRANSPORTS = ["websocket", "sse", "poll"];
// WebSocket close codes that mean an HTTP status: the error a handler gets carries it.
const CLOSE_STATUS = { 4401: 401, 4403: 403, 4404: 404 };
const LOG_PAGE = 1000; // lines per REST read of a log

export function isTerminal(status) {
  return TERMINAL.has(status);
}

/** Follow one batch until it reaches a terminal state. */
export function track(batchId, handlers = {}, options = {}) {
  return new Tracker({ kind: "batch", id: batchId }, handlers, options);
}

/** Follow one job until it reaches a terminal state. */
export function trackJob(jobId, handlers = {}, options = {}) {
  return new Tracker({ kind: "job", id: jobId }, handlers, options);
}

/** Follow every run of the named collectors (never completes; call stop()). */
export function trackCollectors(collectors, handlers = {}, options = {}) {
  return new Tracker({ kind: "collectors", id: collectors.join(",") }, handlers, options);
}

/** Follow a job's log: onUpdate(lines) with each new line once, in order (the stored ones first,
 * from after line `options.after`), onComplete({job_id, status}) once the job has ended and its
 * last line was delivered. */
export function followLog(jobId, handlers = {}, options = {}) {
  return new Tracker({ kind: "logs", id: jobId }, handlers, options);
}

/** Follow the variances' changes (never completes; call stop()): onUpdate(page) with
 * page = {counts, changes, resync}: `counts` the open counts ({open, by_type, by_status}, null
 * when the page has none), `changes` each change once and in order (seq, changed_at, changed_by,
 * from_status, to_status, variance: the variance as GET /api/exceptions lists it now), and
 * `resync` true when changes may have been missed (the first page of a connection that had no
 * seq to resume from, and every change seen by polling, which carries no changes): re-read the
 * variances then. `options.since`: the last seq you already have. */
export function followVariances(handlers = {}, options = {}) {
  return new Tracker({ kind: "variances", id: "variances" }, handlers, options);
}

/** The seq in an ETag of the API ("b-1042" style: the number after the last dash), or null. */
export function seqFromEtag(etag) {
  const m = /-(\d+)"$/.exec(etag || "");
  return m ? Number(m[1]) : null;
}

/** The stream's counts ({open, by_type, by_status}) from GET /api/exceptions/status-summary's
 * status_summary (status -> type -> {total, unresolved}). */
function countsFromSummary(summary) {
  const counts = { open: 0, by_type: {}, by_status: {} };
  for (const [status, types] of Object.entries(summary || {})) {
    counts.by_status[status] = 0;
    for (const [type, n] of Object.entries(types)) {
      counts.by_status[status] += n.total;
      if (n.unresolved) counts.by_type[type] = (counts.by_type[type] || 0) + n.unresolved;
      counts.open += n.unresolved;
    }
  }
  return counts;
}

function jittered(ms) {
  return ms / 2 + Math.random() * (ms / 2);
}

class Tracker {
  constructor(topic, handlers, options) {
    this.topic = topic;
    this.handlers = handlers;
    this.baseUrl = (options.baseUrl || "").replace(/\/$/, "");
    this.token = options.token || null; // API key or JWT
    this.tokenType = options.tokenType || "api-key"; // "api-key" | "bearer"
    this.transports = (options.transports || TRANSPORTS).filter((t) => TRANSPORTS.includes(t));
    this.pollMin = options.pollInterval || 5000; // the spec's guidance: 5-10 s
    this.pollMax = options.maxPollInterval || 10000;
    this.giveUpAfter = options.giveUpAfter ?? 60000; // polling stops after this long without progress
    this.upgradeAfter = options.upgradeAfter || 30000; // try a better transport again after this
    this.longPoll = options.longPoll ?? 25; // seconds; 0 to poll with ETags only
    this.seq = options.since ?? null;
    this.after = options.after ?? 0; // logs: the last line delivered
    this.states = new Map(); // object key -> latest data, so consumers get whole objects
    this.level = 0; // index into this.transports
    this.failures = 0;
    this.stopped = false;
    this.done = false;
    this.current = null; // { name, close() }
    this.timers = new Set();
    this._connect();
  }

  stop() {
    this.stopped = true;
    this._closeCurrent();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  get transport() {
    return this.current ? this.current.name : null;
  }

  // ---- plumbing shared by every transport ----

  _later(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  _emit(name, ...args) {
    const fn = this.handlers[name];
    if (typeof fn !== "function") return;
    try {
      fn(...args);
    } catch (err) {
      console.error(`collector-hub: ${name} handler threw`, err);
    }
  }

  _closeCurrent() {
    const c = this.current;
    this.current = null;
    if (c) c.close();
  }

  _url(path, params = {}) {
    const url = new URL(this.baseUrl + path, window.location.href);
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) url.searchParams.set(k, v);
    return url;
  }

  _headers() {
    if (!this.token) return {};
    return this.tokenType === "bearer" ? { Authorization: `Bearer ${this.token}` } : { "X-API-Key": this.token };
  }

  _restPath() {
    const { kind, id } = this.topic;
    if (kind === "batch") return `/api/collectors/runs/batch/${encodeURIComponent(id)}`;
    if (kind === "job") return `/api/collectors/runs/job/${encodeURIComponent(id)}`;
    if (kind === "logs") return `/api/collectors/runs/job/${encodeURIComponent(id)}/logs?after=${this.after}&limit=${LOG_PAGE}`;
    if (kind === "variances") return "/api/exceptions/status-summary";
    return `/api/collectors/runs/latest?collectors=${encodeURIComponent(id)}`;
  }

  _ssePath() {
    const { kind, id } = this.topic;
    if (kind === "collectors") return `/api/collectors/events?collectors=${encodeURIComponent(id)}`;
    if (kind === "logs") return `/api/collectors/runs/job/${encodeURIComponent(id)}/logs/events`;
    if (kind === "variances") return "/api/variances/events";
    return `${this._restPath()}/events`;
  }

  /** One state message from any transport: {type: "batch"|"job", seq, data}. ``live`` is
   * false for the REST check after a failure: that state is news, but the failing transport
   * has not recovered, so its failure count stands (or it would never fall back). */
  _receive(type, seq, data, { live = true } = {}) {
    if (this.done || this.stopped) return;
    if (typeof seq === "number" && this.seq !== null && seq < this.seq && this.topic.kind !== "collectors") return;
    if (typeof seq === "number") this.seq = Math.max(this.seq ?? 0, seq);
    this.lastProgressAt = Date.now();
    if (live) this.failures = this.attempt = 0;
    const key = `${type}:${data.batch_id && type === "batch" ? data.batch_id : data.job_id}`;
    this.states.set(key, data);
    this._emit("onUpdate", data, { type, seq, transport: this.transport });
    const mine =
      (this.topic.kind === "batch" && type === "batch") || (this.topic.kind === "job" && type === "job");
    if (mine && isTerminal(data.status)) {
      this.done = true;
      this._emit("onComplete", data);
      this.stop();
    }
  }

  /** New log lines from any transport: each line once, in order. */
  _receiveLines(lines, { live = true } = {}) {
    if (this.done || this.stopped) return;
    if (live) this.failures = this.attempt = 0;
    const fresh = lines.filter((line) => line.line > this.after);
    if (fresh.length === 0) return;
    this.after = fresh[fresh.length - 1].line;
    this._emit("onUpdate", fresh, { type: "logs", transport: this.transport });
  }

  /** The job ended and its last line was delivered. */
  _receiveEnd(end) {
    if (this.done || this.stopped) return;
    this.done = true;
    this._emit("onComplete", { job_id: this.topic.id, status: end.status });
    this.stop();
  }

  /** A page of the variances' stream from any transport: the counts (or null), then the
   * changes after the last seq delivered, each once. `fresh`: the first page of a connection. */
  _receiveVariances(counts, changes, { fresh = false, resync = false, live = true } = {}) {
    if (this.stopped) return;
    if (live) this.failures = this.attempt = 0;
    const unseen = (changes || []).filter((c) => this.seq === null || c.seq > this.seq);
    // A connection opened without a seq starts "from now": what happened before it is unknown.
    const missed = resync || (fresh && this.seq === null);
    for (const c of unseen) this.seq = Math.max(this.seq ?? 0, c.seq);
    if (!counts && unseen.length === 0 && !missed) return;
    this._emit("onUpdate", { counts: counts || null, changes: unseen, resync: missed }, { type: "variances", seq: this.seq, transport: this.transport });
  }

  /** A REST body of GET .../logs: its lines, and the end if it has every line of an ended job. */
  _receiveLogPage(body, options) {
    this._receiveLines(body.lines || [], options);
    if (body.complete) this._receiveEnd(body);
  }

  _connect() {
    if (this.stopped) return;
    const name = this.transports[this.level];
    this._emit("onTransport", name, { state: "connecting" });
    const poll = { logs: () => this._pollLog(), variances: () => this._pollVariances() }[this.topic.kind] || (() => this._poll());
    const start = { websocket: () => this._openWebSocket(), sse: () => this._openEventSource(), poll };
    this.current = { name, close: () => {} };
    start[name]();
  }

  /** The transport failed: retry it with backoff, or fall to the next one. */
  _fail(name, error, { fatal = false } = {}) {
    if (this.stopped || !this.current || this.current.name !== name) return;
    this._closeCurrent();
    this.failures += 1;
    this.attempt = (this.attempt || 0) + 1; // failures since the last good state, all transports
    const lost = { state: "lost", error: String(error || ""), attempt: this.attempt };
    if (fatal) {
      this._emit("onTransport", name, lost);
      this._emit("onError", error);
      this.stop();
      return;
    }
    const fallBack = this.failures >= 2 && this.level < this.transports.length - 1;
    const delay = fallBack ? jittered(500) : jittered(Math.min(30000, 1000 * 2 ** Math.min(this.failures, 5)));
    // The next try: which transport, and when (so a page can say "retrying in 4 s").
    this._emit("onTransport", name, { ...lost, next: this.transports[fallBack ? this.level + 1 : this.level], retryInMs: delay });
    if (fallBack) {
      this.level += 1;
      this.failures = 0;
      this._scheduleUpgrade();
    }
    this._later(() => this._connect(), delay);
  }

  /** While on a fallback, now and then try the best transport again. */
  _scheduleUpgrade() {
    if (this.upgradeTimer) return;
    this.upgradeTimer = this._later(() => {
      this.upgradeTimer = null;
      if (this.level === 0 || this.done) return;
      this._probe(this.transports[0]).then((ok) => {
        if (this.stopped || this.done) return;
        if (ok) {
          this._closeCurrent();
          this.level = this.failures = 0;
          this._connect();
        } else {
          this._scheduleUpgrade();
        }
      });
    }, jittered(this.upgradeAfter));
  }

  /** Does the best transport (WebSocket; the only one probed) open now? */
  _probe(name) {
    return new Promise((resolve) => {
      let ws;
      try {
        ws = name === "websocket" ? new WebSocket(this._wsUrl()) : null;
      } catch { /* refused at once */ }
      if (!ws) return resolve(false);
      const t = setTimeout(() => { ws.close(); resolve(false); }, 5000);
      ws.onopen = () => { clearTimeout(t); ws.close(1000); resolve(true); };
      ws.onerror = () => { clearTimeout(t); resolve(false); };
    });
  }

  // ---- WebSocket ----

  _wsUrl() {
    const url = this._url("/api/ws", this.token ? { access_token: this.token } : {});
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  _openWebSocket() {
    let ws;
    try {
      ws = new WebSocket(this._wsUrl());
    } catch (err) {
      this._fail("websocket", err);
      return;
    }
    let opened = false;
    let freshPage = true; // the next variances page is this connection's first
    this.current.close = () => { ws.onclose = null; ws.close(1000); };
    const subscription = () => {
      const { kind, id } = this.topic;
      if (kind === "logs") return { op: "subscribe", logs: id, after: this.after };
      if (kind === "variances") return this.seq === null ? { op: "subscribe", variances: true } : { op: "subscribe", variances: true, since: this.seq };
      const sub = { op: "subscribe" };
      if (kind === "batch") sub.batch_id = id;
      else if (kind === "job") sub.job_id = id;
      else sub.collectors = id.split(",");
      if (this.seq !== null) sub.since = this.seq;
      return sub;
    };
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify(subscription()));
      this.attempt = 0;
      this._emit("onTransport", "websocket", { state: "connected" });
    };
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      if (msg.type === "batch" || msg.type === "job") this._receive(msg.type, msg.seq, msg.data);
      else if (msg.type === "logs") this._receiveLines(msg.lines || []);
      else if (msg.type === "logs_end") this._receiveEnd(msg);
      else if (msg.type === "variances") {
        this._receiveVariances(msg.counts, msg.changes, { fresh: freshPage });
        freshPage = false;
      }
      else if (msg.type === "error") this._handleServerError(msg.error, "websocket", msg.status);
    };
    ws.onclose = (event) => {
      // 44xx: the server refused our credentials or the object is gone; not worth retrying.
      const status = CLOSE_STATUS[event.code];
      const why = event.reason || `closed (${event.code})`;
      if (!opened) this.failures += 1; // never connected: count towards falling back faster
      this._fail("websocket", status ? Object.assign(new Error(why), { status }) : why, { fatal: Boolean(status) });
    };
  }

  _handleServerError(error, name, status) {
    const fatal = status === 401 || status === 403 || status === 404 || /not found/i.test(error || "");
    const err = Object.assign(new Error(error || "error"), { status: status ?? (fatal ? 404 : 0) });
    if (fatal) this._fail(name, err, { fatal: true });
    else this._emit("onError", err);
  }

  // ---- Server-Sent Events ----

  _openEventSource() {
    const params = {};
    if (this.topic.kind === "logs") params.lastEventId = this.after;
    else if (this.topic.kind === "variances") { if (this.seq !== null) params.since = this.seq; }
    else if (this.seq !== null) params.lastEventId = this.seq;
    if (this.token) params.access_token = this.token;
    const url = this._url(this._ssePath(), params);
    let source;
    try {
      source = new EventSource(url.toString(), { withCredentials: true });
    } catch (err) {
      this._fail("sse", err);
      return;
    }
    this.current.close = () => source.close();
    // The variances: each page is `counts` (no id) then one `variance` event per change.
    let freshPage = true;
    source.addEventListener("counts", (event) => {
      let counts;
      try { counts = JSON.parse(event.data); } catch { return; }
      this._receiveVariances(counts, [], { fresh: freshPage });
      freshPage = false;
    });
    source.addEventListener("variance", (event) => {
      let change;
      try { change = JSON.parse(event.data); } catch { return; }
      this._receiveVariances(null, [change]);
    });
    const onState = (type) => (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch { return; }
      this._receive(type, Number(event.lastEventId) || null, data);
    };
    source.addEventListener("batch", onState("batch"));
    source.addEventListener("job", onState("job"));
    source.addEventListener("log", (event) => {
      let line;
      try { line = JSON.parse(event.data); } catch { return; }
      this._receiveLines([line]);
    });
    // The job ended and its last line was sent: the server closes the stream.
    source.addEventListener("end", (event) => {
      let end;
      try { end = JSON.parse(event.data); } catch { end = {}; }
      this._receiveEnd(end);
    });
    let errorsInARow = 0;
    let opened = false;
    source.onopen = () => {
      opened = true;
      freshPage = true; // EventSource reconnected by itself: without a seq it resumed from now
      errorsInARow = this.attempt = 0;
      this._emit("onTransport", "sse", { state: "connected" });
    };
    source.onerror = () => {
      if (this.done) return;
      // A stream the server refused (HTTP error) ends up CLOSED. On network errors EventSource
      // reconnects by itself (CONNECTING); if that keeps failing, take over and fall back.
      errorsInARow += 1;
      if (source.readyState === EventSource.CLOSED || errorsInARow >= 2) {
        source.close();
        if (!opened) this.failures += 1; // never connected: as for WebSocket, fall back faster
        this._checkWhetherGone().then((fatalError) => this._fail("sse", fatalError || "stream closed", { fatal: !!fatalError }));
      } else {
        this._emit("onTransport", "sse", { state: "lost", attempt: errorsInARow, next: "sse", retryInMs: 3000 });
      }
    };
  }

  /** After a transport failure: a REST call tells whether the object is gone or we lack rights. */
  async _checkWhetherGone() {
    try {
      const resp = await fetch(this._url(this._restPath()), { headers: this._headers(), credentials: "include" });
      if (resp.status === 401 || resp.status === 403 || resp.status === 404) {
        const body = await resp.json().catch(() => ({}));
        return Object.assign(new Error(body.error || `HTTP ${resp.status}`), { status: resp.status });
      }
      if (resp.ok) {
        const data = await resp.json();
        const type = this.topic.kind === "job" ? "job" : this.topic.kind === "batch" ? "batch" : null;
        if (type) this._receive(type, seqFromEtag(resp.headers.get("ETag")), data, { live: false });
        else if (this.topic.kind === "logs") this._receiveLogPage(data, { live: false });
      }
    } catch {
      /* unreachable: not fatal, retry later */
    }
    return null;
  }

  // ---- Polling: ETags and long-poll, 5-10 s, backing off when nothing changes ----

  _poll() {
    this.pollEtag = null;
    let answered = false; // "connected" only once the server has answered a poll
    this.pollInterval = this.pollMin;
    this.lastProgressAt = Date.now();
    const controller = new AbortController();
    this.current.close = () => controller.abort();
    const tick = async () => {
      if (this.stopped || this.done || !this.current || this.current.name !== "poll") return;
      const headers = this._headers();
      if (this.pollEtag) headers["If-None-Match"] = this.pollEtag;
      const path = this._restPath();
      const wait = this.longPoll && this.topic.kind !== "collectors" && this.pollEtag ? { wait: this.longPoll } : {};
      let resp;
      const began = Date.now();
      try {
        resp = await fetch(this._url(path, wait), {
          headers, credentials: "include", signal: controller.signal, cache: "no-store",
        });
      } catch (err) {
        if (controller.signal.aborted) return;
        this._fail("poll", err);
        return;
      }
      if ((resp.ok || resp.status === 304) && !answered) {
        answered = true;
        this.attempt = 0;
        this._emit("onTransport", "poll", { state: "connected" });
      }
      if (resp.status === 304) {
        this.pollInterval = Math.min(this.pollMax, this.pollInterval * 1.5);
      } else if (resp.ok) {
        const etag = resp.headers.get("ETag");
        const changed = !etag || etag !== this.pollEtag;
        this.pollEtag = etag;
        const data = await resp.json();
        if (!changed) {
          // A long-poll that ended with nothing new: back off as for a 304.
          this.pollInterval = Math.min(this.pollMax, this.pollInterval * 1.5);
        } else if (this.topic.kind === "collectors") {
          for (const run of data.latest_runs || []) this._receive("job", seqFromEtag(etag), run);
        } else {
          this._receive(this.topic.kind, seqFromEtag(etag), data);
        }
        if (changed) this.pollInterval = this.pollMin;
      } else if (resp.status === 429) {
        const retry = Number(resp.headers.get("Retry-After")) || 10;
        this._emit("onError", Object.assign(new Error("Rate limited"), { status: 429 }));
        this._later(tick, retry * 1000);
        return;
      } else {
        const body = await resp.json().catch(() => ({}));
        const err = Object.assign(new Error(body.error || `HTTP ${resp.status}`), { status: resp.status });
        this._fail("poll", err, { fatal: resp.status === 401 || resp.status === 403 || resp.status === 404 });
        return;
      }
      if (this.done) return;
      if (this.giveUpAfter && Date.now() - this.lastProgressAt > this.giveUpAfter && this.topic.kind !== "collectors") {
        this._emit("onError", Object.assign(new Error("No progress for a minute; stopped polling"), { status: 0 }));
        this.stop();
        return;
      }
      // A long-poll that really waited can be re-issued at once; anything quicker (a server
      // without long-poll, a change) waits the polling interval, so we never spin.
      const waited = wait.wait && Date.now() - began >= 1000;
      this._later(tick, waited ? 0 : jittered(this.pollInterval));
    };
    tick();
  }

  // ---- Polling the variances: GET /api/exceptions/status-summary (the counts per status and
  // type, and the latest changes people made) 5-10 s apart; when it differs from the last
  // answer, the page says so with resync (polling carries no changes). Changes that leave every
  // count as it was and are not a person's (a check resolving one variance and reopening another
  // of the same type) show at the next change that moves a count. ----

  /** One poll's GET of the topic's REST path: the response when it is ok, else null once the
   * failure is handled here (an abort: nothing; a 429: the next tick after Retry-After; any
   * other error: _fail, fatal for the statuses in `fatal`). */
  async _pollGet(controller, tick, fatal) {
    let resp;
    try {
      resp = await fetch(this._url(this._restPath()), {
        headers: this._headers(), credentials: "include", signal: controller.signal, cache: "no-store",
      });
    } catch (err) {
      if (!controller.signal.aborted) this._fail("poll", err);
      return null;
    }
    if (resp.status === 429) {
      this._emit("onError", Object.assign(new Error("Rate limited"), { status: 429 }));
      this._later(tick, (Number(resp.headers.get("Retry-After")) || 10) * 1000);
      return null;
    }
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      const err = Object.assign(new Error(body.error || `HTTP ${resp.status}`), { status: resp.status });
      this._fail("poll", err, { fatal: fatal.includes(resp.status) });
      return null;
    }
    return resp;
  }

  _pollVariances() {
    let answered = false;
    let last = null;
    let interval = this.pollMin;
    const controller = new AbortController();
    this.current.close = () => controller.abort();
    const tick = async () => {
      if (this.stopped || !this.current || this.current.name !== "poll") return;
      const resp = await this._pollGet(controller, tick, [401, 403]);
      if (!resp) return;
      let body;
      try { body = await resp.json(); } catch (err) { this._fail("poll", err); return; }
      if (!answered) {
        answered = true;
        this.attempt = 0;
        this._emit("onTransport", "poll", { state: "connected" });
      }
      const print = JSON.stringify([body.status_summary, body.recent_manual_updates]);
      if (print !== last) {
        this._receiveVariances(countsFromSummary(body.status_summary), [], { resync: true });
        interval = this.pollMin;
      } else {
        interval = Math.min(this.pollMax, interval * 1.5);
      }
      last = print;
      this._later(tick, jittered(interval));
    };
    tick();
  }

  // ---- Polling a log: GET .../logs?after=N, 5-10 s apart while nothing comes, at once while
  // pages are full. No give-up: every answer says whether the job still runs. ----

  _pollLog() {
    let answered = false;
    let interval = this.pollMin;
    const controller = new AbortController();
    this.current.close = () => controller.abort();
    const tick = async () => {
      if (this.stopped || this.done || !this.current || this.current.name !== "poll") return;
      const resp = await this._pollGet(controller, tick, [401, 403, 404]);
      if (!resp) return;
      if (!answered) {
        answered = true;
        this.attempt = 0;
        this._emit("onTransport", "poll", { state: "connected" });
      }
      let body;
      try { body = await resp.json(); } catch (err) { this._fail("poll", err); return; }
      const lines = body.lines || [];
      this._receiveLogPage(body);
      if (this.done) return;
      interval = lines.length ? this.pollMin : Math.min(this.pollMax, interval * 1.5);
      this._later(tick, lines.length >= LOG_PAGE ? 0 : jittered(interval));
    };
    tick();
  }
}
