// Collector: one collector's recent runs, their durations over time, its success rate over
// those runs and its last error.

import { api } from "../api.js";
import { barChart } from "../charts.js";
import { duration, errorText, h, showError, statusBadge, table, timeEl } from "../dom.js";

const RECENT = 100;

export function mount(main, [name]) {
  const heading = h("h1", {}, `Collector ${name}`);
  const figures = h("dl", { class: "figures", id: "collector-figures" });
  const chart = h("div", { id: "duration-chart" });
  const lastError = h("div", { id: "last-error" });
  const recent = table("Recent runs", ["Run", "Status", "Started", "Duration", "Message"], "stack");
  main.append(heading,
    h("section", { class: "panel" }, h("h2", {}, "Summary"), figures, lastError),
    h("section", { class: "panel" }, h("h2", {}, "Duration of recent runs"), chart),
    h("section", { class: "panel" }, h("h2", {}, "Recent runs"), recent.el,
      h("p", {}, h("a", { href: `/runs?collector=${encodeURIComponent(name)}` }, "All runs of this collector"))));
  const controller = new AbortController();
  (async () => {
    try {
      const { collectors } = await api("/api/collectors", { signal: controller.signal });
      const spec = collectors.find((c) => c.name === name);
      if (!spec) {
        showError(`There is no collector named ${name}.`);
        return;
      }
      heading.textContent = `Collector ${spec.job_name}`;
      document.title = `${heading.textContent} · Collector Hub`;
      const { collection_history: runs } = await api(`/api/collectors/history?collectors=${encodeURIComponent(name)}&limit=${RECENT}`, { signal: controller.signal });
      const finished = runs.filter((r) => ["completed", "failed", "cancelled"].includes(r.status));
      const ok = finished.filter((r) => r.status === "completed");
      const durations = ok.map((r) => r.duration_seconds).sort((a, b) => a - b);
      const median = durations.length ? durations[Math.floor((durations.length - 1) / 2)] : null;
      figures.replaceChildren(
        h("div", {}, h("dt", {}, `Success (last ${finished.length} finished)`), h("dd", { id: "success-rate" }, finished.length ? `${Math.round((100 * ok.length) / finished.length)}%` : "—")),
        h("div", {}, h("dt", {}, "Median duration"), h("dd", {}, duration(median))),
        h("div", {}, h("dt", {}, "Timeout"), h("dd", {}, duration(spec.timeout_seconds))),
        h("div", {}, h("dt", {}, "Last run"), h("dd", {}, runs[0] ? timeEl(runs[0].started_at) : "never")));
      const failedRun = runs.find((r) => r.status === "failed");
      lastError.replaceChildren(...(failedRun
        ? [h("h3", {}, "Last error ", timeEl(failedRun.started_at)), errorText(failedRun.error || "failed without a message")]
        : [h("p", { class: "muted" }, "No failed run among the recent ones.")]));
      const points = finished.slice().reverse().map((r) => ({ label: new Date(r.started_at).toISOString().slice(5, 16).replace("T", " "), value: r.duration_seconds, status: r.status }));
      chart.replaceChildren(points.length
        ? barChart(points, { title: `Durations of the last ${points.length} finished runs of ${name}, oldest first; failed runs in red` })
        : h("p", { class: "muted" }, "No finished run yet."));
      recent.tbody.replaceChildren(...runs.slice(0, 20).map((r) => h("tr", {},
        h("td", { "data-label": "Run" }, h("a", { href: `/runs/${r.batch_id}` }, r.batch_id)),
        h("td", { "data-label": "Status" }, statusBadge(r.status)),
        h("td", { "data-label": "Started" }, timeEl(r.started_at)),
        h("td", { "data-label": "Duration" }, duration(r.duration_seconds)),
        h("td", { "data-label": "Message" }, r.error || r.message || ""))));
    } catch (err) {
      if (!controller.signal.aborted) showError(err.message);
    }
  })();
  return () => controller.abort();
}
