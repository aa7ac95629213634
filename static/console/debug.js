// The console's debug mode, for benchmarks, browser tests and a developer's console: off unless
// this tab's sessionStorage has "collector-hub-debug" set to "1" when the page loads. Only then
// does the console time its own work (the Performance API) and put handles on `window`:
//
//   window.collectorHubConsole = { stats, batches, keepFinished, transport(), tracker }
//
// bench/console.py and tests/browser/ turn it on with an init script; docs/CONSOLE.md says how.

const FLAG = "collector-hub-debug";

function flagSet() {
  try {
    return sessionStorage.getItem(FLAG) === "1";
  } catch {
    return false; // storage refused (privacy settings): no debug mode
  }
}

export const enabled = flagSet();

/** Time spent handling live updates and drawing them, and how many; null when not debugging. */
export const stats = enabled ? { updates: 0, handleMs: 0, renderMs: 0, frames: 0 } : null;

/** performance.now() when debugging (0 otherwise: no timing without the flag). */
export function clock() {
  return stats ? performance.now() : 0;
}

/** Put `value` on window.collectorHubConsole as `name`, when debugging. */
export function expose(name, value) {
  if (!enabled) return;
  window.collectorHubConsole = window.collectorHubConsole || {};
  window.collectorHubConsole[name] = value;
}
