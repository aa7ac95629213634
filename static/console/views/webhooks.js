// Webhooks (admin): the receivers of GET /api/webhooks (docs/WEBHOOKS.md) with their URL,
// events, collectors filter and whether they are enabled; "Send test event" posts
// POST /api/webhooks/{id}/test and follows that one delivery (its deliveries list, every 2 s, for
// at most two minutes after the press) until the receiver answered or the retries ran out.

import { api } from "../api.js";
import { h, showError, table, timeEl } from "../dom.js";

const FOLLOW_MS = 2000;
const FOLLOW_FOR_MS = 120000;

function attemptText(attempt) {
  if (!attempt) return "";
  if (attempt.response_status) return `the receiver answered ${attempt.response_status} in ${attempt.duration_ms} ms`;
  return attempt.error || "no answer";
}

/** What became of a test delivery, in a sentence (and a time for a retry still to come). */
function outcome(delivery) {
  const last = delivery.attempts[delivery.attempts.length - 1];
  if (delivery.status === "succeeded") return { state: "delivered", parts: [`Delivered: ${attemptText(last)}.`] };
  if (delivery.status === "failed") {
    return { state: "undelivered", parts: [`Not delivered after ${delivery.attempt_count} attempt${delivery.attempt_count === 1 ? "" : "s"}: ${attemptText(last)}.`] };
  }
  if (!last) return { state: "sent", parts: [`Test event ${delivery.delivery_id} sent; waiting for the receiver…`] };
  return {
    state: "retrying",
    parts: [`Attempt ${delivery.attempt_count} failed: ${attemptText(last)}. Next attempt `,
      delivery.next_attempt_at ? timeEl(delivery.next_attempt_at) : "soon", "."],
  };
}

export function mount(main) {
  const list = table("Webhook receivers", ["URL", "Events", "Collectors", "State", "Test"], "stack");
  list.el.id = "webhooks";
  main.append(h("h1", {}, "Webhooks"),
    h("p", { class: "muted" }, "The receivers this server posts events to. Add, change or remove them with the API or the server's settings (docs/WEBHOOKS.md)."),
    h("section", { class: "panel" }, list.el));
  const controller = new AbortController();
  const signal = controller.signal;
  const timers = new Set();

  function show(result, { state, parts }) {
    result.dataset.state = state;
    result.replaceChildren(...parts);
  }

  /** Follow delivery `id` of `webhook` until it ends (or FOLLOW_FOR_MS passed). */
  function follow(webhook, id, result, since) {
    const timer = setTimeout(async () => {
      timers.delete(timer);
      try {
        // Newest first: the test delivery is among the newest 100 unless the receiver got more
        // than that many events since the press.
        const { deliveries } = await api(`/api/webhooks/${encodeURIComponent(webhook.id)}/deliveries?limit=100`, { signal });
        const delivery = deliveries.find((d) => d.delivery_id === id);
        if (delivery) show(result, outcome(delivery));
        if (delivery && delivery.status !== "pending") return;
        if (Date.now() - since > FOLLOW_FOR_MS) {
          show(result, { state: "retrying", parts: ["Still not delivered; the server keeps retrying."] });
          return;
        }
        follow(webhook, id, result, since);
      } catch (err) {
        if (!signal.aborted) show(result, { state: "error", parts: [err.message] });
      }
    }, FOLLOW_MS);
    timers.add(timer);
  }

  async function sendTest(webhook, button, result) {
    button.disabled = true;
    show(result, { state: "sending", parts: ["Sending…"] });
    try {
      const delivery = await api(`/api/webhooks/${encodeURIComponent(webhook.id)}/test`, { method: "POST", body: {}, signal });
      show(result, outcome(delivery));
      if (delivery.status === "pending") follow(webhook, delivery.delivery_id, result, Date.now());
    } catch (err) {
      if (!signal.aborted) show(result, { state: "error", parts: [err.message] });
    } finally {
      button.disabled = false;
    }
  }

  function row(webhook) {
    const result = h("p", { class: "test-outcome", role: "status", "aria-live": "polite" });
    const button = h("button", { type: "button", class: "small send-test", "aria-label": `Send a test event to ${webhook.url}` }, "Send test event");
    button.addEventListener("click", () => sendTest(webhook, button, result));
    const state = webhook.enabled
      ? [h("span", { class: "status receiver-state", "data-enabled": "yes" }, "enabled")]
      : [h("span", { class: "status receiver-state", "data-enabled": "no" }, "disabled"),
        webhook.disabled_reason ? h("p", { class: "muted" }, webhook.disabled_reason) : null];
    const cells = [
      ["URL", h("code", { class: "webhook-url" }, webhook.url), webhook.description ? h("p", { class: "muted" }, webhook.description) : null,
        webhook.source === "settings" ? h("p", { class: "muted" }, "declared in the server's settings") : null],
      ["Events", webhook.events.join(", ")],
      ["Collectors", webhook.collectors === null ? h("span", { class: "muted" }, "all") : webhook.collectors.join(", ")],
      ["State", ...state, webhook.failing_since ? h("p", { class: "error-text" }, "failing since ", timeEl(webhook.failing_since)) : null],
      ["Test", webhook.enabled ? button : h("span", { class: "muted" }, "enable it to test it"), result],
    ];
    return h("tr", { dataset: { webhookId: webhook.id } }, cells.map(([label, ...values]) => h("td", { "data-label": label }, h("div", {}, values))));
  }

  api("/api/webhooks", { signal }).then(({ webhooks }) => {
    list.tbody.replaceChildren(...(webhooks.length ? webhooks.map(row)
      : [h("tr", {}, h("td", { colspan: 5 }, "No receiver is registered."))]));
  }).catch((err) => {
    if (signal.aborted) return;
    if (err.status === 403) list.tbody.replaceChildren(h("tr", {}, h("td", { colspan: 5 }, "Only an admin key may see the webhook receivers; enter one with “Change API key” at the top right.")));
    else showError(err.message);
  });
  return () => {
    controller.abort();
    for (const timer of timers) clearTimeout(timer);
  };
}
