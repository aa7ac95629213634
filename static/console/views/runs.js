// Runs: past and present runs, newest first, filtered by collector (in the address, so a
// filtered list can be shared), with durations and links to each run.

import { api } from "../api.js";
import { duration, h, showError, statusBadge, table, timeEl } from "../dom.js";
import * as live from "../live.js";
import { navigate } from "../router.js";

const PAGE = 50;

function row(run) {
  const cells = [
    ["Run", h("a", { href: `/runs/${run.batch_id}` }, run.batch_id)],
    ["Collector", h("a", { href: `/collectors/${encodeURIComponent(run.collector)}` }, run.job_name)],
    ["Status", statusBadge(run.status)],
    ["Started", timeEl(run.started_at)],
    ["Duration", duration(run.duration_seconds)],
    ["Message", run.error || run.message || ""],
  ];
  return h("tr", { dataset: { jobId: run.job_id } }, cells.map(([label, value]) => h("td", { "data-label": label }, value)));
}

export function mount(main, _params, query) {
  const collector = query.get("collector") || "";
  const limit = Math.min(500, Math.max(PAGE, Number(query.get("limit")) || PAGE));
  const select = h("select", { id: "filter-collector", name: "collector" }, h("option", { value: "" }, "All collectors"));
  const form = h("form", { class: "form-row", id: "runs-filters" },
    h("label", {}, "Collector", select),
    h("button", { type: "submit" }, "Apply"));
  const runs = table("Runs, newest first", ["Run", "Collector", "Status", "Started", "Duration", "Message"], "stack");
  runs.el.id = "runs";
  const more = h("button", { type: "button", id: "more-runs", hidden: true }, "Show more");
  main.append(h("h1", {}, "Runs"), h("section", { class: "panel" }, form, runs.el, h("div", { class: "pager" }, more)));

  const address = (changes) => {
    const next = new URLSearchParams({ ...(collector && { collector }), ...changes });
    for (const [k, v] of [...next]) if (!v) next.delete(k);
    return `/runs${next.size ? `?${next}` : ""}`;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(address({ collector: select.value, limit: "" }));
  });
  more.addEventListener("click", () => navigate(address({ limit: String(limit + PAGE) }), { replace: true, focus: false }));

  const controller = new AbortController();
  async function load() {
    try {
      const params = new URLSearchParams({ limit: String(limit) });
      if (collector) params.set("collectors", collector);
      const body = await api(`/api/collectors/history?${params}`, { signal: controller.signal });
      runs.tbody.replaceChildren(...body.collection_history.map(row));
      if (body.collection_history.length === 0) runs.tbody.append(h("tr", {}, h("td", { colspan: 6 }, "No runs match.")));
      more.hidden = body.collection_history.length < limit || limit >= 500;
    } catch (err) {
      if (!controller.signal.aborted) showError(err.message);
    }
  }
  api("/api/collectors", { signal: controller.signal }).then(({ collectors }) => {
    for (const c of collectors) select.append(h("option", { value: c.name, selected: c.name === collector }, c.job_name));
  }).catch(() => {});
  load();
  // A status change pushed by the live subscription reloads the list (at most every 2 s): the
  // page never polls on its own.
  let statuses = "";
  let timer = null;
  const unsubscribe = live.subscribe(() => {
    const now = [...live.batches.values()].map((b) => `${b.batch_id}:${b.status}`).join();
    if (now === statuses) return;
    statuses = now;
    if (!timer) timer = setTimeout(() => { timer = null; load(); }, 2000);
  });
  return () => {
    controller.abort();
    clearTimeout(timer);
    unsubscribe();
  };
}
