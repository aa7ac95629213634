// A job's log, tailing live: the stored lines first, then new ones as the collector prints
// them (Server-Sent Events from .../logs/events; where EventSource cannot get through, the REST
// route read with ?after=N every few seconds while the job runs). Auto-scroll follows the end
// until the reader scrolls up; "Jump to end" comes back. stderr and error lines are highlighted.

import { isTerminal } from "../collector-hub-client.js";
import { api, apiKey } from "./api.js";
import { h } from "./dom.js";

const MAX_LINES = 5000; // kept on the page; the API has the rest
const POLL_MS = 5000; // without EventSource: as the client polls, 5 s, up to 10 s while nothing comes
const MAX_POLL_MS = 10000;
const ERROR_TEXT = /\b(error|exception|traceback|fatal|failed)\b/i;

function lineEl(line) {
  const kind = line.progress ? "progress" : line.stream === "stderr" || ERROR_TEXT.test(line.text) ? "error" : line.stream;
  return h("span", { class: `line ${kind}`, dataset: { line: line.line } }, line.text, "\n");
}

/** A log panel for `job` ({job_id, job_name, status}); call .update(job) on new job states and
 * .stop() when the view goes away. Tailing starts when the panel is opened. */
export function logPanel(job, { open = false } = {}) {
  const pre = h("pre", { class: "log", tabindex: 0, role: "log", "aria-label": `Log of ${job.job_name}` });
  const jump = h("button", { type: "button", class: "small jump-to-end", hidden: true }, "Jump to end");
  const note = h("span", { class: "muted log-note" });
  const details = h("details", { class: "log-panel", dataset: { jobId: job.job_id } },
    h("summary", {}, `Log of ${job.job_name}`), pre, h("div", { class: "log-tools" }, jump, note));
  let after = 0;
  let status = job.status;
  let source = null;
  let timer = null;
  let started = false;
  let stopped = false;
  let follow = true; // auto-scroll, paused when the reader scrolls up
  let pollMs = POLL_MS;

  const atEnd = () => pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.addEventListener("scroll", () => {
    follow = atEnd();
    jump.hidden = follow;
  });
  jump.addEventListener("click", () => {
    follow = true;
    jump.hidden = true;
    pre.scrollTop = pre.scrollHeight;
    pre.focus();
  });

  function append(lines) {
    const fresh = lines.filter((line) => line.line > after);
    if (fresh.length === 0) return;
    after = fresh[fresh.length - 1].line;
    pre.append(...fresh.map(lineEl));
    while (pre.childElementCount > MAX_LINES) pre.firstElementChild.remove();
    if (follow) pre.scrollTop = pre.scrollHeight;
    else jump.hidden = false;
  }

  async function readRest() {
    if (stopped) return;
    try {
      const body = await api(`/api/collectors/runs/job/${encodeURIComponent(job.job_id)}/logs?after=${after}&limit=1000`);
      append(body.lines);
      pollMs = body.lines.length ? POLL_MS : Math.min(MAX_POLL_MS, pollMs * 1.5);
      if (body.dropped_lines && !note.textContent) note.textContent = `${body.dropped_lines} older lines were dropped.`;
      if (body.lines.length === 1000) return readRest();
      if (body.complete) return;
    } catch (err) {
      note.textContent = err.message;
    }
    if (!isTerminal(status) && !stopped) timer = setTimeout(readRest, pollMs);
  }

  function openStream() {
    const url = new URL(`/api/collectors/runs/job/${encodeURIComponent(job.job_id)}/logs/events`, window.location.href);
    if (apiKey()) url.searchParams.set("access_token", apiKey());
    if (after) url.searchParams.set("lastEventId", String(after));
    let opened = false;
    try {
      source = new EventSource(url);
    } catch {
      readRest();
      return;
    }
    const onLine = (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch { return; }
      append(Array.isArray(data.lines) ? data.lines : [data]);
    };
    source.addEventListener("log", onLine);
    source.addEventListener("message", onLine);
    // The job ended and its last line was sent: stop here (EventSource would reconnect).
    source.addEventListener("end", () => {
      source.close();
      source = null;
    });
    source.onopen = () => { opened = true; };
    source.onerror = () => {
      // Ended (the job is over and its last line sent: the server closes the stream) or
      // refused: read the rest over REST, which also carries on if the stream never opened.
      if (source.readyState === EventSource.CLOSED || !opened) {
        source.close();
        source = null;
        readRest();
      }
    };
  }

  function start() {
    if (started) return;
    started = true;
    if (document.body.dataset.transport === "poll") readRest();
    else openStream();
  }

  details.addEventListener("toggle", () => { if (details.open) start(); });
  if (open) {
    details.open = true;
    start();
  }
  return {
    el: details,
    update(next) {
      status = next.status;
      if (isTerminal(status) && started && !source && !timer) readRest(); // the last lines
    },
    stop() {
      stopped = true;
      if (source) source.close();
      clearTimeout(timer);
    },
  };
}
