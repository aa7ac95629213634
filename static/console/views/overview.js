// Overview: start a run; every active batch, live, with per-job bars; the queue; each
// collector's last result. One subscription (live.js) feeds all of it.

import { isTerminal } from "../../collector-hub-client.js";
import { api, can } from "../api.js";
import { announce, duration, h, showError, statusBadge, table, timeEl } from "../dom.js";
import * as live from "../live.js";
import { batchCard, updateBatchCard } from "../runcards.js";

const FINISHED_SHOWN = 5;

function startForm(collectors) {
  const choices = collectors.map((c) =>
    h("label", {}, h("input", { type: "checkbox", name: "collector", value: c.name }), ` ${c.job_name}`));
  const form = h("form", { id: "start-form" },
    h("fieldset", {}, h("legend", {}, "Collectors"), h("div", { class: "choices" }, choices)),
    h("div", { class: "form-row" },
      h("label", {}, "Priority",
        h("select", { id: "priority", name: "priority" },
          h("option", { value: "high" }, "High"), h("option", { value: "normal", selected: true }, "Normal"),
          h("option", { value: "low" }, "Low"))),
      h("button", { type: "submit", id: "start-button", class: "primary" }, "Start run")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const names = [...form.querySelectorAll("input[name=collector]:checked")].map((el) => el.value);
    if (names.length === 0) {
      showError("Choose at least one collector.");
      return;
    }
    showError("");
    form.querySelector("#start-button").disabled = true;
    try {
      const created = await api("/api/collectors/run", { method: "POST", body: { collectors: names, priority: form.priority.value } });
      live.receiveBatch({ ...created, progress_percent: 0, message: null }, null);
      announce(`Run ${created.batch_id} started`);
    } catch (err) {
      showError(err.message);
    } finally {
      form.querySelector("#start-button").disabled = false;
    }
  });
  return form;
}

export function mount(main) {
  const active = h("ul", { class: "batches", id: "active-batches", "aria-label": "Active runs" });
  const finished = h("ul", { class: "batches", id: "finished-batches", "aria-label": "Finished since this page opened" });
  const empty = h("p", { class: "muted", id: "no-active" }, "No run in progress.");
  const queue = h("dl", { class: "figures", id: "queue" });
  const collectorsTable = table("Each collector's last run", ["Collector", "Last result", "When", "Duration", "Message"], "stack");
  collectorsTable.el.id = "collectors";
  const startPanel = h("section", { class: "panel", "aria-labelledby": "start-title", hidden: true },
    h("h2", { id: "start-title" }, "Start a run"));
  main.append(
    h("h1", {}, "Overview"),
    h("div", { class: "grid" },
      h("section", { class: "panel", "aria-labelledby": "queue-title" }, h("h2", { id: "queue-title" }, "Queue"), queue),
      startPanel),
    h("section", { class: "panel", "aria-labelledby": "active-title" },
      h("h2", { id: "active-title" }, "Active runs"), empty, active,
      h("h2", { class: "finished-title", hidden: true }, "Finished since this page opened"), finished),
    h("section", { class: "panel", "aria-labelledby": "collectors-title" },
      h("h2", { id: "collectors-title" }, "Collectors"), collectorsTable.el));

  let options = { canTrigger: false };
  const cards = new Map();
  const shownStatus = new Map();
  const collectorRows = new Map();

  function drawBatch(batch) {
    let card = cards.get(batch.batch_id);
    const terminal = isTerminal(batch.status);
    if (!card) {
      if (terminal && !shownStatus.has(batch.batch_id)) return; // ended before we saw it run
      card = batchCard(batch, { ...options, onCancelled: (body) => live.receiveBatch(body, null) });
      cards.set(batch.batch_id, card);
      active.prepend(card);
    } else {
      updateBatchCard(card, batch);
    }
    const before = shownStatus.get(batch.batch_id);
    if (before !== batch.status) {
      shownStatus.set(batch.batch_id, batch.status);
      if (before) announce(`Run ${batch.batch_id} is ${batch.status}`);
      if (terminal) {
        finished.prepend(card);
        while (finished.children.length > FINISHED_SHOWN) {
          cards.delete(finished.lastChild.dataset.batchId);
          finished.lastChild.remove();
        }
      }
    }
  }

  function drawCollector(job) {
    let row = collectorRows.get(job.collector);
    if (!row) {
      row = collectorsTable.tbody.appendChild(h("tr", { dataset: { collector: job.collector } }));
      collectorRows.set(job.collector, row);
    }
    if (row.shown === job) return;
    row.shown = job;
    const cells = [
      ["Collector", h("a", { href: `/collectors/${encodeURIComponent(job.collector)}` }, job.job_name)],
      ["Last result", statusBadge(job.status)],
      ["When", timeEl(job.started_at)],
      ["Duration", duration(job.duration_seconds)],
      ["Message", job.error || job.message || ""],
    ];
    row.replaceChildren(...cells.map(([label, value]) => h("td", { "data-label": label }, value)));
  }

  function drawQueue() {
    let queued = 0;
    let running = 0;
    let oldest = null;
    for (const batch of live.batches.values()) {
      if (isTerminal(batch.status)) continue;
      for (const job of batch.jobs.values()) {
        if (job.status === "queued") {
          queued += 1;
          if (!oldest || job.started_at < oldest) oldest = job.started_at;
        } else if (job.status === "running") running += 1;
      }
    }
    queue.replaceChildren(
      h("div", {}, h("dt", {}, "Running jobs"), h("dd", { id: "running-count" }, running)),
      h("div", {}, h("dt", {}, "Queued jobs"), h("dd", { id: "queued-count" }, queued)),
      h("div", {}, h("dt", {}, "Oldest queued"), h("dd", {}, oldest ? timeEl(oldest) : "—")));
  }

  function draw(changed) {
    const latest = new Map();
    for (const id of changed) {
      const batch = live.batches.get(id);
      if (!batch) continue;
      drawBatch(batch);
      for (const job of batch.jobs.values()) {
        const best = latest.get(job.collector);
        if (!best || job.started_at >= best.started_at) latest.set(job.collector, job);
      }
    }
    for (const job of latest.values()) {
      const shown = collectorRows.get(job.collector);
      if (!shown || !shown.shown || shown.shown.job_id === job.job_id || job.started_at >= shown.shown.started_at) drawCollector(job);
    }
    empty.hidden = active.children.length > 0;
    main.querySelector(".finished-title").hidden = finished.children.length === 0;
    drawQueue();
  }

  const unsubscribe = live.subscribe(draw);
  draw(new Set(live.batches.keys()));
  Promise.all([can(), api("/api/collectors")]).then(([rights, { collectors }]) => {
    options = { canTrigger: rights.trigger };
    if (rights.trigger) {
      startPanel.append(startForm(collectors));
      startPanel.hidden = false;
    }
    for (const [id, card] of cards) {
      card.remove();
      cards.delete(id);
    }
    shownStatus.clear();
    draw(new Set(live.batches.keys()));
  }).catch((err) => showError(err.message));
  return unsubscribe;
}
