// The throughput chart: jobs completed and failed per minute (GET /api/throughput) as an
// inline SVG drawn here, no chart library. Colours come from the style sheet (light and
// dark), text goes in as text nodes, and the numbers are also written out: a summary
// sentence and a table of the busy minutes, for screen readers and for copying.
import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 190;
const PAD = { top: 12, right: 8, bottom: 26, left: 44 };
const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const COUNT = new Intl.NumberFormat();

/** An SVG element: attributes as given (numbers rounded to 0.1 px), children appended. */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value == null) continue;
    el.setAttribute(name, typeof value === "number" ? String(Math.round(value * 10) / 10) : value);
  }
  for (const child of children.flat()) {
    if (child != null) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A round top for the y axis (1, 2, 5 times a power of ten) and its tick step. */
function scale(max) {
  if (max <= 4) return { top: Math.max(1, max), step: 1 };
  const raw = max / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= raw);
  return { top: Math.ceil(max / step) * step, step };
}

/** The label interval: a local time every N minutes, N so that labels do not collide. */
function labelEvery(minutes, width) {
  const room = Math.max(1, Math.floor((width - PAD.left - PAD.right) / 56));
  return [1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 360].find((n) => minutes / n <= room) || 720;
}

/** True for the minutes that get a time label: local times on a round interval. */
function labelled(date, every) {
  if (every < 60) return date.getMinutes() % every === 0;
  return date.getMinutes() === 0 && date.getHours() % (every / 60) === 0;
}

function plural(n, word) {
  return COUNT.format(n) + " " + word;
}

/** The sentence that sums the window up (the SVG's description and the visible fallback). */
export function summary(data) {
  const minutes = data.minutes.length;
  const scope = data.queue ? " in queue " + data.queue : "";
  if (!data.completed && !data.failed) return "No job finished" + scope + " in the last " + plural(minutes, "minutes") + ".";
  const busiest = data.minutes.reduce((best, m) => (m.completed + m.failed > best.completed + best.failed ? m : best));
  return "Last " + plural(minutes, "minutes") + scope + ": " + plural(data.completed, "completed") + ", " +
    plural(data.failed, "failed") + ". Busiest minute " + CLOCK.format(new Date(busiest.start)) + " with " +
    plural(busiest.completed, "completed") + " and " + plural(busiest.failed, "failed") + ".";
}

/** The <svg>: a pair of bars per minute (completed, failed) over a shared count axis. */
function plot(data, width) {
  const minutes = data.minutes;
  const innerW = width - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const peak = Math.max(0, ...minutes.map((m) => Math.max(m.completed, m.failed)));
  const { top, step } = scale(peak);
  const y = (n) => PAD.top + innerH - (n / top) * innerH;
  const slot = innerW / minutes.length;
  const bar = Math.max(1, slot * 0.42);
  const every = labelEvery(minutes.length, width);

  const grid = [];
  for (let n = 0; n <= top; n += step) {
    grid.push(s("line", { x1: PAD.left, x2: width - PAD.right, y1: y(n), y2: y(n), class: n ? "grid" : "axis" }));
    grid.push(s("text", { x: PAD.left - 6, y: y(n) + 4, class: "tick y" }, COUNT.format(n)));
  }
  const bars = minutes.map((m, i) => {
    const x = PAD.left + i * slot;
    const label = CLOCK.format(new Date(m.start)) + ": " + plural(m.completed, "completed") + ", " + plural(m.failed, "failed");
    const start = new Date(m.start);
    return s("g", { class: "minute", "data-start": m.start, "data-completed": String(m.completed), "data-failed": String(m.failed) },
      s("title", {}, label),
      s("rect", { class: "hover", x, y: PAD.top, width: slot, height: innerH }),
      m.completed ? s("rect", { class: "bar completed", x: x + slot / 2 - bar, y: y(m.completed), width: bar, height: y(0) - y(m.completed) }) : null,
      m.failed ? s("rect", { class: "bar failed", x: x + slot / 2, y: y(m.failed), width: bar, height: y(0) - y(m.failed) }) : null,
      labelled(start, every)
        ? [s("line", { class: "tick-mark", x1: x, x2: x, y1: y(0), y2: y(0) + 4 }),
          s("text", { x, y: HEIGHT - 8, class: "tick x" }, CLOCK.format(start))]
        : null);
  });
  const text = summary(data);
  return s("svg", {
    class: "chart", role: "img", width, height: HEIGHT, viewBox: "0 0 " + width + " " + HEIGHT,
    "aria-labelledby": "throughput-title throughput-desc", "data-testid": "throughput-svg",
    "data-minutes": String(minutes.length), "data-completed": String(data.completed), "data-failed": String(data.failed),
  },
  s("title", { id: "throughput-title" }, "Jobs completed and failed per minute"),
  s("desc", { id: "throughput-desc" }, text),
  grid, bars);
}

/** The busy minutes as a table: what the bars say, in words and numbers. */
function table(data) {
  const busy = data.minutes.filter((m) => m.completed || m.failed);
  if (!busy.length) return null;
  return h("details", { class: "chart-table" },
    h("summary", {}, "Minute by minute (" + busy.length + " with jobs)"),
    h("table", { class: "grid compact" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "minute"), h("th", { scope: "col", class: "n" }, "completed"),
        h("th", { scope: "col", class: "n" }, "failed"))),
      h("tbody", {}, busy.slice().reverse().map((m) => h("tr", {},
        h("th", { scope: "row" }, h("time", { datetime: m.start }, CLOCK.format(new Date(m.start)))),
        h("td", { class: "n" }, COUNT.format(m.completed)), h("td", { class: "n" }, COUNT.format(m.failed)))))));
}

/**
 * The throughput panel: heading, legend with the window's totals, the chart, the summary
 * sentence and the table. ``width``: the room it has, in CSS pixels.
 */
export function throughputPanel(data, width) {
  const w = Math.max(300, Math.min(1400, Math.floor(width)));
  return h("section", { class: "panel throughput", "aria-labelledby": "throughput-heading", dataset: { testid: "throughput" } },
    h("div", { class: "chart-head" },
      h("h2", { id: "throughput-heading" }, "Throughput, last " + (data.minutes.length === 60 ? "hour" : plural(data.minutes.length, "minutes"))),
      h("ul", { class: "legend", "aria-label": "Legend" },
        h("li", { class: "s-completed" }, h("span", { class: "swatch completed", "aria-hidden": "true" }), "completed ",
          h("strong", { dataset: { testid: "throughput-completed" } }, COUNT.format(data.completed))),
        h("li", { class: "s-failed" }, h("span", { class: "swatch failed", "aria-hidden": "true" }), "failed ",
          h("strong", { dataset: { testid: "throughput-failed" } }, COUNT.format(data.failed))))),
    h("div", { class: "chart-box" }, plot(data, w)),
    h("p", { class: "muted chart-summary", dataset: { testid: "throughput-summary" } }, summary(data),
      " Failed counts jobs that failed for good, not retried attempts."),
    table(data));
}
