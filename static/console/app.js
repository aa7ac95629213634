// The operator console: routes, the API key prompt, the live subscription, relative times.

import { can, onKeyChange, onUnauthorized, setApiKey, apiKey } from "./api.js";
import * as connection from "./connection.js";
import { $, refreshTimes } from "./dom.js";
import * as live from "./live.js";
import { navigate, route, startRouter } from "./router.js";

route("/", "overview", () => import("./views/overview.js"));
route("/runs", "runs", () => import("./views/runs.js"));
route("/runs/(bc_[0-9]{8})", "runs", () => import("./views/run.js"));
route("/inventory", "inventory", () => import("./views/inventory.js"));
route("/schedules", "schedules", () => import("./views/schedules.js"));
route("/variances", "variances", () => import("./views/variances.js"));
route("/collectors/([A-Za-z0-9_.-]{1,64})", "overview", () => import("./views/collector.js"));
route("/webhooks", "webhooks", () => import("./views/webhooks.js"));
route("/audit", "audit", () => import("./views/audit.js"));

function promptForKey() {
  const dialog = $("key-dialog");
  if (dialog.open) return;
  $("api-key").value = "";
  dialog.showModal();
}

function setUpKeyDialog() {
  const dialog = $("key-dialog");
  $("key-button").addEventListener("click", promptForKey);
  $("key-cancel").addEventListener("click", () => dialog.close());
  $("key-forget").addEventListener("click", () => {
    dialog.close();
    setApiKey(null);
  });
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("api-key").value.trim();
    $("api-key").value = "";
    dialog.close();
    if (value) setApiKey(value);
  });
  onUnauthorized(promptForKey);
  onKeyChange(() => {
    $("key-button").textContent = apiKey() ? "Change API key" : "API key";
    live.start();
    showLinksForRoles();
    navigate(window.location.href, { replace: true, focus: false });
  });
  if (apiKey()) $("key-button").textContent = "Change API key";
}

/** Nav links that need a role (`data-needs`): shown only when GET /api/me grants it. */
async function showLinksForRoles() {
  const rights = await can();
  for (const item of document.querySelectorAll("nav [data-needs]")) item.hidden = !rights[item.dataset.needs];
}

function init() {
  setUpKeyDialog();
  connection.watchNetwork();
  live.start();
  showLinksForRoles();
  startRouter();
  setInterval(() => refreshTimes(), 15000);
}

init();
