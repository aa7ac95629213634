// One variance in the Variances view: what its record says, the device's records at both vendors
// side by side (from the inventory: names, organization, last contact), its whole history (GET
// /api/exceptions/{id}/history, and the changes received live since it was read), and the actions a trigger key has on it. Rendering and reading only:
// the view (variances.js) keeps the state and redraws.

import { api, explain } from "../api.js";
import { h, statusBadge, timeEl } from "../dom.js";

/** What a change did, in words (history and announcements). */
export function moved(change) {
  return change.from_status ? `${change.from_status} → ${change.to_status}` : `found (${change.to_status})`;
}

/** The present devices whose names hold the variance's key: {ninja: [...], threatlocker: [...]}
 * as GET /api/inventory/devices lists them (both empty if they cannot be read). */
export async function readDevices(variance, signal) {
  try {
    const body = await api(`/api/inventory/devices?${new URLSearchParams({ q: variance.subject_key, limit: 20 })}`, { signal });
    return { ninja: body.devices.filter((d) => d.source === "ninja"), threatlocker: body.devices.filter((d) => d.source === "threatlocker") };
  } catch {
    return { ninja: [], threatlocker: [] };
  }
}

/** Every change of this variance, oldest first, as GET /api/exceptions/{id}/history lists them
 * (each with its seq on the live stream); {error} with a sentence when it cannot be read. */
export async function readHistory(id, signal) {
  try {
    const body = await api(`/api/exceptions/${encodeURIComponent(id)}/history`, { signal });
    return { changes: body.history };
  } catch (err) {
    return { error: explain(err) };
  }
}

function vendorColumn(title, records, fallback) {
  const items = records && records.length ? records.map((d) => h("dl", { class: "device-record", dataset: { source: d.source } },
    h("dt", {}, "Name"), h("dd", {}, d.display_name || d.host_name || "—"),
    h("dt", {}, "Host name"), h("dd", {}, d.host_name || "—"),
    h("dt", {}, "Organization"), h("dd", {}, d.organization.name || "—"),
    h("dt", {}, "Last contact"), h("dd", {}, timeEl(d.last_contact_at))))
    : [h("p", { class: "muted" }, fallback)];
  return h("div", { class: "vendor-column" }, h("h3", {}, title), items);
}

/** A side the inventory no longer lists: what the check recorded of it. */
function recorded(name, host, org) {
  return host ? `${name || host} (${org || "no organization"}), no longer listed` : null;
}

/** The detail's children. `devices` null while they are read; `history` the variance's changes
 * as readHistory answers (null while it is read); `seen` the changes received from the live
 * stream (those the history already has, by seq, are shown once); `actions` the form, or null. */
export function detailContent(v, { devices, history, seen, actions, closeHref }) {
  const d = v.details || {};
  const known = (history && history.changes) || [];
  const last = known.reduce((max, c) => Math.max(max, c.seq), 0);
  const entries = [...known, ...seen.filter((c) => c.seq > last)].map((c) => ({ at: c.changed_at, text: moved(c), by: c.changed_by, note: c.note }));
  const historyNote = !history ? h("p", { class: "muted", id: "variance-history-state" }, "Loading the history…")
    : history.error ? h("p", { class: "error", id: "variance-history-state", role: "status" }, `The history could not be read: ${history.error}`)
    : null;
  const facts = [
    ["Status", statusBadge(v.variance_status)], ["Organization", v.organization || "—"],
    ["First seen", timeEl(v.first_seen)], ["Last seen by a check", timeEl(v.last_seen)],
    v.note ? ["Note", v.note] : null, v.reason ? ["Accepted because", v.reason] : null,
    v.expires_on ? ["Accepted until", v.expires_on] : null,
    v.resolved_by ? ["Resolved by", `${v.resolved_by} on ${v.resolved_date}`] : null,
    v.updated_by ? ["Last changed by", [v.updated_by, " ", timeEl(v.updated_at)]] : null,
  ].filter(Boolean);
  const missing = (what) => (devices ? `No ${what}.` : "Loading…");
  return [
    h("h2", { id: "variance-detail-title" }, `${v.hostname || v.subject_key}: ${v.type}`),
    h("dl", { class: "figures", id: "variance-facts" }, facts.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value)))),
    h("div", { class: "grid vendors", id: "variance-vendors" },
      vendorColumn("NinjaOne", devices && devices.ninja,
        recorded(d.ninja_display_name, d.ninja_hostname, d.ninja_org_name) || missing("NinjaOne device")),
      vendorColumn("ThreatLocker", devices && devices.threatlocker,
        recorded(d.tl_display_name, d.tl_hostname, d.tl_org_name) || missing("ThreatLocker computer"))),
    h("h3", {}, "History"),
    historyNote,
    h("ol", { id: "variance-history" }, entries.map((e) => h("li", {}, timeEl(e.at), ` ${e.text} by ${e.by}`, e.note ? h("span", { class: "muted" }, ` (${e.note})`) : null))),
    actions,
    h("p", {}, h("a", { href: closeHref, id: "close-detail" }, "Close")),
  ].filter((child) => child !== null); // replaceChildren would draw a null as the text "null"
}
