// Queues: each queue's counts, how it stands against its flow-control limits (running vs
// concurrency, starts in the rate window, group limits), its busiest groups, and whether it
// is paused or throttled now. Admin keys pause, resume and edit the limits; the API's own
// words explain a refused value.
import { api, ApiError, AuthError } from "../api.js";
import { h, empty, meter } from "../dom.js";
import { STATES, MEANING, jobsHref } from "../states.js";

// The limits a queue has, in the order the form shows them (docs/flow-control.md).
const LIMITS = [
  { field: "concurrency", label: "Concurrency", hint: "jobs of the queue processing at once, across every worker", kind: "count" },
  { field: "rate_limit", label: "Rate limit", hint: "starts in any window: 100/m, 5/10s (s, m, h, d)", kind: "rate" },
  { field: "group_concurrency", label: "Group concurrency", hint: "jobs of one group processing at once", kind: "count" },
  { field: "group_rate_limit", label: "Group rate limit", hint: "starts of one group in any window: 5/s", kind: "rate" },
];

/** The N of a rate "N/PERIOD" (null when there is none). */
function rateCount(rate) {
  const match = /^(\d+)\//.exec(rate || "");
  return match ? Number(match[1]) : null;
}

function badges(queue) {
  return [
    queue.paused ? h("span", { class: "badge flag paused", dataset: { testid: "paused" },
      title: "No job of this queue is claimed; enqueue still works and running jobs finish" }, "paused") : null,
    queue.throttled ? h("span", { class: "badge flag throttled", dataset: { testid: "throttled" },
      title: "No room right now under the queue's own limits: waiting jobs start as slots free up" }, "throttled") : null,
  ];
}

function running(queue) {
  if (queue.concurrency == null) return meter(null, queue.processing + " running · no limit");
  return meter(queue.processing / queue.concurrency, queue.processing + " of " + queue.concurrency + " running",
    "Running jobs of " + queue.name + " against its concurrency");
}

function rate(queue) {
  if (queue.rate_limit == null) return h("span", { class: "muted" }, "no limit");
  const count = rateCount(queue.rate_limit);
  return meter(count ? queue.started_in_window / count : null, queue.started_in_window + " of " + queue.rate_limit + " started",
    "Starts of " + queue.name + " in its rate window");
}

function groupLimits(queue) {
  const parts = [];
  if (queue.group_concurrency != null) parts.push(queue.group_concurrency + " running");
  if (queue.group_rate_limit != null) parts.push(queue.group_rate_limit);
  return parts.length ? parts.join(" · ") + " per group" : h("span", { class: "muted" }, "no limit");
}

function busiest(queue) {
  if (!queue.busiest_groups.length) return null;
  return h("table", { class: "grid compact groups", "aria-label": "Busiest groups of " + queue.name },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "busiest groups"), h("th", { scope: "col", class: "n" }, "waiting"),
      h("th", { scope: "col", class: "n" }, "running"))),
    h("tbody", {}, queue.busiest_groups.map((g) => h("tr", { dataset: { group: g.group } },
      h("td", { class: "group-name" }, h("a", { href: jobsHref({ queue: queue.name, group: g.group }), title: g.group }, g.group)),
      h("td", { class: "n" }, String(g.waiting)), h("td", { class: "n" }, String(g.processing))))));
}

function counts(queue) {
  return h("div", { class: "mini-counts" }, STATES.map((s) => {
    const n = queue.counts[s] || 0;
    return h("a", { class: "mini s-" + s + (n ? "" : " zero"), href: jobsHref({ queue: queue.name, status: s }), title: MEANING[s],
      dataset: { state: s }, "aria-label": n + " " + s + " in " + queue.name },
    h("span", { class: "mini-value" }, String(n)), h("span", { class: "mini-label" }, s));
  }));
}

/** What the form sends for one field: unchanged fields are left out; empty removes the limit. */
function change(limit, text, before) {
  const value = text.trim();
  if (value === "") return before == null ? undefined : null;
  // Whole numbers go as numbers; anything else goes as typed, so the API says what is wrong with it.
  const sent = limit.kind === "count" && /^-?\d+$/.test(value) ? Number(value) : value;
  return sent === before ? undefined : sent;
}

