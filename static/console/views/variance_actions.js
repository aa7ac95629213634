// The Variances view's actions (trigger keys only): resolve, mark fixed, accept (a reason, an
// expiry) or reopen the chosen variances, with a note, through POST /api/exceptions/bulk-update
// (1,000 ids a request, its maximum). The form says how many changed, in words.

import { api, explain } from "../api.js";
import { announce, h } from "../dom.js";

export const ACTIONS = [
  ["resolve", "Resolve"],
  ["mark_manually_fixed", "Mark fixed"],
  ["accept", "Accept"],
  ["reopen", "Reopen"],
];
const CHUNK = 1000;

function today() {
  return new Date().toISOString().slice(0, 10);
}

/** A form that applies an action to `ids()` (the ids when it is submitted); `onDone(changed)`
 * after the server has answered every request. Its fields are `${idPrefix}-action`, `-note`,
 * `-reason`, `-expires`, `-apply` and `-result`. */
export function actionForm(idPrefix, ids, describe, onDone) {
  const action = h("select", { id: `${idPrefix}-action` }, ACTIONS.map(([value, label]) => h("option", { value }, label)));
  const note = h("input", { id: `${idPrefix}-note`, autocomplete: "off", maxlength: 2000 });
  const reason = h("input", { id: `${idPrefix}-reason`, autocomplete: "off", maxlength: 2000 });
  const until = h("input", { id: `${idPrefix}-expires`, type: "date", min: today() });
  const acceptOnly = [h("label", { class: "accept-only" }, "Reason", reason), h("label", { class: "accept-only" }, "Accepted until", until)];
  const result = h("p", { class: "muted", id: `${idPrefix}-result`, role: "status" });
  const apply = h("button", { type: "submit", class: "primary", id: `${idPrefix}-apply` }, "Apply");
  const el = h("form", { class: "form-row variance-actions", id: idPrefix, "aria-label": describe },
    h("label", {}, "Action", action), h("label", {}, "Note", note), acceptOnly, apply, result);
  const showFields = () => { for (const f of acceptOnly) f.hidden = action.value !== "accept"; };
  action.addEventListener("change", showFields);
  showFields();
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = ids();
    if (chosen.length === 0) {
      result.textContent = "Select one or more variances first.";
      return;
    }
    const body = { action: action.value };
    if (note.value.trim()) body.notes = note.value.trim();
    if (action.value === "accept") {
      body.reason = reason.value.trim();
      if (until.value) body.expires_on = until.value;
      if (!body.reason) {
        result.textContent = "Accepting needs a reason.";
        reason.setAttribute("aria-invalid", "true");
        reason.focus();
        return;
      }
    }
    reason.removeAttribute("aria-invalid");
    apply.disabled = true;
    let changed = 0;
    try {
      for (let i = 0; i < chosen.length; i += CHUNK) {
        const answer = await api("/api/exceptions/bulk-update", { method: "POST", body: { ...body, exception_ids: chosen.slice(i, i + CHUNK) } });
        changed += answer.updated_count;
      }
      result.textContent = `${ACTIONS.find(([a]) => a === action.value)[1]}: ${changed} of ${chosen.length} changed.`;
      announce(result.textContent);
      note.value = reason.value = until.value = "";
      onDone(changed);
    } catch (err) {
      result.textContent = explain(err);
    } finally {
      apply.disabled = false;
    }
  });
  return el;
}
