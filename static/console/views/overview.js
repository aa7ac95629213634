// Overview: start a run; every active batch, live, with per-job bars; the queue and the
// runners' loads; each collector's last result. One subscription (live.js) feeds all of it:
// the running-jobs figure and each runner's load are counted from the same job states, in the
// same frame, and neither is shown before the runs in progress have been read.

import { DEFAULT_PRIORITY, PRIORITIES, isTerminal } from "../../collector-hub-client.js";
import { api, can } from "../api.js";
import { sparkline } from "../charts.js";
import { announce, duration, errorText, h, healthBadge, healthDetail, showError, statusBadge, table, timeEl } from "../dom.js";
import * as live from "../live.js";
import { batchCard, updateBatchCard } from "../runcards.js";

const FINISHED_SHOWN = 5;
const STATS_WINDOW = "7d";
const REFRESH_MS = 10000; // figures re-read at most this often, and only when a run ended

function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${Math.round(rate * 100)}%`;
}

/** A runner's row: what it claims (its collectors, and the vendor collectors it knows but does
 * not take, for want of their credentials where it runs), its labels (which a collector may
 * require), its load and heartbeat. Runner routing: docs/COLLECTORS.md. */
function runnerRow(runner) {
  const without = runner.without_credentials || [];
  const labels = runner.labels || [];
  const cells = [
    ["Runner", h("span", { title: runner.runner_id }, runner.host)],
    ["State", h("span", { class: "status", "data-status": runner.live ? "running" : "cancelled" }, runner.live ? "live" : "silent")],
    ["Load", h("span", { class: "runner-load" }, "—")],
    ["Collectors", h("span", { class: "runner-collectors" }, runner.collectors.join(", ")),
      without.length ? h("span", { class: "muted without-credentials" }, ` Not ${without.join(", ")}: no credentials configured here.`) : null],
    ["Labels", labels.length ? labels.join(", ") : h("span", { class: "muted" }, "none")],
    ["Heartbeat", timeEl(runner.last_heartbeat)],
  ];
  return h("tr", { dataset: { runnerId: runner.runner_id } }, cells.map(([label, ...values]) => h("td", { "data-label": label }, h("div", {}, values))));
}

/** Each runner's load from the live job states: the running jobs its last heartbeat listed, and
 * a running job no heartbeat lists yet (claimed since) when it is the only live runner offering
 * that collector. `unplaced` counts the running jobs neither rule places; `ambiguous` holds the
 * ids of those that several live runners could have claimed (their next heartbeats will say). */
function runnerLoads(runners, running) {
  const loads = new Map(runners.map((r) => [r.runner_id, 0]));
  const listed = new Map();
  for (const runner of runners) for (const jobId of runner.running_jobs) listed.set(jobId, runner.runner_id);
  let unplaced = 0;
  const ambiguous = [];
  for (const job of running) {
    let owner = listed.get(job.job_id);
    if (!owner) {
      const offering = runners.filter((r) => r.live && r.collectors.includes(job.collector));
      if (offering.length === 1) owner = offering[0].runner_id;
      else if (offering.length > 1) ambiguous.push(job.job_id);
    }
    if (owner) loads.set(owner, loads.get(owner) + 1);
    else unplaced += 1;
  }
  return { loads, unplaced, ambiguous };
}

const capitalized = (word) => word.charAt(0).toUpperCase() + word.slice(1);

/** The Start form, disabled until fill(collectors) gives it the collectors to choose from. They
 * are listed by name, as `collector-hub run NAME` takes them. */
function startForm() {
  const choices = h("div", { class: "choices" }, h("span", { class: "muted", id: "start-loading" }, "Loading collectors…"));
  const button = h("button", { type: "submit", id: "start-button", class: "primary", disabled: true }, "Start run");
  let loaded = false;
  const form = h("form", { id: "start-form", "aria-busy": "true" },
    h("fieldset", {}, h("legend", {}, "Collectors"), choices),
    h("div", { class: "form-row" },
      h("label", {}, "Priority",
        h("select", { id: "priority", name: "priority" },
          PRIORITIES.map((p) => h("option", { value: p, selected: p === DEFAULT_PRIORITY }, capitalized(p))))),
      button));
  form.fill = (collectors) => {
    choices.replaceChildren(...(collectors.length
      ? collectors.map((c) => h("label", { title: c.job_name }, h("input", { type: "checkbox", name: "collector", value: c.name }), ` ${c.name}`))
      : [h("span", { class: "muted" }, "No collectors are configured.")]));
    loaded = collectors.length > 0;
    button.disabled = !loaded;
    form.removeAttribute("aria-busy");
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!loaded) return;
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

/** Put `card` first in `list`. Moving a node takes the keyboard focus off anything inside it,
 * so a run that ends while its link or button has the focus gives it back afterwards. */
function moveKeepingFocus(card, list) {
  const focused = card.contains(document.activeElement) ? document.activeElement : null;
  list.prepend(card);
  if (focused && document.activeElement !== focused) focused.focus({ preventScroll: true });
}

/** The variances at a glance (docs/VARIANCES.md), read once from GET /api/status: the open
 * MISSING_THREATLOCKER variances (devices without the agent) and each source's data freshness.
 * Appended to the page's end; an error leaves its figures at "—" (the other panels say why). */
function variancesPanel(main, signal) {
  const figures = h("dl", { class: "figures", id: "overview-variances" },
    h("div", {}, h("dt", {}, h("a", { href: "/variances?type=MISSING_THREATLOCKER" }, "Without ThreatLocker")), h("dd", { id: "missing-threatlocker" }, "—")));
  main.append(h("section", { class: "panel", "aria-labelledby": "overview-variances-title" },
    h("h2", { id: "overview-variances-title" }, "Variances"), figures));
  api("/api/status", { signal }).then((status) => {
    figures.querySelector("#missing-threatlocker").textContent = String(status.exception_counts.MISSING_THREATLOCKER ?? 0);
    for (const [source, fresh] of Object.entries(status.vendor_status)) {
      figures.append(h("div", { dataset: { source, freshness: fresh.freshness_status } },
        h("dt", {}, `${source} data`), h("dd", { title: fresh.latest_date || "" }, fresh.freshness_message)));
    }
  }).catch(() => {});
}

export function mount(main) {
  const active = h("ul", { class: "batches", id: "active-batches", "aria-label": "Active runs" });
  const finished = h("ul", { class: "batches", id: "finished-batches", "aria-label": "Finished since this page opened" });
  const empty = h("p", { class: "muted", id: "no-active", hidden: true }, "No run in progress.");
  const queue = h("dl", { class: "figures", id: "queue" });
  const collectorsTable = table("Each collector's last run and its last 7 days",
    ["Collector", "Health", "Last result", "When", "Duration", "Message", "Success (7 d)", "Median (7 d)", "Runs per day"], "stack");
  const runnersTable = table("Runners", ["Runner", "State", "Load", "Collectors", "Labels", "Heartbeat"], "stack");
  const unplacedNote = h("p", { class: "muted", id: "unplaced-jobs", hidden: true });
  runnersTable.el.id = "runners";
  collectorsTable.el.id = "collectors";
  const startPanel = h("section", { class: "panel", "aria-labelledby": "start-title", hidden: true },
    h("h2", { id: "start-title" }, "Start a run"));
  main.append(
    h("h1", {}, "Overview"),
    h("div", { class: "grid" },
      h("section", { class: "panel", "aria-labelledby": "queue-title" }, h("h2", { id: "queue-title" }, "Queue"), queue),
      startPanel),
    h("section", { class: "panel", "aria-labelledby": "runners-title" }, h("h2", { id: "runners-title" }, "Runners"), runnersTable.el, unplacedNote),
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
  const health = new Map(); // collector -> its GET /api/collectors/health entry
  let runners = null; // the last GET /api/runners list (stopped ones left out)
  const askedAbout = new Set(); // running jobs whose runner a re-read of the list was asked for
  // The runs in progress are known once they have been read (GET .../batches, then each batch):
  // before that (and behind the key prompt) the queue's figures say nothing rather than 0.
  let activeKnown = false;

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
        moveKeepingFocus(card, finished);
        while (finished.children.length > FINISHED_SHOWN) {
          const id = finished.lastChild.dataset.batchId;
          cards.delete(id);
          shownStatus.delete(id);
          finished.lastChild.remove();
        }
      }
    }
  }

  function collectorRow(name) {
    let row = collectorRows.get(name);
    if (!row) {
      row = collectorsTable.tbody.appendChild(h("tr", { dataset: { collector: name } }));
      collectorRows.set(name, row);
    }
    return row;
  }

  /** A configured collector that has never run: its row says so (once that is known). */
  function drawNoRuns(collector) {
    const row = collectorRow(collector.name);
    if (row.shown) return;
    row.replaceChildren(nameCell(row, collector.name, collector.job_name), healthCell(row, collector.name),
      h("td", { "data-label": "Last result", colspan: 7, class: "muted no-runs" }, "No runs yet"));
  }

  /** The row's first cell, the link to the collector's page: made once and kept, never rebuilt
   * when the row's figures are redrawn, so that a click on it is never lost to a redraw (a
   * mouse press on a link that is replaced before the release is no click). */
  function nameCell(row, name, jobName) {
    if (!row.nameCell) {
      row.nameLink = h("a", { href: `/collectors/${encodeURIComponent(name)}` }, jobName);
      row.nameCell = h("td", { "data-label": "Collector" }, row.nameLink);
    }
    if (row.nameLink.textContent !== jobName) row.nameLink.textContent = jobName;
    return row.nameCell;
  }

  /** The row's health cell: kept like the name's, its badge redrawn when the state moves. */
  function healthCell(row, name) {
    if (!row.healthCell) row.healthCell = h("td", { "data-label": "Health", class: "health-cell" });
    const entry = health.get(name);
    const key = entry ? `${entry.state}|${entry.consecutive_failures}|${entry.last_success_at}` : "";
    if (row.healthKey !== key) {
      row.healthKey = key;
      const detail = healthDetail(entry);
      row.healthCell.replaceChildren(...(entry
        ? [healthBadge(entry.state, detail), entry.state === "healthy" ? null : h("span", { class: "muted health-detail" }, ` ${detail}`)].filter(Boolean)
        : [h("span", { class: "muted" }, "—")]));
    }
    return row.healthCell;
  }

  function drawCollector(job) {
    const row = collectorRow(job.collector);
    if (row.shown === job && row.shownStats === stats.get(job.collector)) return;
    row.shown = job;
    const figures = stats.get(job.collector);
    row.shownStats = figures;
    const series = figures ? figures.series : [];
    const cells = [
      ["Last result", statusBadge(job.status)],
      ["When", timeEl(job.started_at)],
      ["Duration", duration(job.duration_seconds)],
      ["Message", job.error ? errorText(job.error, 80) : job.message || ""],
      ["Success (7 d)", figures ? percent(figures.success_rate) : "—"],
      ["Median (7 d)", figures ? duration(figures.duration_seconds.p50) : "—"],
      ["Runs per day", series.length ? sparkline(series.map((p) => p.runs), `Runs per ${STATS_WINDOW === "7d" ? "day" : "interval"} of ${job.job_name} over 7 days: ${series.map((p) => p.runs).join(", ")}`) : "—"],
    ];
    const name = nameCell(row, job.collector, job.job_name);
    const state = healthCell(row, job.collector);
    const drawn = cells.map(([label, value]) => h("td", { "data-label": label }, value));
    if (row.firstChild === name && row.children[1] === state && row.children.length === drawn.length + 2) {
      // The link stays where it is; only the figures' cells are swapped.
      for (const [i, cell] of drawn.entries()) row.children[i + 2].replaceWith(cell);
    } else {
      row.replaceChildren(name, state, ...drawn);
    }
  }

  /** `job` if it is newer than what the collector's row shows. */
  function offerLatest(job) {
    const shown = collectorRows.get(job.collector);
    if (!shown || !shown.shown || shown.shown.job_id === job.job_id || job.started_at >= shown.shown.started_at) drawCollector(job);
  }

  function figure(label, id, value) {
    return h("div", {}, h("dt", {}, label), h("dd", { id }, value));
  }

  /** The queue's figures and each runner's load, from the same live job states. */
  function drawQueue() {
    let queued = 0;
    let oldest = null;
    const running = [];
    for (const batch of live.batches.values()) {
      if (isTerminal(batch.status)) continue;
      for (const job of batch.jobs.values()) {
        if (job.status === "queued") {
          queued += 1;
          if (!oldest || job.started_at < oldest) oldest = job.started_at;
        } else if (job.status === "running") running.push(job);
      }
    }
    const unknown = "—";
    queue.replaceChildren(
      figure("Running jobs", "running-count", activeKnown ? running.length : unknown),
      figure("Queued jobs", "queued-count", activeKnown ? queued : unknown),
      figure("Oldest queued", "oldest-queued", activeKnown && oldest ? timeEl(oldest) : unknown));
    if (!runners) return;
    const { loads, unplaced, ambiguous } = runnerLoads(runners, running);
    for (const runner of runners) {
      const cell = runnersTable.tbody.querySelector(`tr[data-runner-id="${CSS.escape(runner.runner_id)}"] .runner-load`);
      const text = activeKnown ? `${loads.get(runner.runner_id)} of ${runner.capacity}` : unknown;
      if (cell && cell.textContent !== text) cell.textContent = text;
    }
    unplacedNote.hidden = !activeKnown || unplaced === 0;
    unplacedNote.textContent = `${unplaced} running job${unplaced === 1 ? " is" : "s are"} on no runner's list yet (runners report what they run with each heartbeat).`;
    // A job several runners could have claimed: their next heartbeats say which; read the list
    // again once for it (nothing is polled while it runs).
    if (ambiguous.some((id) => !askedAbout.has(id))) figuresMoved();
    askedAbout.clear();
    for (const id of ambiguous) askedAbout.add(id);
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
    for (const job of latest.values()) offerLatest(job);
    empty.hidden = !activeKnown || active.children.length > 0;
    main.querySelector(".finished-title").hidden = finished.children.length === 0;
    drawQueue();
  }

  const controller = new AbortController();
  const signal = controller.signal;
  variancesPanel(main, signal);
  let refreshed = 0;
  let refreshTimer = null;
  async function loadFigures() {
    refreshed = Date.now();
    try {
      const [body, runnerList, healthList] = await Promise.all([
        api(`/api/collectors/stats?window=${STATS_WINDOW}`, { signal }),
        api("/api/runners", { signal }),
        api("/api/collectors/health", { signal }),
      ]);
      for (const entry of body.collectors) stats.set(entry.collector, entry);
      for (const entry of healthList.collectors) health.set(entry.collector, entry);
      for (const [name, row] of collectorRows) healthCell(row, name);
      for (const row of collectorRows.values()) if (row.shown) drawCollector(row.shown);
      runners = runnerList.runners.filter((r) => !r.stopped_at);
      runnersTable.tbody.replaceChildren(...(runners.length ? runners.map(runnerRow) : [h("tr", {}, h("td", { colspan: 6 }, "No runner is running."))]));
      drawQueue();
    } catch (err) {
      if (!signal.aborted) showError(err.message);
    }
  }
  /** A run ended, or a job started that several runners could have claimed: statistics and
   * runner lists moved; re-read them (at most every 10 s). */
  function figuresMoved() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; loadFigures(); }, Math.max(0, refreshed + REFRESH_MS - Date.now()));
  }
  // Batches that were running before the page opened: one read (the live subscription only
  // starts with each collector's latest run); the queue's figures are known once they are in.
  api("/api/collectors/batches?status=queued,running&limit=100", { signal })
    .then(({ batches }) => Promise.all(batches.map((b) => live.ensureBatch(b.batch_id))))
    .then(() => {
      if (signal.aborted) return;
      activeKnown = true;
      draw(new Set());
    })
    .catch(() => {});
  loadFigures();

  const unsubscribe = live.subscribe(draw);
  draw(new Set(live.batches.keys()));
  const collectorList = api("/api/collectors", { signal }).then((body) => body.collectors);
  // Each configured collector's latest run (the live subscription brings later ones); one that
  // has none says "No runs yet".
  Promise.all([collectorList, api("/api/collectors/runs/latest", { signal })]).then(([collectors, { latest_runs: latest }]) => {
    for (const job of latest) offerLatest(job);
    for (const collector of collectors) {
      if (!collectorRows.has(collector.name)) drawNoRuns(collector);
      collectorsTable.tbody.append(collectorRows.get(collector.name)); // in the API's order
    }
    if (collectors.length === 0 && collectorRows.size === 0) {
      collectorsTable.tbody.replaceChildren(h("tr", {}, h("td", { colspan: 9 }, "No collectors are configured.")));
    }
  }).catch((err) => { if (!signal.aborted) showError(err.message); });
  can().then((rights) => {
    if (signal.aborted) return;
    options = { canTrigger: rights.trigger };
    if (rights.trigger) {
      const form = startForm();
      startPanel.append(form);
      startPanel.hidden = false;
      collectorList.then((collectors) => form.fill(collectors)).catch(() => {});
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
