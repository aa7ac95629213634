// Run: one batch and its jobs, live (its own tracker, so any batch, old or new, on any
// transport), with cancel buttons for the batch and each job.

import { track, isTerminal } from "../../collector-hub-client.js";
import { apiKey, can } from "../api.js";
import { announce, duration, exactUtc, h, showError, timeEl } from "../dom.js";
import { batchCard, startedBy, updateBatchCard } from "../runcards.js";

function details(body) {
  const rows = [
    ["Priority", body.priority],
    ["Started", timeEl(body.started_at)],
    ["Ended", timeEl(body.ended_at)],
    ["Duration", duration(body.duration_seconds)],
    ["Estimated completion", isTerminal(body.status) ? "finished" : body.estimated_completion ? exactUtc(body.estimated_completion) : "—"],
    ["Started by", startedBy(body)],
  ];
  return rows.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value)));
}

export function mount(main, [batchId]) {
  const heading = h("h1", {}, `Run ${batchId}`);
  const facts = h("dl", { class: "figures", id: "run-facts" });
  const holder = h("ul", { class: "batches", id: "run-batch" });
  main.append(heading,
    h("section", { class: "panel", "aria-labelledby": "run-jobs-title" },
      h("h2", { id: "run-jobs-title", class: "visually-hidden" }, "Jobs"), facts, holder));
  let card = null;
  let lastStatus = null;
  let options = null;
  let latest = null;

  function render(body) {
    latest = body;
    if (!options) return; // drawn once the key's rights are known
    const batch = { ...body, jobs: new Map(body.collectors.map((job) => [job.job_id, job])) };
    if (!card) {
      card = batchCard(batch, { ...options, linkJobs: false, onCancelled: render });
      holder.append(card);
    } else {
      updateBatchCard(card, batch);
    }
    facts.replaceChildren(...details(body));
    main.dataset.status = body.status;
    if (lastStatus && lastStatus !== body.status) announce(`Run ${batchId} is ${body.status}`);
    lastStatus = body.status;
  }

  const tracker = track(batchId, {
    onUpdate: render,
    onComplete: render,
    onError: (err) => {
      const text = (err && err.message) || String(err);
      showError((err && err.status === 404) || /not found/i.test(text) ? `Run ${batchId} was not found.` : text);
    },
    onTransport: (name, info) => {
      if (info.state === "connected") main.dataset.transport = name;
    },
  }, { token: apiKey() });
  can().then((rights) => {
    options = { canTrigger: rights.trigger };
    if (latest) render(latest);
  });
  return () => tracker.stop();
}
