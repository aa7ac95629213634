// Addresses to views with the History API: every view has its own URL (shareable), links
// are followed without reloading the page, back and forward redraw the view they name.

import { $, h, showError } from "./dom.js";

const routes = []; // {pattern: RegExp, nav: string, load: () => Promise<module>}
let current = null; // {unmount}
let generation = 0;

/** route("/runs/(bc_\\d{8})", "runs", () => import("./views/run.js")) */
export function route(pattern, nav, load) {
  routes.push({ pattern: new RegExp(`^${pattern}$`), nav, load });
}

function match(pathname) {
  for (const r of routes) {
    const m = r.pattern.exec(pathname);
    if (m) return { ...r, params: m.slice(1).map(decodeURIComponent) };
  }
  return null;
}

async function render() {
  const mine = ++generation;
  const url = new URL(window.location.href);
  const found = match(url.pathname);
  if (current && current.unmount) current.unmount();
  current = null;
  showError("");
  const main = $("main");
  main.replaceChildren();
  for (const link of document.querySelectorAll("nav a[data-nav]")) {
    if (found && link.dataset.nav === found.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!found) {
    main.append(h("h1", { tabindex: -1 }, "Not found"));
    return;
  }
  try {
    const view = await found.load();
    if (mine !== generation) return; // another navigation started meanwhile
    const unmount = view.mount(main, found.params, url.searchParams);
    current = { unmount };
  } catch (err) {
    if (mine !== generation) return;
    // A view whose script did not load (network, a deploy in between) or failed to start:
    // say so in the page instead of leaving it blank.
    console.error("console: the view could not be opened", err);
    if (current && current.unmount) current.unmount();
    current = null;
    main.replaceChildren(h("h1", { tabindex: -1 }, "This view could not be opened"),
      h("p", {}, "Its script did not load or failed to start. Reload the page to try again; if it keeps failing, the server's log may say why."),
      h("p", { class: "muted", id: "view-failure" }, (err && err.message) || String(err)),
      h("p", {}, h("button", { type: "button", id: "reload-view", onclick: () => window.location.reload() }, "Reload")));
  }
  const heading = main.querySelector("h1");
  if (heading) document.title = `${heading.textContent} · Collector Hub`;
}

/** Go to a URL of the console (pushes a history entry unless `replace`). */
export function navigate(href, { replace = false, focus = true } = {}) {
  const url = new URL(href, window.location.href);
  if (url.href === window.location.href && !replace) return render();
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  return render().then(() => focus && focusHeading());
}

/** Move focus to the view's heading after a navigation, as a page load would, for keyboards
 * and screen readers. */
function focusHeading() {
  const heading = $("main").querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: false });
  }
}

function onClick(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return;
  const url = new URL(link.href);
  if (url.origin !== window.location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
  if (!match(url.pathname)) return;
  event.preventDefault();
  navigate(url.href);
}

export function startRouter() {
  document.addEventListener("click", onClick);
  window.addEventListener("popstate", () => render());
  return render();
}
