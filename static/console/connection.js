// The connection indicator: which transport delivers right now, or that the console is
// reconnecting (which attempt, the next try and when), or that the browser is offline. It is
// driven by the console's one live subscription (live.js), which never ends, so an idle console
// keeps its connection and the indicator never goes stale. Other modules ask transport() which
// transport that is (a job's log follows on the same one).

import { expose } from "./debug.js";
import { $ } from "./dom.js";

const NAMES = { websocket: "WebSocket", sse: "Server-Sent Events", poll: "polling" };
let last = { name: null, info: { state: "connecting" } };
let countdown = null;
let failed = 0; // failed attempts since the last connection
let connected = null; // the transport the live subscription is connected on, or null

/** "websocket", "sse" or "poll" while the live subscription is connected; null otherwise. */
export function transport() {
  return connected;
}
expose("transport", transport);

function set(state, text, title = "") {
  const el = $("connection");
  if (el.dataset.state !== state) el.dataset.state = state;
  if (el.textContent !== text) el.textContent = text;
  el.title = title;
}

function render() {
  clearInterval(countdown);
  countdown = null;
  if (!navigator.onLine) {
    set("offline", "Offline", "The browser has no network; the console reconnects when it is back.");
    return;
  }
  const { name, info } = last;
  const label = NAMES[name] || name || "";
  if (info.state === "connected") {
    set(name === "poll" ? "polling" : "live", name === "poll" ? "Live (polling)" : `Live (${label})`,
      name === "poll" ? "WebSocket and Server-Sent Events are unavailable; the console polls the server." : "");
  } else if (info.state === "lost") {
    const until = Date.now() + (info.retryInMs ?? 0);
    const next = NAMES[info.next] || label;
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      const when = seconds > 0 ? `in ${seconds} s` : "now";
      set("reconnecting", `Reconnecting: attempt ${(info.attempt ?? 0) + 1} via ${next} ${when}`, `Lost ${label}: ${info.error || ""}`);
    };
    tick();
    if (info.retryInMs) countdown = setInterval(tick, 1000);
  } else if (failed > 0) {
    set("reconnecting", `Reconnecting: attempt ${failed + 1} via ${label}…`);
  } else {
    set("connecting", `Connecting (${label})…`);
  }
}

/** The onTransport handler for the console's live subscription. */
export function onTransport(name, info) {
  last = { name, info };
  connected = info.state === "connected" ? name : null;
  if (info.state === "connected") failed = 0;
  else if (info.state === "lost") failed = info.attempt ?? failed + 1;
  render();
}

/** The live subscription stopped for good (credentials refused): say so. */
export function stopped(reason) {
  clearInterval(countdown);
  connected = null;
  set("stopped", "Not connected", reason);
}

export function watchNetwork() {
  window.addEventListener("offline", render);
  window.addEventListener("online", render);
}
