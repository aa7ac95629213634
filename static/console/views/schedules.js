// Schedules: each with its cron expression, its next fire times and its last batch; pause and
// resume, run now, create and edit. The server checks the cron expression and the time zone
// when the form is saved; its message (which names the bad field) is shown by the form, and
// nothing is saved until it passes.

import { DEFAULT_PRIORITY, PRIORITIES } from "../../collector-hub-client.js";
import { api, can } from "../api.js";
import { announce, errorText, exactUtc, h, showError, statusBadge, table, timeEl } from "../dom.js";
import * as live from "../live.js";
import { navigate } from "../router.js";

function nextTimes(times) {
  if (!times.length) return h("span", { class: "muted" }, "paused");
  return h("details", { class: "next-times" }, h("summary", {}, timeEl(times[0])),
    h("ol", {}, times.map((t) => h("li", {}, exactUtc(t)))));
}

function lastResult(schedule) {
  const last = schedule.last_batch;
  if (!last) return h("span", { class: "muted" }, "never ran");
  return h("span", {}, statusBadge(last.status), " ", h("a", { href: `/runs/${last.batch_id}` }, last.batch_id), " ", timeEl(last.started_at));
}

function field(label, control, hint) {
  return h("label", { class: "field" }, label, control, hint ? h("span", { class: "muted hint" }, hint) : null);
}

/** The create/edit form; `schedule` null creates. `onSaved(schedule)` after a 200/201. */
function scheduleForm(collectors, schedule, onSaved, onCancel) {
  const value = (name, fallback) => (schedule ? schedule[name] : fallback);
  const name = h("input", { id: "schedule-name", required: true, value: value("name", ""), pattern: "[a-z0-9][a-z0-9_.\\-]{0,63}", autocomplete: "off" });
  const cron = h("input", { id: "schedule-cron", required: true, value: value("cron", ""), autocomplete: "off", spellcheck: "false" });
  const zone = h("input", { id: "schedule-timezone", value: value("timezone", "UTC"), autocomplete: "off", spellcheck: "false" });
  const priority = h("select", { id: "schedule-priority" }, PRIORITIES.map((p) => h("option", { value: p, selected: p === value("priority", DEFAULT_PRIORITY) }, p)));
  const overlap = h("select", { id: "schedule-overlap" },
    h("option", { value: "skip", selected: value("overlap", "skip") === "skip" }, "skip while the last batch runs"),
    h("option", { value: "queue", selected: value("overlap", "skip") === "queue" }, "start anyway"));
  const catchUp = h("select", { id: "schedule-catch-up" },
    h("option", { value: "none", selected: value("catch_up", "none") === "none" }, "skip missed times"),
    h("option", { value: "latest", selected: value("catch_up", "none") === "latest" }, "fire once for the latest missed time"));
  const chosen = new Set(value("collectors", []));
  const boxes = collectors.map((c) => h("label", {}, h("input", { type: "checkbox", name: "schedule-collector", value: c.name, checked: chosen.has(c.name) }), ` ${c.job_name}`));
  const problem = h("p", { class: "error-text", id: "schedule-error", role: "alert", hidden: true });
  const form = h("form", { id: "schedule-form", class: "panel", "aria-labelledby": "schedule-form-title" },
    h("h2", { id: "schedule-form-title" }, schedule ? `Edit ${schedule.name}` : "New schedule"),
    h("div", { class: "form-row" }, field("Name", name), field("Cron expression", cron, "five fields, or @hourly, @daily…"), field("Time zone", zone, "IANA name, e.g. Europe/Paris")),
    h("fieldset", {}, h("legend", {}, "Collectors"), h("div", { class: "choices" }, boxes)),
    h("div", { class: "form-row" }, field("Priority", priority), field("Overlap", overlap), field("After downtime", catchUp)),
    problem,
    h("div", { class: "actions" }, h("button", { type: "button", id: "schedule-cancel" }, "Cancel"), h("button", { type: "submit", class: "primary", id: "schedule-save" }, "Save")));
  form.querySelector("#schedule-cancel").addEventListener("click", onCancel);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const body = {
      name: name.value.trim(), cron: cron.value.trim(), timezone: zone.value.trim() || "UTC", priority: priority.value,
      overlap: overlap.value, catch_up: catchUp.value,
      collectors: [...form.querySelectorAll("input[name=schedule-collector]:checked")].map((el) => el.value),
    };
    if (schedule) for (const key of Object.keys(body)) if (JSON.stringify(body[key]) === JSON.stringify(schedule[key])) delete body[key];
    try {
      const saved = schedule
        ? await api(`/api/schedules/${schedule.schedule_id}`, { method: "PATCH", body })
        : await api("/api/schedules", { method: "POST", body });
      onSaved(saved);
    } catch (err) {
      problem.textContent = err.message;
      problem.hidden = false;
      const bad = /cron/i.test(err.message) ? cron : /time ?zone/i.test(err.message) ? zone : /name/i.test(err.message) ? name : null;
      if (bad) bad.setAttribute("aria-invalid", "true");
      (bad || problem).focus();
    }
  });
  for (const input of [name, cron, zone]) input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
  return form;
}

