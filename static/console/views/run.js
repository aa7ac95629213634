// Run: one batch and its jobs, live (its own tracker, so any batch, old or new, on any
// transport): cancel the batch or a job, re-run what failed or everything, and each job's log
// tailing live.

import { track, isTerminal } from "../../collector-hub-client.js";
import { api, can, explain, trackerOptions } from "../api.js";
import { transport } from "../connection.js";
import { announce, duration, exactUtc, h, showError, timeEl } from "../dom.js";
import { logPanel } from "../logs.js";
import { navigate } from "../router.js";
import { batchCard, startedBy, updateBatchCard } from "../runcards.js";

// Logs of running jobs opened by themselves (the others open on demand): each streams, or polls
// when EventSource cannot get through, so then only one. A log that follows a job that has
// ended has stopped, so it no longer counts.
const OPEN_LOGS = 4;

function details(body) {
  const rows = [
    ["Priority", body.priority],
    ["Started", timeEl(body.started_at)],
    ["Ended", timeEl(body.ended_at)],
    ["Duration", duration(body.duration_seconds)],
    ["Estimated completion", isTerminal(body.status) ? "finished" : body.estimated_completion ? exactUtc(body.estimated_completion) : "—"],
    ["Started by", startedBy(body, { when: true })],
  ];
  return rows.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value)));
}

async function rerun(path, body) {
  try {
    const created = await api(path, { method: "POST", body });
    announce(`Re-run ${created.batch_id} started`);
    navigate(`/runs/${created.batch_id}`);
  } catch (err) {
    showError(err.message);
  }
}

export function mount(main, [batchId]) {
  const facts = h("dl", { class: "figures", id: "run-facts" });
  const holder = h("ul", { class: "batches", id: "run-batch" });
  const rerunFailed = h("button", { type: "button", id: "rerun-failed", hidden: true }, "Re-run failed jobs");
  const rerunAll = h("button", { type: "button", id: "rerun-all", hidden: true }, "Re-run all");
  const base = `/api/collectors/runs/batch/${encodeURIComponent(batchId)}`;
  rerunFailed.addEventListener("click", () => rerun(`${base}/rerun`, { only: "failed" }));
  rerunAll.addEventListener("click", () => rerun(`${base}/rerun`, { only: "all" }));
  const logs = h("section", { class: "panel", "aria-labelledby": "logs-title" }, h("h2", { id: "logs-title" }, "Logs"));
  main.append(h("h1", {}, `Run ${batchId}`),
    h("section", { class: "panel", "aria-labelledby": "run-jobs-title" },
      h("h2", { id: "run-jobs-title", class: "visually-hidden" }, "Jobs"), facts,
      h("div", { class: "actions" }, rerunFailed, rerunAll), holder),
    logs);
  let card = null;
  let lastStatus = null;
  let options = null;
  let latest = null;
  const panels = new Map();

  // A job's log opens by itself when the job is running, on every state drawn, not only the
  // first: a job queued at the view's first read starts later (its runner claims it a moment
  // after, or another server's does). One the operator opened or closed stays as they left it.
  function drawLogs(body) {
    const limit = transport() === "poll" ? 1 : OPEN_LOGS;
    let following = body.collectors.filter((job) => !isTerminal(job.status) && panels.get(job.job_id)?.el.open).length;
    for (const job of body.collectors) {
      let panel = panels.get(job.job_id);
      if (!panel) {
        panel = logPanel(job);
        panels.set(job.job_id, panel);
        logs.append(panel.el);
      }
      if (job.status === "running" && following < limit && panel.openByItself()) following += 1;
    }
  }

  function drawRerun(job, row) {
    if (!options.canTrigger || row.querySelector(".rerun-job")) return;
    const button = h("button", { type: "button", class: "small rerun-job", "aria-label": `Re-run ${job.job_name}` }, "Re-run");
    button.addEventListener("click", () => rerun(`/api/collectors/runs/job/${encodeURIComponent(job.job_id)}/rerun`, {}));
    row.insertBefore(button, row.querySelector(".job-message"));
  }

  function render(body) {
    latest = body;
    if (!options) return; // drawn once the key's rights are known
    const batch = { ...body, jobs: new Map(body.collectors.map((job) => [job.job_id, job])) };
    if (!card) {
      card = batchCard(batch, { ...options, onCancelled: render });
      holder.append(card);
    } else {
      updateBatchCard(card, batch);
    }
    for (const job of body.collectors) {
      if (isTerminal(job.status)) drawRerun(job, card.rows.get(job.job_id));
    }
    const ended = isTerminal(body.status);
    // Re-run failed jobs: the ones that ended without completing (failed or cancelled).
    rerunFailed.hidden = !options.canTrigger || !ended || body.collectors.every((j) => !isTerminal(j.status) || j.status === "completed");
    rerunAll.hidden = !options.canTrigger || !ended;
    facts.replaceChildren(...details(body));
    drawLogs(body);
    main.dataset.status = body.status;
    if (lastStatus && lastStatus !== body.status) announce(`Run ${batchId} is ${body.status}`);
    lastStatus = body.status;
  }

  const tracker = track(batchId, {
    onUpdate: render,
    onComplete: render,
    onError: (err) => {
      const text = explain(err);
      showError((err && err.status === 404) || /not found/i.test(text) ? `Run ${batchId} was not found.` : text);
    },
  }, trackerOptions());
  can().then((rights) => {
    options = { canTrigger: rights.trigger };
    if (latest) render(latest);
  });
  return () => {
    tracker.stop();
    for (const panel of panels.values()) panel.stop();
  };
}
