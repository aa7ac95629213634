// Inventory: device counts per source with each source's last successful run, the coverage gap
// between sources (hosts one knows and the other does not), and a device search with cursor
// paging. The search is in the address (?q=&source=&platform=&missing_from=&removed=).

import { api } from "../api.js";
import { h, showError, statusBadge, table, timeEl } from "../dom.js";
import { navigate } from "../router.js";

const SEARCH = ["q", "source", "platform", "missing_from", "removed"];
const PLATFORMS = ["windows", "macos", "linux", "ios", "android", "virtualization", "network", "cloud", "other"];
const PAGE = 50;

function sourceCard(source) {
  const run = source.last_successful_run;
  return h("div", { class: "source-card", dataset: { source: source.source } },
    h("dt", {}, source.source),
    h("dd", {}, h("span", { class: "device-count" }, source.devices.toLocaleString("en")), " devices"),
    h("dd", { class: "muted" }, `${source.removed.toLocaleString("en")} removed`),
    h("dd", { class: "muted" }, run
      ? ["last run ", h("a", { href: `/runs/${run.batch_id}` }, timeEl(run.finished_at)), ` (+${run.devices_new} / −${run.devices_gone})`]
      : "no successful run yet"));
}

function gapItem(gap) {
  const params = new URLSearchParams({ source: gap.source, missing_from: gap.missing_from });
  return h("li", { dataset: { source: gap.source, missingFrom: gap.missing_from } },
    h("a", { href: `/inventory?${params}` }, `${gap.devices.toLocaleString("en")} ${gap.source} hosts unknown to ${gap.missing_from}`),
    gap.sample.length ? h("span", { class: "muted" }, `: ${gap.sample.slice(0, 5).join(", ")}${gap.devices > 5 ? ", …" : ""}`) : null);
}

function deviceRow(device) {
  const online = device.online === null ? "—" : device.online ? "online" : "offline";
  const cells = [
    ["Name", h("strong", {}, device.display_name || device.host_name || device.id), device.removed_at ? [" ", statusBadge("removed")] : null],
    ["Source", device.source],
    ["Organization", device.organization.name || "—"],
    ["Platform", device.platform || "—"],
    ["OS", device.os || "—"],
    ["Addresses", device.ip_addresses.slice(0, 2).join(", ") || "—"],
    ["Status", online],
    ["Last contact", timeEl(device.last_contact_at)],
  ];
  // On a phone the secondary columns are left out (the row would be eight lines tall).
  const secondary = new Set(["Organization", "OS", "Addresses", "Last contact"]);
  return h("tr", { dataset: { source: device.source, deviceId: device.id } },
    cells.map(([label, ...values]) => h("td", { "data-label": label, class: secondary.has(label) ? "secondary" : null }, values)));
}

export function mount(main, _params, query) {
  const summary = h("dl", { class: "figures", id: "inventory-sources" });
  const gaps = h("ul", { id: "coverage" });
  const q = h("input", { type: "search", id: "device-q", name: "q", value: query.get("q") || "", autocomplete: "off" });
  const source = h("select", { id: "device-source" }, h("option", { value: "" }, "All"));
  const platform = h("select", { id: "device-platform" }, h("option", { value: "" }, "Any"),
    PLATFORMS.map((p) => h("option", { value: p, selected: query.get("platform") === p }, p)));
  const removed = h("input", { type: "checkbox", id: "device-removed", checked: query.get("removed") === "any" });
  const form = h("form", { class: "form-row", id: "device-search", role: "search", "aria-label": "Search devices" },
    h("label", {}, "Name", q), h("label", {}, "Source", source), h("label", {}, "Platform", platform),
    h("label", {}, removed, " include removed"), h("button", { type: "submit" }, "Search"), h("a", { href: "/inventory" }, "Clear"));
  const devices = table("Devices", ["Name", "Source", "Organization", "Platform", "OS", "Addresses", "Status", "Last contact"], "stack");
  devices.el.id = "devices";
  const more = h("button", { type: "button", id: "more-devices", hidden: true }, "More devices");
  const filterNote = h("p", { class: "muted", id: "device-filter-note" });
  main.append(h("h1", {}, "Inventory"),
    h("div", { class: "grid" },
      h("section", { class: "panel", "aria-labelledby": "sources-title" }, h("h2", { id: "sources-title" }, "Devices per source"), summary),
      h("section", { class: "panel", "aria-labelledby": "coverage-title" }, h("h2", { id: "coverage-title" }, "Coverage gap"), gaps)),
    h("section", { class: "panel", "aria-labelledby": "devices-title" }, h("h2", { id: "devices-title" }, "Devices"), form, filterNote, devices.el,
      h("div", { class: "pager" }, more)));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (q.value.trim()) next.set("q", q.value.trim());
    if (source.value) next.set("source", source.value);
    if (platform.value) next.set("platform", platform.value);
    if (removed.checked) next.set("removed", "any");
    navigate(`/inventory${next.size ? `?${next}` : ""}`);
  });
  const controller = new AbortController();
  const signal = controller.signal;
  let cursor = null;

  async function loadDevices() {
    const params = new URLSearchParams({ limit: String(PAGE) });
    for (const name of SEARCH) if (query.get(name)) params.set(name, query.get(name));
    if (cursor) params.set("cursor", cursor);
    try {
      const body = await api(`/api/inventory/devices?${params}`, { signal });
      if (!cursor) devices.tbody.replaceChildren();
      devices.tbody.append(...body.devices.map(deviceRow));
      if (!cursor && body.devices.length === 0) devices.tbody.append(h("tr", {}, h("td", { colspan: 8 }, "No device matches.")));
      cursor = body.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      if (!signal.aborted) showError(err.message);
    }
  }
  more.addEventListener("click", loadDevices);
  if (query.get("missing_from")) filterNote.textContent = `Showing ${query.get("source") || "all"} devices that ${query.get("missing_from")} does not know.`;

  api("/api/inventory/summary", { signal }).then((body) => {
    summary.replaceChildren(...body.sources.map(sourceCard));
    for (const s of body.sources) source.append(h("option", { value: s.source, selected: query.get("source") === s.source }, s.source));
    gaps.replaceChildren(...body.coverage.map(gapItem));
  }).catch((err) => { if (!signal.aborted) showError(err.message); });
  loadDevices();
  return () => controller.abort();
}
