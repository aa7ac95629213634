// Collector: one collector's runs and failures per day and its median duration over a window
// (GET /api/collectors/stats), its success rate, duration percentiles and last error, its health
// (GET /api/collectors/health: state, last success and its age, failures in a row), the
// durations of its recent runs, and the runs themselves.

import { api } from "../api.js";
import { barChart } from "../charts.js";
import { duration, errorText, h, healthBadge, healthDetail, showError, statusBadge, table, timeEl } from "../dom.js";
import { navigate } from "../router.js";

const RECENT = 50;
const WINDOWS = ["24h", "7d", "30d", "90d"];

function bucketLabel(start, interval) {
  const iso = new Date(start).toISOString();
  return interval === "hour" ? iso.slice(5, 13).replace("T", " ") + "h" : iso.slice(5, 10);
}

function figure(label, value, id) {
  return h("div", {}, h("dt", {}, label), h("dd", id ? { id } : {}, value));
}

/** Its health (a collector no longer configured has none): the state, when it last succeeded
 * (however long ago, not only within the window) and its failed runs in a row. */
function healthFigures(health, entry) {
  if (!health) return [figure("Last success", entry.last_success ? timeEl(entry.last_success.ended_at) : "—")];
  const stale = health.stale_after_seconds === null ? "never stale" : `stale after ${duration(health.stale_after_seconds)} without success`;
  return [
    figure("Health", h("span", {}, healthBadge(health.state, healthDetail(health)), h("span", { class: "muted" }, ` (${stale})`)), "health-state"),
    figure("Last success", health.last_success_at ? timeEl(health.last_success_at) : "never", "last-success"),
    figure("Failed runs in a row", `${health.consecutive_failures} (failing from ${health.alert_after_failures})`, "consecutive-failures"),
  ];
}

export function mount(main, [name], query) {
  const window = WINDOWS.includes(query.get("window")) ? query.get("window") : "7d";
  const heading = h("h1", {}, `Collector ${name}`);
  const picker = h("select", { id: "stats-window", "aria-label": "Window" },
    WINDOWS.map((w) => h("option", { value: w, selected: w === window }, `last ${w}`)));
  picker.addEventListener("change", () => navigate(`/collectors/${encodeURIComponent(name)}?window=${picker.value}`, { replace: true, focus: false }));
  const figures = h("dl", { class: "figures", id: "collector-figures" });
  const lastError = h("div", { id: "last-error" });
  const runsChart = h("div", { id: "runs-chart" });
  const durationChart = h("div", { id: "median-chart" });
  const recentChart = h("div", { id: "duration-chart" });
  const recent = table("Recent runs", ["Run", "Status", "Started", "Duration", "Message"], "stack");
  main.append(heading,
    h("section", { class: "panel" }, h("div", { class: "form-row" }, h("h2", {}, "Summary"), picker), figures, lastError),
    h("div", { class: "grid" },
      h("section", { class: "panel" }, h("h2", {}, "Runs (failed in red)"), runsChart),
      h("section", { class: "panel" }, h("h2", {}, "Median duration"), durationChart)),
    h("section", { class: "panel" }, h("h2", {}, "Duration of recent runs"), recentChart),
    h("section", { class: "panel" }, h("h2", {}, "Recent runs"), recent.el,
      h("p", {}, h("a", { href: `/runs?collectors=${encodeURIComponent(name)}` }, "All runs of this collector"))));
  const controller = new AbortController();
  const signal = controller.signal;
  (async () => {
    try {
      const { collectors } = await api("/api/collectors", { signal });
      const spec = collectors.find((c) => c.name === name);
      if (spec) heading.textContent = `Collector ${spec.job_name}`;
      document.title = `${heading.textContent} · Collector Hub`;
      const [stats, history, healthList] = await Promise.all([
        api(`/api/collectors/stats?window=${window}&collectors=${encodeURIComponent(name)}`, { signal }),
        api(`/api/collectors/history?collectors=${encodeURIComponent(name)}&limit=${RECENT}`, { signal }),
        api("/api/collectors/health", { signal }),
      ]);
      const health = healthList.collectors.find((c) => c.collector === name);
      const entry = stats.collectors[0];
      const runs = history.collection_history;
      figures.replaceChildren(
        figure(`Runs (${window})`, entry.runs),
        figure("Success rate", entry.success_rate === null ? "—" : `${Math.round(entry.success_rate * 100)}%`, "success-rate"),
        figure("Duration p50 / p95", `${duration(entry.duration_seconds.p50)} / ${duration(entry.duration_seconds.p95)}`),
        figure("Queue wait p50", duration(entry.queue_wait_seconds.p50)),
        ...healthFigures(health, entry),
        ...(spec ? [] : [figure("Configured", "no longer")]));
      lastError.replaceChildren(...(entry.last_failure
        ? [h("h3", {}, "Last error ", timeEl(entry.last_failure.ended_at)), errorText(entry.last_failure.error || "failed without a message")]
        : [h("p", { class: "muted" }, `No failure in the last ${window}.`)]));
      const label = (p) => bucketLabel(p.start, stats.interval);
      runsChart.replaceChildren(barChart(
        entry.series.map((p) => ({ label: label(p), value: p.runs, part: p.failed, status: "completed", title: `${label(p)}: ${p.runs} runs, ${p.failed} failed` })),
        { title: `Runs of ${name} per ${stats.interval} over ${window}, failed ones in red`, format: (n) => (n === 1 ? "1 run" : `${n} runs`) }));
      durationChart.replaceChildren(barChart(
        entry.series.map((p) => ({ label: label(p), value: p.median_duration_seconds, status: "completed" })),
        { title: `Median duration of ${name} per ${stats.interval} over ${window}` }));
      const finished = runs.filter((r) => r.duration_seconds !== null).reverse();
      recentChart.replaceChildren(finished.length
        ? barChart(finished.map((r) => ({ label: new Date(r.started_at).toISOString().slice(5, 16).replace("T", " "), value: r.duration_seconds, status: r.status })),
          { title: `Durations of the last ${finished.length} finished runs of ${name}, oldest first; failed runs in red` })
        : h("p", { class: "muted" }, "No finished run yet."));
      recent.tbody.replaceChildren(...runs.slice(0, 20).map((r) => h("tr", {},
        h("td", { "data-label": "Run" }, h("a", { href: `/runs/${r.batch_id}` }, r.batch_id)),
        h("td", { "data-label": "Status" }, statusBadge(r.status)),
        h("td", { "data-label": "Started" }, timeEl(r.started_at)),
        h("td", { "data-label": "Duration" }, duration(r.duration_seconds)),
        h("td", { "data-label": "Message" }, r.error || r.message || ""))));
    } catch (err) {
      if (!signal.aborted) showError(err.message);
    }
  })();
  return () => controller.abort();
}
