// Runs: batches newest first (GET /api/collectors/batches), filtered by collector, status and
// date range, paged with the server's cursors. The filters and the page are in the address,
// so a filtered list can be shared and back and forward walk through pages.

import { JOB_STATUSES } from "../../collector-hub-client.js";
import { api } from "../api.js";
import { duration, h, showError, statusBadge, table, timeEl } from "../dom.js";
import * as live from "../live.js";
import { navigate } from "../router.js";
import { startedBy } from "../runcards.js";

const FILTERS = ["collectors", "status", "since", "until"];

function jobCounts(counts) {
  return Object.entries(counts || {}).filter(([, n]) => n > 0).map(([status, n]) => `${n} ${status}`).join(", ");
}

function row(batch) {
  const cells = [
    ["Run", h("a", { href: `/runs/${batch.batch_id}` }, batch.batch_id)],
    ["Status", statusBadge(batch.status)],
    ["Collectors", batch.collectors.join(", ")],
    ["Jobs", jobCounts(batch.job_statuses)],
    ["Started", timeEl(batch.started_at)],
    ["Duration", duration(batch.duration_seconds)],
    ["Started by", startedBy(batch)],
  ];
  return h("tr", { dataset: { batchId: batch.batch_id } }, cells.map(([label, value]) => h("td", { "data-label": label }, value)));
}

/** The API's parameters from the address's: a date in `until` means the end of that day. */
function apiParams(query) {
  const params = new URLSearchParams();
  for (const name of [...FILTERS, "cursor"]) {
    let value = query.get(name);
    if (!value) continue;
    if (name === "until" && /^\d{4}-\d{2}-\d{2}$/.test(value)) value = `${value}T23:59:59.999999Z`;
    params.set(name, value);
  }
  params.set("limit", "25");
  return params;
}

export function mount(main, _params, query) {
  const field = (label, control) => h("label", {}, label, control);
  const collectorSelect = h("select", { name: "collectors", id: "filter-collector" }, h("option", { value: "" }, "All"));
  const statusSelect = h("select", { name: "status", id: "filter-status" }, h("option", { value: "" }, "Any"),
    JOB_STATUSES.map((s) => h("option", { value: s, selected: query.get("status") === s }, s)));
  const since = h("input", { type: "date", name: "since", id: "filter-since", value: query.get("since") || "" });
  const until = h("input", { type: "date", name: "until", id: "filter-until", value: query.get("until") || "" });
  const form = h("form", { class: "form-row", id: "runs-filters", role: "search", "aria-label": "Filter runs" },
    field("Collector", collectorSelect), field("Status", statusSelect), field("From", since), field("To", until),
    h("button", { type: "submit" }, "Apply"), h("a", { href: "/runs" }, "Clear"));
  const runs = table("Runs, newest first", ["Run", "Status", "Collectors", "Jobs", "Started", "Duration", "Started by"], "stack");
  runs.el.id = "runs";
  const pager = h("div", { class: "pager" });
  main.append(h("h1", {}, "Runs"), h("section", { class: "panel" }, form, runs.el, pager));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, el] of [["collectors", collectorSelect], ["status", statusSelect], ["since", since], ["until", until]]) {
      if (el.value) next.set(name, el.value);
    }
    navigate(`/runs${next.size ? `?${next}` : ""}`);
  });

  const controller = new AbortController();
  async function load() {
    try {
      const body = await api(`/api/collectors/batches?${apiParams(query)}`, { signal: controller.signal });
      runs.tbody.replaceChildren(...body.batches.map(row));
      if (body.batches.length === 0) runs.tbody.append(h("tr", {}, h("td", { colspan: 7 }, "No runs match.")));
      const links = [];
      if (query.get("cursor")) {
        const first = new URLSearchParams(query);
        first.delete("cursor");
        links.push(h("a", { href: `/runs${first.size ? `?${first}` : ""}`, id: "newest-page" }, "Newest"));
      }
      if (body.next_cursor) {
        const next = new URLSearchParams(query);
        next.set("cursor", body.next_cursor);
        links.push(h("a", { href: `/runs?${next}`, id: "older-page", rel: "next" }, "Older runs →"));
      }
      pager.replaceChildren(...links);
    } catch (err) {
      if (!controller.signal.aborted) showError(err.message);
    }
  }
  api("/api/collectors", { signal: controller.signal }).then(({ collectors }) => {
    for (const c of collectors) {
      collectorSelect.append(h("option", { value: c.name, selected: c.name === query.get("collectors") }, c.job_name));
    }
  }).catch(() => {});
  load();
  // On the first page, a status change pushed by the live subscription reloads the list (at
  // most every 2 s): the page never polls on its own. Older pages do not move.
  const snapshot = () => [...live.batches.values()].map((b) => `${b.batch_id}:${b.status}`).join();
  let statuses = snapshot();
  let timer = null;
  const unsubscribe = live.subscribe(() => {
    if (query.get("cursor")) return;
    const now = snapshot();
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
