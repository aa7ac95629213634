// A batch drawn as a card: its status, bar and message, and one row per job with its own bar.
// Shared by the Overview (every active batch) and the Run view (one batch). Updates touch only
// what changed, so hundreds of jobs updating several times a second stay cheap.

import { isTerminal } from "../collector-hub-client.js";
import { api } from "./api.js";
import { bar, errorText, h, setBar, setStatus, showError, statusBadge, timeEl } from "./dom.js";

export async function cancel(path, onDone) {
  try {
    const body = await api(path, { method: "POST" });
    if (onDone) onDone(body);
  } catch (err) {
    showError(err.message);
  }
}

function jobRow(job, { canTrigger }) {
  const name = h("strong", { class: "job-name", title: job.job_name }, job.job_name);
  let button = null;
  if (canTrigger) {
    button = h("button", { type: "button", class: "small cancel-job", "aria-label": `Cancel ${job.job_name}` }, "Cancel");
    button.addEventListener("click", () => cancel(`/api/collectors/runs/job/${encodeURIComponent(job.job_id)}/cancel`));
  }
  return h("li", { class: "job-row", dataset: { jobId: job.job_id } },
    name, statusBadge(job.status), bar(`${job.job_name} progress`), button, h("p", { class: "message job-message" }));
}

function updateJobRow(row, job) {
  if (row.shown === job) return;
  row.shown = job;
  setStatus(row.querySelector(".status"), job.status);
  setBar(row.querySelector(".bar"), job.progress_percent, job.status);
  const message = row.querySelector(".job-message");
  const text = job.error || job.message || "";
  if (message.textContent !== text) {
    message.textContent = text;
    message.classList.toggle("error-text", Boolean(job.error));
  }
  const button = row.querySelector(".cancel-job");
  if (button) button.hidden = isTerminal(job.status);
}

/** Who or what started a batch, from its `started_by` (issue 25): a schedule (by name), a re-run
 * of another batch (a link to it), or someone by hand (the API key's name when the server knows
 * one). With `when`, the time it started follows: "schedule nightly, 48 s ago". */
export function startedBy(batch, { when = false } = {}) {
  const how = batch.started_by;
  const time = when && batch.started_at ? [", ", timeEl(batch.started_at)] : [];
  if (!how) return h("span", { class: "started-by muted" }, "—");
  if (how.kind === "schedule") {
    return h("span", { class: "started-by", "data-kind": how.kind }, "schedule ", h("a", { href: "/schedules" }, how.name), time);
  }
  if (how.kind === "rerun") {
    return h("span", { class: "started-by", "data-kind": how.kind }, "re-run of ", h("a", { href: `/runs/${how.name}` }, how.name), time);
  }
  const who = how.name ? h("span", { title: `Started by hand with the API key ${how.name}` }, how.name) : "by hand";
  return h("span", { class: "started-by", "data-kind": how.kind }, who, time);
}

/** A new card for `batch` (the live.js shape: summary fields + jobs Map). */
export function batchCard(batch, options) {
  const cancelButton = options.canTrigger
    ? h("button", { type: "button", class: "small danger cancel-batch" }, "Cancel run")
    : null;
  if (cancelButton) {
    cancelButton.addEventListener("click", () =>
      cancel(`/api/collectors/runs/batch/${encodeURIComponent(batch.batch_id)}/cancel`, options.onCancelled));
  }
  const card = h("li", { class: "batch-card", dataset: { batchId: batch.batch_id } },
    h("div", { class: "batch-head" },
      h("a", { href: `/runs/${batch.batch_id}`, class: "batch-link" }, batch.batch_id),
      statusBadge(batch.status),
      h("span", { class: "muted batch-when" }),
      h("span", { class: "grow" }),
      cancelButton),
    bar(`Run ${batch.batch_id} progress`),
    h("p", { class: "message batch-message" }),
    h("div", { class: "batch-error" }),
    h("ul", { class: "jobs" }));
  card.options = options;
  updateBatchCard(card, batch);
  return card;
}

export function updateBatchCard(card, batch) {
  setStatus(card.querySelector(".batch-head .status"), batch.status);
  setBar(card.querySelector(":scope > .bar"), batch.progress_percent, batch.status);
  const message = card.querySelector(".batch-message");
  if (message.textContent !== (batch.message || "")) message.textContent = batch.message || "";
  const when = card.querySelector(".batch-when");
  if (batch.started_at && !when.firstChild) when.append("started ", timeEl(batch.started_at));
  const errorBox = card.querySelector(".batch-error");
  if ((errorBox.dataset.text || "") !== (batch.error || "")) {
    errorBox.dataset.text = batch.error || "";
    errorBox.replaceChildren(...[errorText(batch.error)].filter(Boolean));
  }
  const cancelButton = card.querySelector(".cancel-batch");
  if (cancelButton) cancelButton.hidden = isTerminal(batch.status);
  const list = card.querySelector(".jobs");
  const rows = card.rows || (card.rows = new Map());
  for (const job of batch.jobs.values()) {
    let row = rows.get(job.job_id);
    if (!row) {
      row = jobRow(job, card.options);
      rows.set(job.job_id, row);
      list.append(row);
    }
    updateJobRow(row, job);
  }
}