export function mount(main) {
  const list = table("Schedules", ["Name", "Collectors", "When", "Next fire", "Last result", "State", "Actions"], "stack");
  list.el.id = "schedules";
  const create = h("button", { type: "button", class: "primary", id: "new-schedule", hidden: true }, "New schedule");
  const formHolder = h("div");
  main.append(h("h1", {}, "Schedules"), formHolder, h("section", { class: "panel" }, h("div", { class: "actions" }, create), list.el));
  const controller = new AbortController();
  let rights = { admin: false };
  let collectors = [];

  const closeForm = () => formHolder.replaceChildren();
  function openForm(schedule) {
    formHolder.replaceChildren(scheduleForm(collectors, schedule, (saved) => {
      closeForm();
      announce(`Schedule ${saved.name} saved`);
      load();
    }, closeForm));
    formHolder.querySelector("input").focus();
  }
  create.addEventListener("click", () => openForm(null));

  async function act(schedule, method, path, body, message) {
    try {
      const result = await api(path, { method, body });
      announce(message);
      if (result && result.batch_id) navigate(`/runs/${result.batch_id}`);
      else load();
    } catch (err) {
      showError(err.message);
    }
  }

  function row(schedule) {
    const base = `/api/schedules/${schedule.schedule_id}`;
    const buttons = [];
    if (rights.admin) {
      const toggle = h("button", { type: "button", class: "small toggle-schedule" }, schedule.enabled ? "Pause" : "Resume");
      toggle.addEventListener("click", () => act(schedule, "PATCH", base, { enabled: !schedule.enabled }, `Schedule ${schedule.name} ${schedule.enabled ? "paused" : "resumed"}`));
      const now = h("button", { type: "button", class: "small run-schedule" }, "Run now");
      now.addEventListener("click", () => act(schedule, "POST", `${base}/trigger`, {}, `Schedule ${schedule.name} started`));
      buttons.push(toggle, now);
      if (schedule.source !== "file") {
        const edit = h("button", { type: "button", class: "small edit-schedule" }, "Edit");
        edit.addEventListener("click", () => openForm(schedule));
        buttons.push(edit);
      }
    }
    const lastFire = schedule.last_fire && schedule.last_fire.outcome !== "fired" ? errorText(`${schedule.last_fire.outcome}: ${schedule.last_fire.detail || ""}`) : null;
    const cells = [
      ["Name", h("strong", {}, schedule.name), schedule.source === "file" ? h("span", { class: "muted" }, " (collectors file)") : null],
      ["Collectors", schedule.collectors.join(", ")],
      ["When", h("code", {}, schedule.cron), ` ${schedule.timezone}`],
      ["Next fire", nextTimes(schedule.next_fire_times)],
      ["Last result", lastResult(schedule), lastFire],
      ["State", schedule.enabled ? "active" : "paused"],
      ["Actions", h("div", { class: "row-actions" }, buttons)],
    ];
    return h("tr", { dataset: { scheduleId: schedule.schedule_id, name: schedule.name } },
      cells.map(([label, ...values]) => h("td", { "data-label": label }, values)));
  }

  async function load() {
    try {
      const body = await api("/api/schedules", { signal: controller.signal });
      list.tbody.replaceChildren(...(body.schedules.length ? body.schedules.map(row) : [h("tr", {}, h("td", { colspan: 7 }, "No schedule yet."))]));
    } catch (err) {
      if (!controller.signal.aborted) showError(err.message);
    }
  }
  Promise.all([can(), api("/api/collectors", { signal: controller.signal })]).then(([r, body]) => {
    rights = r;
    collectors = body.collectors;
    create.hidden = !rights.admin;
    load();
  }).catch((err) => showError(err.message));
  // A batch started or ended (pushed): last results and next times moved; re-read, at most every 2 s.
  const snapshot = () => [...live.batches.values()].map((b) => `${b.batch_id}:${b.status}`).join();
  let seen = snapshot();
  let timer = null;
  const unsubscribe = live.subscribe(() => {
    const now = snapshot();
    if (now === seen || timer) return;
    seen = now;
    timer = setTimeout(() => { timer = null; load(); }, 2000);
  });
  return () => {
    controller.abort();
    clearTimeout(timer);
    unsubscribe();
  };
}
