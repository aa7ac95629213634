// Audit trail (admin): who changed what, newest first (GET /api/audit, docs/AUDIT.md), filtered
// by actor, action, target, outcome and time range, paged with the server's cursors. The
// filters and the page are in the address, under the names the API takes, so a filtered list
// can be shared and back and forward walk through pages.

import { AUDIT_OUTCOMES as OUTCOMES } from "../../collector-hub-client.js";
import { api } from "../api.js";
import { exactUtc, h, showError, table, timeEl } from "../dom.js";
import { navigate } from "../router.js";

const FILTERS = ["actor", "action", "target", "outcome", "since", "until"];
const PAGE_SIZE = 50;

/** A target id as a link where the console has a page for it. */
function target(id) {
  if (/^bc_\d{8}$/.test(id)) return h("a", { href: `/runs/${id}` }, id);
  return h("code", {}, id);
}

function row(entry) {
  const who = [h("strong", {}, entry.actor), h("span", { class: "muted" }, ` ${entry.actor_kind}${entry.role ? `, ${entry.role}` : ""}`)];
  const outcome = [h("span", { class: "status outcome", "data-outcome": entry.outcome }, entry.outcome),
    entry.status ? h("span", { class: "muted" }, ` ${entry.status}`) : null];
  const targets = entry.target_ids.flatMap((id, i) => (i ? [", ", target(id)] : [target(id)]));
  const cells = [
    ["When", timeEl(entry.at)],
    ["Actor", who],
    ["Action", h("code", {}, entry.action)],
    ["Targets", targets.length ? targets : h("span", { class: "muted" }, "—")],
    ["Outcome", outcome],
    ["Detail", entry.detail || ""],
    ["From", h("span", { title: entry.request_id ? `request ${entry.request_id}` : null }, entry.client_address || "—")],
  ];
  return h("tr", { dataset: { auditId: entry.id } }, cells.map(([label, value]) => h("td", { "data-label": label }, value)));
}

export function mount(main, _params, query) {
  const text = (name, label, placeholder) => h("label", {}, label,
    h("input", { name, id: `audit-${name}`, value: query.get(name) || "", placeholder, autocomplete: "off", spellcheck: "false" }));
  const when = (name, label) => h("label", {}, label,
    h("input", { type: "datetime-local", step: 1, name, id: `audit-${name}`, value: (query.get(name) || "").replace(/Z$/, "") }));
  const outcome = h("select", { name: "outcome", id: "audit-outcome" }, h("option", { value: "" }, "Any"),
    OUTCOMES.map((o) => h("option", { value: o, selected: query.get("outcome") === o }, o)));
  const form = h("form", { class: "form-row", id: "audit-filters", role: "search", "aria-label": "Filter the audit trail" },
    text("actor", "Actor", "ops-admin"), text("action", "Action", "schedule. or batch.cancel"), text("target", "Target", "bc_12345678"),
    h("label", {}, "Outcome", outcome), when("since", "From (UTC)"), when("until", "To (UTC)"),
    h("button", { type: "submit" }, "Apply"), h("a", { href: "/audit" }, "Clear"));
  const entries = table("Audit entries, newest first", ["When", "Actor", "Action", "Targets", "Outcome", "Detail", "From"], "stack");
  entries.el.id = "audit";
  const pager = h("div", { class: "pager" });
  main.append(h("h1", {}, "Audit trail"),
    h("p", { class: "muted" }, "Every change made through the API or the command line, refused attempts too. Times are UTC."),
    h("section", { class: "panel" }, form, entries.el, pager));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) next.set(name, value);
    }
    navigate(`/audit${next.size ? `?${next}` : ""}`);
  });

  const controller = new AbortController();
  (async () => {
    const params = new URLSearchParams();
    for (const name of [...FILTERS, "cursor"]) if (query.get(name)) params.set(name, query.get(name));
    params.set("limit", String(PAGE_SIZE));
    try {
      const body = await api(`/api/audit?${params}`, { signal: controller.signal });
      entries.tbody.replaceChildren(...(body.entries.length ? body.entries.map(row)
        : [h("tr", {}, h("td", { colspan: 7 }, "No entry matches."))]));
      const links = [];
      if (query.get("cursor")) {
        const first = new URLSearchParams(query);
        first.delete("cursor");
        links.push(h("a", { href: `/audit${first.size ? `?${first}` : ""}`, id: "audit-newest" }, "Newest"));
      }
      if (body.next_cursor) {
        const next = new URLSearchParams(query);
        next.set("cursor", body.next_cursor);
        links.push(h("a", { href: `/audit?${next}`, id: "audit-older", rel: "next" }, "Older entries →"));
      }
      pager.replaceChildren(...links);
      if (body.entries.length) {
        const last = body.entries[body.entries.length - 1];
        pager.append(h("span", { class: "muted" }, ` back to ${exactUtc(last.at)}`));
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      if (err.status === 403) entries.tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7 }, "Only an admin key may see the audit trail; enter one with “Change API key” at the top right.")));
      else showError(err.message);
    }
  })();
  return () => controller.abort();
}
