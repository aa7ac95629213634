// Overview: start a run; every active batch, live, with per-job bars; the queue; each
// collector's last result. One subscription (live.js) feeds all of it.

import { isTerminal } from "../../collector-hub-client.js";
import { api, can } from "../api.js";
import { sparkline } from "../charts.js";
import { announce, duration, h, showError, statusBadge, table, timeEl } from "../dom.js";
import * as live from "../live.js";
import { batchCard, updateBatchCard } from "../runcards.js";

const FINISHED_SHOWN = 5;
const STATS_WINDOW = "7d";
const REFRESH_MS = 10000; // figures re-read at most this often, and only when a run ended

function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${Math.round(rate * 100)}%`;
}

function runnerRow(runner) {
  const cells = [
    ["Runner", h("span", { title: runner.runner_id }, runner.host)],
    ["State", h("span", { class: "status", "data-status": runner.live ? "running" : "cancelled" }, runner.live ? "live" : "silent")],
    ["Load", `${runner.running_jobs.length} of ${runner.capacity}`],
    ["Collectors", runner.collectors.join(", ")],
    ["Heartbeat", timeEl(runner.last_heartbeat)],
  ];
  return h("tr", { dataset: { runnerId: runner.runner_id } }, cells.map(([label, value]) => h("td", { "data-label": label }, value)));
}

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
  const collectorsTable = table("Each collector's last run and its last 7 days",
    ["Collector", "Last result", "When", "Duration", "Message", "Success (7 d)", "Median (7 d)", "Runs per day"], "stack");
  const runnersTable = table("Runners", ["Runner", "State", "Load", "Collectors", "Heartbeat"], "stack");
  runnersTable.el.id = "runners";
  collectorsTable.el.id = "collectors";
  const startPanel = h("section", { class: "panel", "aria-labelledby": "start-title", hidden: true },
    h("h2", { id: "start-title" }, "Start a run"));
  main.append(
    h("h1", {}, "Overview"),
    h("div", { class: "grid" },
      h("section", { class: "panel", "aria-labelledby": "queue-title" }, h("h2", { id: "queue-title" }, "Queue"), queue),
      startPanel),
    h("section", { class: "panel", "aria-labelledby": "runners-title" }, h("h2", { id: "runners-title" }, "Runners"), runnersTable.el),
    h("section", { class: "panel", "aria-labelledby": "active-title" },
      h("h2", { id: "active-title" }, "Active runs"), empty, active,
      h("h2", { class: "finished-title", hidden: true }, "Finished since this page opened"), finished),
    h("section", { class: "panel", "aria-labelledby": "collectors-title" },
      h("h2", { id: "collectors-title" }, "Collectors"), collectorsTable.el));

  let options = { canTrigger: false };
  const cards = new Map();
  const shownStatus = new Map();
  const collectorRows = new Map();
  const stats = new Map(); // collector -> its GET /api/collectors/stats entry

  function drawBatch(batch) {
    let card = cards.get(batch.batch_id);
    const terminal = isTerminal(batch.status);
    if (!card) {
      if (terminal && !shownStatus.has(batch.batch_id)) return; // ended before we saw it run
      if (!batch.complete) return; // first seen mid-run by one job: drawn whole once its GET is in
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
        figuresMoved();
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
    if (row.shown === job && row.shownStats === stats.get(job.collector)) return;
    row.shown = job;
    const figures = stats.get(job.collector);
    row.shownStats = figures;
    const series = figures ? figures.series : [];
    const cells = [
      ["Collector", h("a", { href: `/collectors/${encodeURIComponent(job.collector)}` }, job.job_name)],
      ["Last result", statusBadge(job.status)],
      ["When", timeEl(job.started_at)],
      ["Duration", duration(job.duration_seconds)],
      ["Message", job.error || job.message || ""],
      ["Success (7 d)", figures ? percent(figures.success_rate) : "—"],
      ["Median (7 d)", figures ? duration(figures.duration_seconds.p50) : "—"],
      ["Runs per day", series.length ? sparkline(series.map((p) => p.runs), `Runs per ${STATS_WINDOW === "7d" ? "day" : "interval"} of ${job.job_name} over 7 days: ${series.map((p) => p.runs).join(", ")}`) : "—"],
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

  const controller = new AbortController();
  let refreshed = 0;
  let refreshTimer = null;
  async function loadFigures() {
    refreshed = Date.now();
    try {
      const [body, runners] = await Promise.all([
        api(`/api/collectors/stats?window=${STATS_WINDOW}`, { signal: controller.signal }),
        api("/api/runners", { signal: controller.signal }),
      ]);
      for (const entry of body.collectors) stats.set(entry.collector, entry);
      for (const row of collectorRows.values()) if (row.shown) drawCollector(row.shown);
      const shown = runners.runners.filter((r) => !r.stopped_at);
      runnersTable.tbody.replaceChildren(...(shown.length ? shown.map(runnerRow) : [h("tr", {}, h("td", { colspan: 5 }, "No runner is running."))]));
    } catch (err) {
      if (!controller.signal.aborted) showError(err.message);
    }
  }
  /** A run ended: statistics and runner loads moved; re-read them (at most every 10 s). */
  function figuresMoved() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; loadFigures(); }, Math.max(0, refreshed + REFRESH_MS - Date.now()));
  }
  // Batches that were running before the page opened: one read (the live subscription only
  // starts with each collector's latest run).
  api("/api/collectors/batches?status=queued,running&limit=100", { signal: controller.signal })
    .then(({ batches }) => { for (const b of batches) live.ensureBatch(b.batch_id); })
    .catch(() => {});
  loadFigures();

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
  return () => {
    unsubscribe();
    controller.abort();
    clearTimeout(refreshTimer);
  };
}