function editor(queue, ctx) {
  const inputs = LIMITS.map((limit) => {
    const input = h("input", { id: "limit-" + limit.field, name: limit.field, size: 10, spellcheck: "false", autocomplete: "off",
      inputmode: limit.kind === "count" ? "numeric" : null, placeholder: "no limit", "aria-describedby": "limit-" + limit.field + "-hint" });
    input.value = queue[limit.field] == null ? "" : String(queue[limit.field]);
    return input;
  });
  const problem = h("p", { class: "error-text", role: "alert", id: "limits-problem" });
  const stop = () => { ctx.state.editing = null; ctx.refresh(); };
  const form = h("form", { class: "limits-form", "aria-label": "Limits of " + queue.name, onsubmit: async (event) => {
    event.preventDefault();
    const changes = {};
    LIMITS.forEach((limit, i) => {
      const value = change(limit, inputs[i].value, queue[limit.field]);
      if (value !== undefined) changes[limit.field] = value;
    });
    if (!Object.keys(changes).length) { stop(); return; }
    problem.textContent = "";
    try {
      await api.configureQueue(queue.name, changes);
    } catch (error) {
      // A refused value: the API's message names it and what is valid, shown beside the fields.
      if (error instanceof ApiError && !(error instanceof AuthError)) { problem.textContent = error.message; return; }
      await ctx.act(() => Promise.reject(error)); // no key or no server: the usual screens
      return;
    }
    ctx.toast("Limits of " + queue.name + " saved: they apply from the next claim.");
    stop();
  } },
  h("div", { class: "limit-fields" }, LIMITS.map((limit, i) => h("div", { class: "limit-field" },
    h("label", { for: "limit-" + limit.field }, limit.label), inputs[i],
    h("span", { class: "muted hint", id: "limit-" + limit.field + "-hint" }, limit.hint)))),
  h("p", { class: "muted" }, "Leave a field empty to remove that limit."),
  problem,
  h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, "Save limits"),
    h("button", { type: "button", onclick: stop }, "Cancel")));
  setTimeout(() => { if (!form.contains(document.activeElement)) inputs[0].focus(); });
  return form;
}

function actions(queue, ctx) {
  if (!ctx.can("admin")) return null;
  const pause = queue.paused
    ? h("button", { type: "button", class: "primary", dataset: { key: "toggle-" + queue.name }, onclick: async () => {
      const done = await ctx.act(() => api.resumeQueue(queue.name));
      if (done) { ctx.toast("Resumed " + queue.name + ": workers claim from it again."); ctx.refresh(); }
    } }, "Resume")
    : h("button", { type: "button", dataset: { key: "toggle-" + queue.name }, onclick: async () => {
      const sure = await ctx.confirm("Pause " + queue.name + "?",
        "Workers stop claiming its jobs until it is resumed; enqueue still works and running jobs finish.", { action: "Pause " + queue.name });
      if (!sure) return;
      const done = await ctx.act(() => api.pauseQueue(queue.name));
      if (done) { ctx.toast("Paused " + queue.name + "."); ctx.refresh(); }
    } }, "Pause");
  // Pause and Resume share a key, so focus stays on the toggle when it flips.
  const edit = h("button", { type: "button", dataset: { key: "edit-" + queue.name }, "aria-expanded": String(ctx.state.editing === queue.name),
    onclick: () => { ctx.state.editing = ctx.state.editing === queue.name ? null : queue.name; ctx.rerender(); } }, "Edit limits");
  return h("div", { class: "row queue-actions", role: "group", "aria-label": "Actions on " + queue.name }, pause, edit);
}

function queueView(queue, ctx) {
  const editing = ctx.state.editing === queue.name && ctx.can("admin");
  return h("article", { class: "panel queue" + (queue.paused ? " is-paused" : ""), dataset: { queue: queue.name } },
    h("div", { class: "queue-head" },
      h("h2", {}, h("a", { href: jobsHref({ queue: queue.name }) }, queue.name), badges(queue)),
      actions(queue, ctx)),
    counts(queue),
    h("dl", { class: "facts" },
      h("dt", {}, "running"), h("dd", { dataset: { testid: "running" } }, running(queue)),
      h("dt", {}, "rate"), h("dd", { dataset: { testid: "rate" } }, rate(queue)),
      h("dt", {}, "groups"), h("dd", { dataset: { testid: "group-limits" } }, groupLimits(queue))),
    editing ? editor(queue, ctx) : null,
    busiest(queue));
}

export default {
  id: "queues",
  path: /^\/queues$/,
  nav: { label: "Queues", href: "#/queues", shortcut: "q" },
  needs: "GET /api/queues",
  title: () => "Queues",
  load: () => api.queues(),
  render(list, ctx) {
    const paused = list.items.filter((q) => q.paused).length;
    const throttled = list.items.filter((q) => q.throttled).length;
    return h("section", { class: "page" },
      h("h1", {}, "Queues"),
      list.items.length === 0 ? empty("No queues yet.",
        "A queue appears with its first job, or once it has limits (app.configure_queue(...) or `conveyor queues set`).") : [
        h("p", { class: "muted", dataset: { testid: "queue-summary" } }, list.items.length + " queue(s)"
          + (paused ? ", " + paused + " paused" : "") + (throttled ? ", " + throttled + " throttled now" : "")
          + ". Limits hold across every worker and apply from the next claim."),
        h("div", { class: "queues" }, list.items.map((q) => queueView(q, ctx)))]);
  },
};
