// Variances: what the cross-vendor checks found (docs/VARIANCES.md). Counts per type and per
// organization; the list filtered by type, organization, status and text (in the address:
// ?type=&organization=&status=&q=, and ?id= for one variance's detail, ?days= for the trend);
// resolve, mark fixed, accept and reopen one or many (trigger keys only); a device's records at
// both vendors and the variance's history; CSV and XLSX exports; open variances per type over
// 30 or 90 days. Live: the variances' stream (followVariances) brings each change as the whole
// variance, applied in place; a page that may have missed changes reads the list again.
//
// The variances of the chosen status are read once (at most MAX_LOADED, 1000 a request) and
// kept by id, newest first, with their counts, both kept up to date change by change; type,
// organization and text filter them here, and a page of SHOWN rows is drawn at a time
// (Previous / Next), its rows kept and filled in place, so 5,000 rows filter and scroll without
// a long task (docs/CONSOLE.md, bench/console_variances.py).

import { followVariances } from "../../collector-hub-client.js";
import { api, can, download, explain, trackerOptions } from "../api.js";
import { lineChart } from "../charts.js";
import * as connection from "../connection.js";
import { announce, exactUtc, h, setStatus, showError, table } from "../dom.js";
import * as debug from "../debug.js";
import { actionForm } from "./variance_actions.js";
import { detailContent, moved, readDevices, readHistory } from "./variance_detail.js";

const PAGE = 1000; // GET /api/exceptions' largest page
const MAX_LOADED = 20000;
const SHOWN = 50; // rows drawn at a time: a page of the list
const FILLS_PER_FRAME = 25; // rows given new content in one frame (bench/console_variances.py)
const TYPING_MS = 150; // the text filter applies once typing pauses this long
const OPEN = "active";
const ALL = "all";
const TREND_DAYS = ["30", "90"];
const TRANSPORTS = ["websocket", "sse", "poll"];
const LIVE_TEXT = { websocket: "Live (WebSocket)", sse: "Live (Server-Sent Events)", poll: "Live (polling)" };
const DAY_MS = 86400000;
// One formatter: a number's toLocaleString("en") builds a new one at every call (~0.1 ms).
const numbers = new Intl.NumberFormat("en");
const amount = (n) => numbers.format(n);

function age(value, now = Date.now()) {
  const ms = now - new Date(value).getTime();
  if (ms < DAY_MS) return `${Math.max(0, Math.floor(ms / 3600000))} h`;
  return `${Math.floor(ms / DAY_MS)} d`;
}

function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

function figure(label, value, href, data) {
  return h("div", { dataset: data }, h("dt", {}, label), h("dd", {}, href ? h("a", { href, class: "count" }, value) : h("span", { class: "count" }, value)));
}


