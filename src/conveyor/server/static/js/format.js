// Times, ages and error signatures: how values read on screen.
import { h } from "./dom.js";

const LOCAL = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
});
const LOCAL_TODAY = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
});

/** "Mar 4, 2025, 14:03:22 CET" (today: "14:03:22 CET"). */
export function localTime(iso) {
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return (today ? LOCAL_TODAY : LOCAL).format(date);
}

/** "2025-03-04 13:03:22 UTC". */
export function utcTime(iso) {
  return new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** "12 s", "3 min", "2 h 5 min", "4 d 3 h". */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

/** "3 min ago" or "in 2 min". */
export function relative(iso, now = Date.now()) {
  const delta = (now - new Date(iso).getTime()) / 1000;
  if (Math.abs(delta) < 5) return "just now";
  return delta > 0 ? duration(delta) + " ago" : "in " + duration(-delta);
}

/** A <time>: the local time with its zone and the age; hovering shows UTC. */
export function when(iso, { age = true } = {}) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: utcTime(iso), class: "when" },
    localTime(iso), age ? h("span", { class: "age" }, " · " + relative(iso)) : null);
}

/** How long a run took, or "" when it has no end. */
export function elapsed(startIso, endIso) {
  if (!startIso || !endIso) return "";
  const ms = new Date(endIso).getTime() - new Date(startIso).getTime();
  return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(ms < 10000 ? 2 : 0) + " s";
}

/**
 * Groups errors that differ only in their values: the exception type plus the message
 * with quoted values, ids, hex and numbers folded ("KeyError: 'user-17'" and
 * "KeyError: 'user-9'" are one signature).
 */
export function errorSignature(error) {
  const text = (error || "").split("\n")[0].trim();
  const match = /^([A-Za-z_][\w.]*)(?::\s*(.*))?$/s.exec(text);
  const type = match ? match[1] : "Error";
  const message = match ? (match[2] || "") : text;
  const folded = message
    .replace(/'[^']*'|"[^"]*"/g, "…")
    .replace(/\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b/gi, "<id>")
    .replace(/\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b/gi, "<id>")
    .replace(/\b0x[0-9a-f]+\b/gi, "<hex>")
    .replace(/\d+(\.\d+)?/g, "N")
    .replace(/\s+/g, " ")
    .slice(0, 200);
  return { type, message: folded, key: type + ": " + folded };
}
