// Small DOM helpers for the console. Text from the server always goes in as text (textContent
// or attribute values), never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

/** h("a", {href: "/runs", class: "x"}, "text", child) -> element. `on*` functions become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function $(id) {
  return document.getElementById(id);
}

const exact = new Intl.DateTimeFormat("en-GB", {
  timeZone: "UTC", year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

export function exactUtc(value) {
  return `${exact.format(new Date(value))} UTC`;
}

/** "12 s ago", "3 min ago", "in 5 min", "2 h ago", "4 d ago". */
export function relative(value, now = Date.now()) {
  const seconds = Math.round((new Date(value).getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  let text;
  if (abs < 5) return "just now";
  if (abs < 60) text = `${abs} s`;
  else if (abs < 3600) text = `${Math.round(abs / 60)} min`;
  else if (abs < 86400 * 2) text = `${Math.round(abs / 3600)} h`;
  else text = `${Math.round(abs / 86400)} d`;
  return seconds < 0 ? `${text} ago` : `in ${text}`;
}

/** <time> with a relative text, the exact UTC time on hover; refreshed by refreshTimes(). */
export function timeEl(value) {
  if (!value) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: value, title: exactUtc(value), "data-relative": "" }, relative(value));
}

export function refreshTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("time[data-relative]")) {
    const text = relative(el.dateTime, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

/** 80 -> "1m 20s"; null -> "—". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (hours) return `${hours}h ${minutes}m`;
  if (minutes) return `${minutes}m ${s % 60}s`;
  return `${s}s`;
}

export function statusBadge(status) {
  return h("span", { class: "status", "data-status": status || "unknown" }, status || "unknown");
}

/** A collector's health state (healthy, failing, stale) as a badge; `detail` on hover. */
export function healthBadge(state, detail) {
  return h("span", { class: "status health", "data-health": state || "unknown", title: detail || null }, state || "unknown");
}

/** What a health entry (GET /api/collectors/health) says beyond its state: "3 failed runs in a
 * row", "no success for 2 d", "never succeeded". */
export function healthDetail(entry) {
  if (!entry) return "";
  const failures = entry.consecutive_failures;
  if (entry.state === "failing") return `${failures} failed run${failures === 1 ? "" : "s"} in a row`;
  if (entry.state === "stale") return entry.last_success_at ? `no success for ${relative(entry.last_success_at).replace(/ ago$/, "")}` : "never succeeded";
  return entry.last_success_at ? `last success ${relative(entry.last_success_at)}` : "";
}

export function setStatus(el, status) {
  if (el.dataset.status === status) return;
  el.dataset.status = status;
  el.textContent = status;
}

/** A progress bar: role=progressbar with its value in aria-valuenow and the fill's width. */
export function bar(label) {
  return h("div", { class: "bar", role: "progressbar", "aria-label": label, "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 },
    h("div", { class: "fill" }), h("span", { class: "bar-text" }, "0%"));
}

export function setBar(el, percent, status) {
  const value = Math.max(0, Math.min(100, Math.round(percent ?? 0)));
  if (el.getAttribute("aria-valuenow") !== String(value)) {
    el.setAttribute("aria-valuenow", String(value));
    el.firstChild.style.transform = `scaleX(${value / 100})`;
    el.lastChild.textContent = `${value}%`;
  }
  if (el.dataset.status !== status) {
    el.dataset.status = status;
    el.setAttribute("aria-valuetext", `${value}% ${status || ""}`.trim());
  }
}

/** A long error collapses into <details>: its first line as the summary, the whole in the body. */
export function errorText(text, limit = 140) {
  if (!text) return null;
  const first = text.split("\n")[0];
  if (text.length <= limit && !text.includes("\n")) return h("p", { class: "error-text" }, text);
  return h("details", { class: "error-text long-error" },
    h("summary", {}, first.length > limit ? `${first.slice(0, limit)}…` : first),
    h("pre", {}, text));
}

/** Polite announcements for screen readers (status changes). */
export function announce(message) {
  const el = $("announcer");
  if (el) el.textContent = message;
}

export function showError(message) {
  const el = $("error");
  el.textContent = message || "";
  el.hidden = !message;
}

export function table(caption, headers, className = "") {
  const tbody = h("tbody");
  const el = h("table", { class: className },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    tbody);
  return { el, tbody };
}