export function mount(main, _params, query) {
  const filters = {
    type: query.get("type") || "",
    organization: query.get("organization") || "",
    status: query.get("status") || OPEN,
    q: query.get("q") || "",
  };
  let detailId = Number(query.get("id")) || null;
  let days = TREND_DAYS.includes(query.get("days")) ? query.get("days") : TREND_DAYS[0];

  const liveNote = h("p", { class: "muted", id: "variances-live", role: "status" }, "Connecting…");
  const openTotal = h("p", { id: "variances-open" }, "—");
  const byType = h("dl", { class: "figures", id: "variance-types" });
  const byOrg = table("Variances per organization", ["Organization", "Variances"], "");
  byOrg.el.id = "variance-organizations";
  const typeSelect = h("select", { id: "variance-type" }, h("option", { value: "" }, "All"));
  const orgSelect = h("select", { id: "variance-organization" }, h("option", { value: "" }, "All"));
  const statusSelect = h("select", { id: "variance-status" });
  const q = h("input", { type: "search", id: "variance-q", value: filters.q, autocomplete: "off", spellcheck: "false" });
  const form = h("form", { class: "form-row", id: "variance-filters", role: "search", "aria-label": "Filter variances" },
    h("label", {}, "Type", typeSelect), h("label", {}, "Organization", orgSelect), h("label", {}, "Status", statusSelect),
    h("label", {}, "Host or organization", q), h("a", { href: "/variances" }, "Clear"));
  const csv = h("a", { id: "export-csv", download: "" }, "CSV");
  const xlsx = h("a", { id: "export-xlsx", download: "" }, "XLSX");
  const exports = h("p", { id: "variance-exports" }, "Export this list: ", csv, " · ", xlsx,
    h("span", { class: "muted" }, " (the files take every filter)"));
  const list = table("Variances", ["Select", "Host", "Type", "Organization", "Status", "First seen", "Age"], "stack");
  list.el.id = "variances";
  // Its rows are grids, not table rows (console.css): the roles keep it a table for every reader.
  list.el.setAttribute("role", "table");
  for (const el of list.el.querySelectorAll("thead, tbody")) el.setAttribute("role", "rowgroup");
  for (const el of list.el.querySelectorAll("tr")) el.setAttribute("role", "row");
  for (const el of list.el.querySelectorAll("th")) el.setAttribute("role", "columnheader");
  const selectAll = h("input", { type: "checkbox", id: "select-all", "aria-label": "Select every variance that matches" });
  list.el.querySelector("th").replaceChildren(selectAll);
  const shownNote = h("p", { class: "muted", id: "variances-shown", "aria-live": "polite" }, "Loading…");
  const previous = h("button", { type: "button", id: "previous-variances", hidden: true }, "Previous");
  const next = h("button", { type: "button", id: "next-variances", hidden: true }, "Next");
  const actionsHolder = h("div", { id: "variance-actions-holder" });
  const detail = h("section", { class: "panel", id: "variance-detail", "aria-labelledby": "variance-detail-title", hidden: true });
  const trend = h("div", { id: "variance-trend" });
  const daysSelect = h("select", { id: "trend-days", "aria-label": "Trend period" },
    TREND_DAYS.map((d) => h("option", { value: d, selected: d === days }, `last ${d} days`)));
  main.append(h("h1", {}, "Variances"), liveNote,
    h("div", { class: "grid" },
      h("section", { class: "panel offscreen-skipped", "aria-labelledby": "variance-types-title" },
        h("h2", { id: "variance-types-title" }, "Per type"), openTotal, byType),
      h("section", { class: "panel offscreen-skipped", "aria-labelledby": "variance-orgs-title" },
        h("h2", { id: "variance-orgs-title" }, "Per organization"), byOrg.el)),
    detail,
    h("section", { class: "panel", "aria-labelledby": "variance-list-title" },
      h("h2", { id: "variance-list-title" }, "Variances"), form, exports, actionsHolder, shownNote, list.el, h("div", { class: "pager" }, previous, " ", next)),
    h("section", { class: "panel offscreen-skipped", "aria-labelledby": "variance-trend-title" },
      h("div", { class: "form-row" }, h("h2", { id: "variance-trend-title" }, "Open variances per type"), daysSelect), trend));

  const controller = new AbortController();
  const signal = controller.signal;
  const rows = new Map(); // id -> variance (as GET /api/exceptions lists it), of the chosen status
  let drawn = []; // the list's rows in order: {variance, tr, ...} (listRows below)
  const selected = new Set();
  const seen = new Map(); // id -> the changes received while the page is open
  let types = [];
  let first = 0; // the index in `matching` of the page's first row
  let matching = [];
  let matchingKey = null; // what `matching` was filtered from and by
  let ordered = []; // every variance of `rows`, newest first (kept in order as changes arrive)
  let version = 0; // one more at every change of `ordered`
  const perType = new Map(); // type -> how many of `rows`
  const perOrg = new Map(); // organization ("—" for none) -> how many of `rows`
  let countsDue = true;
  let countsDeferred = 0; // frames the counts have waited for the rows
  const haystacks = new WeakMap(); // variance -> what the text filter searches, in lower case
  let loading = null;
  let pending = []; // changes received while the list is being read, applied after it
  let frame = null;
  let rights = { trigger: false };
  let follower = null;
  let trendTimer = null;

  const wanted = (v) => filters.status === ALL || v.variance_status === filters.status;
  const needle = () => filters.q.trim().toLowerCase();
  function matches(v, text) {
    if (filters.type && v.type !== filters.type) return false;
    if (filters.organization && (v.organization || "").toLowerCase() !== filters.organization.toLowerCase()) return false;
    // As GET /api/exceptions' q: host name, subject key or organization contain it.
    if (!text) return true;
    let haystack = haystacks.get(v);
    if (haystack === undefined) haystacks.set(v, (haystack = haystackOf(v)));
    return haystack.includes(text);
  }
  function haystackOf(v) {
    return [v.hostname, v.subject_key, v.organization].map((s) => (s || "").toLowerCase()).join("\n");
  }

  function keepAddress() {
    const next = new URLSearchParams();
    for (const [name, value] of Object.entries(filters)) if (value && !(name === "status" && value === OPEN)) next.set(name, value);
    if (detailId) next.set("id", String(detailId));
    if (days !== TREND_DAYS[0]) next.set("days", days);
    const href = `/variances${next.size ? `?${next}` : ""}`;
    if (href !== window.location.pathname + window.location.search) history.replaceState(null, "", href);
    // The files hold what the list shows: every filter, as GET /api/exceptions takes it.
    const exportQuery = new URLSearchParams({ date: "latest" });
    if (filters.status === ALL) exportQuery.set("include_resolved", "true");
    else exportQuery.set("status", filters.status);
    if (filters.type) exportQuery.set("type", filters.type);
    if (filters.organization) exportQuery.set("organization", filters.organization);
    if (filters.q.trim()) exportQuery.set("q", filters.q.trim());
    csv.href = `/api/variances/export/csv?${exportQuery}`;
    xlsx.href = `/api/variances/export/excel?${exportQuery}`;
  }

  function schedule() {
    if (frame === null) frame = requestAnimationFrame(draw);
  }

  // ---- the list's rows ----
  // A drawn row stays the same element while its variance is on the page (a change elsewhere
  // moves nothing, a focused box stays with its variance), and a page turn or a new filter
  // fills the drawn rows again in place instead of building new ones: no element is created
  // and the rows' styles are not computed from scratch, so a page turn is one short task.

  function newRow() {
    const link = h("a", { class: "variance-link" });
    const badge = h("span", { class: "status" });
    const time = h("time");
    const tr = h("tr", { role: "row" },
      h("td", { role: "cell", "data-label": "Select" }),
      h("td", { role: "cell", "data-label": "Host" }, h("strong", {}, link)),
      h("td", { role: "cell", "data-label": "Type" }),
      h("td", { role: "cell", "data-label": "Organization" }),
      h("td", { role: "cell", "data-label": "Status" }, badge),
      h("td", { role: "cell", "data-label": "First seen" }, time),
      h("td", { role: "cell", "data-label": "Age" }));
    return { tr, cells: tr.children, link, badge, time, box: null, id: null, variance: null, linkStatus: null };
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function fill(r, v) {
    const changed = r.variance !== v;
    if (changed || r.linkStatus !== filters.status) {
      r.variance = v;
      r.linkStatus = filters.status;
      Object.assign(r.tr.dataset, { id: v.id, type: v.type, status: v.variance_status });
      // The address names the variance and its status only, not the filters of the moment.
      r.link.href = `/variances?${new URLSearchParams({ ...(filters.status === OPEN ? {} : { status: filters.status }), id: v.id })}`;
      setText(r.link, v.hostname || v.subject_key);
      setText(r.cells[2], v.type);
      setText(r.cells[3], v.organization || "—");
      setStatus(r.badge, v.variance_status || "unknown");
      r.time.dateTime = v.first_seen;
      r.time.title = exactUtc(v.first_seen);
      setText(r.time, v.date_found);
      setText(r.cells[6], age(v.first_seen));
    }
    if (rights.trigger && !r.box) {
      r.box = h("input", { type: "checkbox", class: "select-variance" });
      r.cells[0].replaceChildren(r.box);
      r.cells[0].classList.remove("secondary");
    } else if (!rights.trigger && (r.box || !r.cells[0].classList.contains("secondary"))) {
      r.cells[0].replaceChildren();
      r.cells[0].classList.add("secondary"); // nothing to show at 390 px
      r.box = null;
    }
    if (r.box) {
      if (r.box.value !== String(v.id)) {
        r.box.value = v.id;
        r.box.setAttribute("aria-label", `Select ${v.hostname} ${v.type}`);
      } else if (changed) r.box.setAttribute("aria-label", `Select ${v.hostname} ${v.type}`);
      r.box.checked = selected.has(v.id);
    }
  }

  const emptyRow = h("tr", { role: "row" }, h("td", { role: "cell", colspan: 7 }));
  const spare = []; // rows out of the list, to be filled again
  function drawRows(shown) {
    if (!shown.length) {
      emptyRow.firstChild.textContent = loading ? "Loading…" : "No variance matches.";
      for (const r of drawn) spare.push(r);
      if (list.tbody.firstChild !== emptyRow || list.tbody.childNodes.length !== 1) list.tbody.replaceChildren(emptyRow);
      drawn = [];
      return 0;
    }
    if (emptyRow.parentNode) emptyRow.remove();
    const ids = new Set(shown.map((v) => v.id));
    const kept = new Map();
    const freed = [];
    for (const r of drawn) {
      if (ids.has(r.id)) kept.set(r.id, r);
      else freed.push(r);
    }
    // Rows that stay keep their place; when none stays (a page turn), the freed rows are refilled
    // where they are, in order, and nothing moves.
    const inPlace = kept.size === 0;
    if (!inPlace) for (const r of freed) r.tr.remove();
    // At most FILLS_PER_FRAME rows get new content in a frame (a page turn takes two frames),
    // a row added to the list counting twice (its styles are computed afresh): a row in place
    // keeps what it showed until the next frame, a row to add waits for it.
    let fills = 0;
    let late = false;
    drawn = [];
    for (const v of shown) {
      let r = kept.get(v.id);
      let cost = 1;
      if (!r) {
        if (fills >= FILLS_PER_FRAME && !(inPlace && freed.length)) {
          late = true;
          continue;
        }
        if (!(inPlace && freed.length)) cost = 2;
        r = freed.shift() || spare.pop() || newRow();
        r.id = v.id;
      }
      if (r.variance === v) fill(r, v); // its box and link follow
      else if (fills < FILLS_PER_FRAME) {
        fills += cost;
        fill(r, v);
      } else late = true;
      drawn.push(r);
    }
    for (const r of freed) {
      r.tr.remove();
      spare.push(r); // for when the list grows again (a filter cleared)
    }
    let at = list.tbody.firstChild;
    for (const r of drawn) {
      if (at === r.tr) at = at.nextSibling;
      else list.tbody.insertBefore(r.tr, at);
    }
    if (late) schedule();
    return fills;
  }

  // ---- the counts, kept as changes arrive (not counted again over every variance) ----

  function count(v, by) {
    perType.set(v.type, (perType.get(v.type) || 0) + by);
    const org = v.organization || "—";
    const n = (perOrg.get(org) || 0) + by;
    if (n) perOrg.set(org, n);
    else perOrg.delete(org);
  }

  /** `ordered` and the counts from `rows` afresh (after a read of the list). */
  function recount() {
    ordered = [...rows.values()].sort((a, b) => b.id - a.id);
    perType.clear();
    perOrg.clear();
    for (const v of ordered) count(v, 1);
    version += 1;
    countsDue = true;
  }

  /** Where variance `id` is in `ordered`, or would be (newest, the highest id, first). */
  function place(id) {
    let low = 0;
    let high = ordered.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (ordered[mid].id > id) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  let typeFigures = ""; // the types the figures show, in order; their counts are updated in place
  let orgRanking = ""; // the organizations the table shows, in order
  function drawCounts() {
    countsDue = false;
    const href = (name, value) => {
      const next = new URLSearchParams(filters.status === OPEN ? {} : { status: filters.status });
      next.set(name, value);
      return `/variances?${next}`;
    };
    const shownTypes = [...new Set([...types, ...[...perType].filter(([, n]) => n > 0).map(([t]) => t)])];
    const typeKey = `${filters.status}\n${shownTypes.join("\n")}`;
    if (typeKey !== typeFigures) {
      typeFigures = typeKey;
      byType.replaceChildren(...shownTypes.map((t) => figure(t, "", href("type", t), { type: t })));
    }
    for (const el of byType.children) setText(el.querySelector(".count"), amount(perType.get(el.dataset.type) || 0));
    const orgs = [...perOrg].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const top = orgs.slice(0, 12);
    const orgKey = `${filters.status}\n${orgs.length}\n${top.map(([org]) => org).join("\n")}`;
    if (orgKey !== orgRanking) {
      orgRanking = orgKey;
      byOrg.tbody.replaceChildren(...(top.length ? top.map(([org]) => h("tr", { dataset: { organization: org } },
        h("td", {}, org === "—" ? org : h("a", { href: href("organization", org) }, org)), h("td", { class: "num" }))) : [h("tr", {}, h("td", { colspan: 2 }, "None."))]));
      if (orgs.length > 12) byOrg.tbody.append(h("tr", {}, h("td", { colspan: 2, class: "muted" }, `and ${orgs.length - 12} more`)));
    }
    top.forEach(([, n], i) => setText(byOrg.tbody.children[i].lastChild, amount(n)));
    const names = new Set([...perOrg.keys()].filter((o) => o !== "—"));
    if (filters.organization) names.add(filters.organization);
    const current = [...orgSelect.options].slice(1).map((o) => o.value).join("\n");
    const sorted = [...names].sort((a, b) => a.localeCompare(b));
    if (current !== sorted.join("\n")) {
      orgSelect.replaceChildren(h("option", { value: "" }, "All"), sorted.map((o) => h("option", { value: o, selected: o === filters.organization }, o)));
    }
  }

  function draw() {
    frame = null;
    const started = debug.clock();
    const text = needle();
    const key = `${version}\n${filters.type}\n${filters.organization}\n${text}`;
    if (key !== matchingKey) {
      matchingKey = key;
      matching = text || filters.type || filters.organization ? ordered.filter((v) => matches(v, text)) : ordered;
    }
    if (first >= matching.length) first = Math.max(0, Math.floor((matching.length - 1) / SHOWN) * SHOWN);
    const shown = matching.slice(first, first + SHOWN);
    const fills = drawRows(shown);
    previous.hidden = first === 0;
    next.hidden = first + SHOWN >= matching.length;
    const range = shown.length ? `${amount(first + 1)} to ${amount(first + shown.length)}` : "0";
    // A list read again (a reconnection) shows what it has meanwhile: rows are drawn over frames.
    shownNote.textContent = loading && !ordered.length ? "Loading…" : `Showing ${range} of ${amount(matching.length)} matching${selected.size ? `; ${amount(selected.size)} selected` : ""}.`;
    selectAll.checked = matching.length > 0 && selected.size >= matching.length && matching.every((v) => selected.has(v.id));
    selectAll.hidden = !rights.trigger;
    // Rows and counts both due (the list read, a batch of changes): the counts wait for a frame
    // with fewer rows to fill, two frames at most.
    if (countsDue && fills >= FILLS_PER_FRAME / 2 && countsDeferred < 2) {
      countsDeferred += 1;
      schedule();
    } else if (countsDue) {
      countsDeferred = 0;
      drawCounts();
    }
    // After the frame's own layout: scrolling here would force one more.
    if (scrollToList) setTimeout(() => list.el.scrollIntoView({ block: "start" }), 0);
    scrollToList = false;
    if (detailId) drawDetail();
    if (debug.stats) debug.stats.renderMs += debug.clock() - started;
  }

  // ---- reading the list, and the live changes ----

  function apply(change) {
    const v = change.variance;
    const old = rows.get(v.id);
    if (old) count(old, -1);
    const at = place(v.id);
    const listed = at < ordered.length && ordered[at].id === v.id;
    if (wanted(v)) {
      rows.set(v.id, v);
      count(v, 1);
      if (listed) ordered[at] = v;
      else ordered.splice(at, 0, v);
    } else {
      rows.delete(v.id);
      if (listed) ordered.splice(at, 1);
    }
    version += 1;
    countsDue = true;
    if (v.id === detailId) detailVariance = v; // the detail stays open on a variance that left the list
    const mine = seen.get(v.id) || [];
    mine.push(change);
    seen.set(v.id, mine.slice(-20));
    // The detail's history is read again for the change's note (the stream does not carry it);
    // until then the change shows from the stream.
    if (v.id === detailId && historyRead && historyRead.id === v.id) loadHistory(v.id);
  }

  async function load() {
    const mine = (loading = {});
    pending = [];
    const fresh = new Map();
    const base = filters.status === ALL ? {} : { status: filters.status };
    try {
      for (let offset = 0; offset < MAX_LOADED; offset += PAGE) {
        const page = await api(`/api/exceptions?${new URLSearchParams({ ...base, limit: PAGE, offset })}`, { signal });
        if (loading !== mine) return;
        for (const v of page) {
          fresh.set(v.id, v);
          haystacks.set(v, haystackOf(v)); // here, a page at a time, not all at the first key typed
        }
        if (page.length < PAGE) break;
      }
    } catch (err) {
      if (!signal.aborted) showError(err.message);
      if (loading === mine) loading = null;
      return;
    }
    rows.clear();
    for (const [id, v] of fresh) rows.set(id, v);
    recount();
    for (const change of pending) apply(change);
    pending = [];
    loading = null;
    if (fresh.size >= MAX_LOADED) showError(`Only the newest ${amount(MAX_LOADED)} variances of this status are listed; choose a type or a status to see others.`);
    schedule();
  }

  function receive(page) {
    if (page.counts) {
      openTotal.textContent = `${amount(page.counts.open)} open in all`;
      const statuses = Object.keys(page.counts.by_status);
      if (statusSelect.options.length !== statuses.length + 1) {
        statusSelect.replaceChildren(...statuses.map((s) => h("option", { value: s, selected: s === filters.status }, s === OPEN ? "active (open)" : s)),
          h("option", { value: ALL, selected: filters.status === ALL }, "any"));
      }
    }
    if (page.resync) {
      load();
      scheduleTrend(0);
      return;
    }
    if (page.changes.length === 0) return;
    if (loading) pending.push(...page.changes);
    else for (const change of page.changes) apply(change);
    const last = page.changes[page.changes.length - 1];
    announce(page.changes.length === 1
      ? `${last.variance.hostname} ${last.variance.type}: ${moved(last)}`
      : `${page.changes.length} variances changed`);
    scheduleTrend(5000);
    schedule();
  }

  function follow() {
    if (follower) follower.stop();
    follower = followVariances({
      onUpdate: receive,
      onTransport: (name, state) => {
        liveNote.dataset.transport = name;
        liveNote.dataset.state = state.state;
        liveNote.textContent = state.state === "connected" ? LIVE_TEXT[name] : state.state === "lost" ? "Reconnecting…" : "Connecting…";
      },
      onError: (err) => {
        if (err && (err.status === 401 || err.status === 403)) liveNote.textContent = explain(err);
      },
    }, trackerOptions({ transports: TRANSPORTS.slice(Math.max(0, TRANSPORTS.indexOf(connection.transport()))) }));
    debug.expose("variances", { follower, rows });
  }

  // ---- actions (trigger keys only: variance_actions.js) ----

  function actionsDone() {
    selected.clear();
    // Polling brings no changes: read the list again so the one who acted sees it at once.
    if (follower && follower.transport === "poll") load();
    schedule();
  }

  list.tbody.addEventListener("change", (event) => {
    const box = event.target.closest("input.select-variance");
    if (!box) return;
    if (box.checked) selected.add(Number(box.value));
    else selected.delete(Number(box.value));
    schedule();
  });
  selectAll.addEventListener("change", () => {
    for (const v of matching) {
      if (selectAll.checked) selected.add(v.id);
      else selected.delete(v.id);
    }
    schedule(); // the boxes of drawn rows follow
  });
  list.tbody.addEventListener("click", (event) => {
    const link = event.target.closest("a.variance-link");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    openDetail(Number(link.closest("tr").dataset.id));
  });

  // ---- one variance: both vendors' records and its history ----

  let detailDrawn = null; // the variance object last drawn in the detail
  let devices = null; // {id, ninja: [...], threatlocker: [...]} from GET /api/inventory/devices
  let historyRead = null; // {id, historyRead} or {id, error} from GET /api/exceptions/{id}/history; {id} while read
  let detailVariance = null; // the detail's variance as last seen (it may have left the list)
  let detailForm = null; // {id, el}: kept across redraws, so its answer stays in view

  function openDetail(id) {
    detailId = id;
    detailDrawn = null;
    keepAddress();
    drawDetail();
    const heading = detail.querySelector("h2");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }

  function drawDetail() {
    if (rows.has(detailId)) detailVariance = rows.get(detailId);
    const v = detailVariance && detailVariance.id === detailId ? detailVariance : null;
    if (!v) {
      detail.hidden = false;
      if (detailDrawn === "missing") return;
      detailDrawn = "missing";
      detail.replaceChildren(h("h2", { id: "variance-detail-title" }, `Variance ${detailId}`),
        h("p", {}, loading ? "Loading…" : "This variance is not in the list of the chosen status (Status: any lists every one)."),
        h("p", {}, h("a", { href: "/variances", id: "close-detail" }, "Close")));
      return;
    }
    if (detailDrawn === v && devices && devices.id === v.id) return;
    detailDrawn = v;
    if (!devices || devices.id !== v.id) loadDevices(v);
    if (!historyRead || historyRead.id !== v.id) loadHistory(v.id);
    detail.hidden = false;
    detail.replaceChildren(...detailContent(v, {
      devices: devices && devices.id === v.id && devices.ninja ? devices : null,
      history: historyRead && historyRead.id === v.id && (historyRead.changes || historyRead.error) ? historyRead : null,
      seen: seen.get(v.id) || [],
      actions: rights.trigger ? detailActions(v) : null,
      closeHref: `/variances?${new URLSearchParams([...new URLSearchParams(window.location.search)].filter(([k]) => k !== "id"))}`,
    }));
  }

  function detailActions(v) {
    if (!detailForm || detailForm.id !== v.id) detailForm = { id: v.id, el: actionForm("detail-actions", () => [v.id], `Change ${v.hostname}`, actionsDone) };
    return detailForm.el;
  }

  async function loadDevices(v) {
    const id = v.id;
    devices = { id };
    const found = await readDevices(v, signal);
    if (signal.aborted || devices.id !== id) return;
    devices = { id, ...found };
    detailDrawn = null;
    schedule();
  }

  async function loadHistory(id) {
    const mine = (historyRead = { ...(historyRead && historyRead.id === id ? historyRead : {}), id }); // kept on view while read again
    const answer = await readHistory(id, signal);
    if (signal.aborted || historyRead !== mine) return;
    historyRead = { id, ...answer };
    detailDrawn = null;
    schedule();
  }

  // ---- the trend: open variances per type and day ----

  function scheduleTrend(ms) {
    if (trendTimer !== null && ms > 0) return;
    clearTimeout(trendTimer);
    trendTimer = setTimeout(() => { trendTimer = null; loadTrend(); }, ms);
  }

  async function loadTrend() {
    const end = Date.now();
    const labels = [];
    for (let i = Number(days) - 1; i >= 0; i -= 1) labels.push(isoDay(end - i * DAY_MS));
    try {
      const body = await api(`/api/variances/trends?${new URLSearchParams({ start_date: labels[0], end_date: labels[labels.length - 1] })}`, { signal });
      const series = Object.entries(body.trends_by_type).map(([name, points]) => {
        const open = new Map(points.map((p) => [p.date, p.unresolved]));
        return { name, values: labels.map((d) => open.get(d) || 0) };
      }).filter((s) => s.values.some((n) => n > 0));
      trend.replaceChildren(series.length
        ? lineChart(labels, series, { title: `Open variances per type and day, last ${days} days` })
        : h("p", { class: "muted" }, `No open variance in the last ${days} days.`));
    } catch (err) {
      if (!signal.aborted) trend.replaceChildren(h("p", { class: "muted" }, err.message));
    }
  }

  // ---- filters ----

  function refilter() {
    first = 0;
    keepAddress();
    schedule();
  }
  // A count is a link to its filter (for a new tab); followed here, it filters in place.
  const followCount = (select, name) => (event) => {
    const link = event.target.closest("a[href]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    filters[name] = new URL(link.href).searchParams.get(name) || "";
    select.value = filters[name];
    refilter();
  };
  byType.addEventListener("click", followCount(typeSelect, "type"));
  byOrg.el.addEventListener("click", followCount(orgSelect, "organization"));
  typeSelect.addEventListener("change", () => { filters.type = typeSelect.value; refilter(); });
  orgSelect.addEventListener("change", () => { filters.organization = orgSelect.value; refilter(); });
  statusSelect.addEventListener("change", () => {
    filters.status = statusSelect.value;
    selected.clear();
    rows.clear();
    recount();
    refilter();
    load();
  });
  let typing = null;
  q.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { filters.q = q.value; refilter(); }, TYPING_MS);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  let scrollToList = false;
  const turn = (by) => {
    first = Math.max(0, first + by);
    scrollToList = true;
    schedule();
  };
  previous.addEventListener("click", () => turn(-SHOWN));
  next.addEventListener("click", () => turn(SHOWN));
  daysSelect.addEventListener("change", () => { days = daysSelect.value; keepAddress(); loadTrend(); });
  // The files are fetched with the key (a plain link cannot send its header), and a refusal
  // is said like any other.
  for (const link of [csv, xlsx]) {
    link.addEventListener("click", async (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      try {
        await download(link.href, { signal, fallback: "variances" });
      } catch (err) {
        if (!signal.aborted) showError(explain(err));
      }
    });
  }

  statusSelect.append(h("option", { value: filters.status, selected: true }, filters.status === OPEN ? "active (open)" : filters.status));
  keepAddress();
  schedule();
  api("/api/status", { signal }).then((body) => {
    types = Object.keys(body.exception_counts);
    typeSelect.append(...types.map((t) => h("option", { value: t, selected: t === filters.type }, t)));
    countsDue = true; // the counts list every type
    schedule();
  }).catch((err) => { if (!signal.aborted) showError(err.message); });
  can().then((r) => {
    if (signal.aborted) return;
    rights = r;
    if (rights.trigger) actionsHolder.replaceChildren(actionForm("variance-actions", () => [...selected], "Change the selected variances", actionsDone));
    detailDrawn = null;
    schedule();
    follow();
  }).catch((err) => showError(err.message));
  return () => {
    controller.abort();
    if (follower) follower.stop();
    if (frame !== null) cancelAnimationFrame(frame);
    clearTimeout(trendTimer);
    clearTimeout(typing);
  };
}
