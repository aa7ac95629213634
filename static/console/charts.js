// Small SVG charts drawn by hand (a bar per run, a sparkline): no library needed for these.
// Each chart is an image with a text alternative that says what it shows.

import { duration, h } from "./dom.js";

/** Bars over time: [{label, value, status}] oldest first; value in seconds (null: no bar).
 * The SVG stretches to its box; the scale and the time range are text below it. */
export function barChart(points, { title, format = duration } = {}) {
  const width = 1000;
  const height = 100;
  const max = Math.max(1, ...points.map((p) => p.value ?? 0));
  const step = width / Math.max(points.length, 10);
  const svg = h("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "chart bars", preserveAspectRatio: "none", role: "img", "aria-label": title });
  svg.append(h("svg:title", {}, title));
  svg.append(h("svg:line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
  points.forEach((p, i) => {
    const value = p.value ?? 0;
    const barHeight = Math.max(value > 0 ? 1 : 0, (value / max) * (height - 2));
    const rect = h("svg:rect", {
      x: (i * step + step * 0.15).toFixed(1), y: (height - barHeight).toFixed(1),
      width: (step * 0.7).toFixed(1), height: barHeight.toFixed(1),
      class: `col ${p.status === "failed" || p.status === "cancelled" ? "failed" : ""}`,
    });
    rect.append(h("svg:title", {}, p.title || `${p.label}: ${duration(p.value)} (${p.status})`));
    svg.append(rect);
    if (p.part) { // the failed share of a count, drawn over the bar's foot
      const partHeight = (p.part / max) * (height - 2);
      svg.append(h("svg:rect", {
        x: rect.getAttribute("x"), y: (height - partHeight).toFixed(1), width: rect.getAttribute("width"),
        height: partHeight.toFixed(1), class: "col failed",
      }));
    }
  });
  const first = points.length ? points[0].label : "";
  const last = points.length ? points[points.length - 1].label : "";
  return h("figure", { class: "chart-figure" }, svg,
    h("figcaption", { class: "chart-scale" }, h("span", {}, `${first} → ${last}`), h("span", {}, `tallest: ${format(max)}`)));
}

/** A sparkline of numbers (nulls skipped), for trends in tables. */
export function sparkline(values, title) {
  const width = 96;
  const height = 22;
  const known = values.map((v, i) => [i, v]).filter(([, v]) => v !== null && v !== undefined);
  const max = Math.max(1e-9, ...known.map(([, v]) => v));
  const stepX = values.length > 1 ? width / (values.length - 1) : width;
  const points = known.map(([i, v]) => `${(i * stepX).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join(" ");
  const svg = h("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "chart spark", role: "img", "aria-label": title });
  svg.append(h("svg:title", {}, title));
  if (known.length > 1) svg.append(h("svg:polyline", { points, class: "series" }));
  return svg;
}

/** Lines over days: `labels` (the days, oldest first) and `series` [{name, values}] (one value
 * per label). Each line has a class of its own (series-0, series-1…) and its name in a legend
 * below, with its last value, so the colours are never the only key. */
export function lineChart(labels, series, { title } = {}) {
  const width = 1000;
  const height = 160;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const stepX = labels.length > 1 ? width / (labels.length - 1) : width;
  const y = (v) => (height - 2 - (v / max) * (height - 6)).toFixed(1);
  const svg = h("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "chart lines", preserveAspectRatio: "none", role: "img", "aria-label": title });
  svg.append(h("svg:title", {}, title));
  svg.append(h("svg:line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
  series.forEach((s, i) => {
    const points = s.values.map((v, j) => `${(j * stepX).toFixed(1)},${y(v)}`).join(" ");
    const line = h("svg:polyline", { points, class: `series series-${i}`, "vector-effect": "non-scaling-stroke" });
    line.append(h("svg:title", {}, `${s.name}: ${s.values[s.values.length - 1] ?? 0} on ${labels[labels.length - 1] || ""}`));
    svg.append(line);
  });
  const legend = h("ul", { class: "chart-legend" }, series.map((s, i) =>
    h("li", { dataset: { series: s.name } }, h("span", { class: `swatch series-${i}`, "aria-hidden": "true" }), `${s.name}: `,
      h("span", { class: "last-value" }, String(s.values[s.values.length - 1] ?? 0)))));
  return h("figure", { class: "chart-figure" }, svg,
    h("figcaption", { class: "chart-scale" }, h("span", {}, `${labels[0] || ""} → ${labels[labels.length - 1] || ""}`), h("span", {}, `highest: ${max}`)),
    legend);
}
