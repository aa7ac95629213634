// A job's log, tailing live: the stored lines first, then new ones as the collector prints
// them, followed with the client library's followLog (WebSocket, Server-Sent Events or polling,
// from the transport the console's live subscription is on). Auto-scroll follows the end until
// the reader scrolls up; "Jump to end" comes back. stderr lines, lines that say error, and the
// runner's note of a failed exit are shown as errors, each line exactly as printed.

import { followLog } from "../collector-hub-client.js";
import { explain, trackerOptions } from "./api.js";
import { transport } from "./connection.js";
import { h } from "./dom.js";

const MAX_LINES = 5000; // kept on the page; the API has the rest
const TRANSPORTS = ["websocket", "sse", "poll"];
const ERROR_TEXT = /\b(error|exception|traceback|fatal|failed)\b/i;
// The runner's own notes (stream "system") that say the collector failed: a non-zero exit, a
// signal, a timeout, a start that failed (server/runner/process.py describe_outcome).
const FAILED_NOTE = /\bexited with code -?[1-9]|\bkilled by\b|\btimed out\b|\bcould not start\b|\bdid not exit\b/i;

function kindOf(line) {
  if (line.progress) return "progress";
  if (line.stream === "stderr" || ERROR_TEXT.test(line.text)) return "error";
  if (line.stream === "system") return FAILED_NOTE.test(line.text) ? "error system" : "system";
  return line.stream;
}

function lineEl(line) {
  // The newline is part of the line's text, so a copied log reads as printed, and each line
  // is one line box: no gap between lines, indentation kept.
  return h("span", { class: `line ${kindOf(line)}`, dataset: { line: line.line } }, `${line.text}\n`);
}

/** The transports to follow a log on: the live subscription's and the ones after it (a log
 * opened while the console polls does not try WebSocket first). */
function transportsFromCurrent() {
  const now = transport();
  return now ? TRANSPORTS.slice(TRANSPORTS.indexOf(now)) : TRANSPORTS;
}

/** A log panel for `job` ({job_id, job_name, status}), closed; call .openByItself() to open it
 * (it stays as the reader left it once they have opened or closed it themselves), .update(job)
 * on new job states and .stop() when the view goes away. Tailing starts when the panel is opened. */
export function logPanel(job) {
  const pre = h("pre", { class: "log", tabindex: 0, role: "log", "aria-label": `Log of ${job.job_name}` });
  const jump = h("button", { type: "button", class: "small jump-to-end", hidden: true }, "Jump to end");
  const note = h("span", { class: "muted log-note" });
  const summary = h("summary", {}, `Log of ${job.job_name}`);
  const details = h("details", { class: "log-panel", dataset: { jobId: job.job_id } },
    summary, pre, h("div", { class: "log-tools" }, jump, note));
  let handle = null;
  let first = true;
  let follow = true; // auto-scroll, paused when the reader scrolls up
  // The reader opened or closed the panel: a click on its summary (Enter and Space on the
  // focused summary click it too). Opening it by itself sets `open` and clicks nothing.
  let chosen = false;
  summary.addEventListener("click", () => { chosen = true; });

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
    // Line numbers go on across the log's cap: a first line above 1 says how many were dropped.
    if (first && lines[0].line > 1) note.textContent = `${lines[0].line - 1} older lines were dropped.`;
    first = false;
    pre.append(...lines.map(lineEl));
    while (pre.childElementCount > MAX_LINES) pre.firstElementChild.remove();
    if (follow) pre.scrollTop = pre.scrollHeight;
    else jump.hidden = false;
  }

  function start() {
    if (handle) return;
    handle = followLog(job.job_id, {
      onUpdate: append,
      onError: (err) => { note.textContent = explain(err); },
    }, trackerOptions({ transports: transportsFromCurrent() }));
  }

  details.addEventListener("toggle", () => { if (details.open) start(); });
  return {
    el: details,
    /** Opens the panel unless it is open or the reader chose; true if it opened now. */
    openByItself() {
      if (chosen || details.open) return false;
      details.open = true;
      start();
      return true;
    },
    update() {}, // the log ends by itself once the job has ended and its last line is in
    stop() {
      if (handle) handle.stop();
    },
  };
}
