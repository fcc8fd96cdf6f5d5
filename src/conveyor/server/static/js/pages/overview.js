// Overview: counts per queue and status, how long the oldest due job has waited, which
// queues are paused or throttled now, how many workers are live and the last hour's
// throughput per minute (each where the server has the route).
import { api } from "../api.js";
import { h, empty } from "../dom.js";
import { duration } from "../format.js";
import { throughputPanel } from "../chart.js";
import { STATES, MEANING, jobsHref } from "../states.js";

/** The queue's paused and throttled badges (flow control), linking to the queues page. */
function flags(queue) {
  if (!queue || !(queue.paused || queue.throttled)) return null;
  return [" ", queue.paused ? h("a", { class: "badge flag paused", href: "#/queues", dataset: { testid: "paused" },
    title: "Paused: no job of this queue is claimed until it is resumed" }, "paused") : null,
  queue.throttled ? [" ", h("a", { class: "badge flag throttled", href: "#/queues", dataset: { testid: "throttled" },
    title: "Throttled: at its concurrency or rate limit right now" }, "throttled")] : null];
}

/** The room the chart has: the page's width less its padding and the panel's (CSS scales the rest). */
function chartWidth() {
  const main = document.getElementById("main");
  return (main ? main.clientWidth : window.innerWidth) - (window.innerWidth <= 760 ? 58 : 76);
}

export default {
  id: "overview",
  path: /^\/overview$/,
  nav: { label: "Overview", href: "#/overview", shortcut: "o" },
  title: () => "Overview",
  load: async (params, state, has) => {
    const [stats, queues, workers, throughput] = await Promise.all([
      api.stats(),
      has("GET /api/queues") ? api.queues() : null,
      has("GET /api/workers") ? api.workers() : null,
      has("GET /api/throughput") ? api.throughput(60) : null,
    ]);
    return { stats, queues: queues && new Map(queues.items.map((q) => [q.name, q])), workers: workers && workers.items, throughput };
  },
  render({ stats, queues: flow, workers, throughput }) {
    const total = STATES.reduce((sum, s) => sum + (stats.counts[s] || 0), 0);
    const queues = Object.keys(stats.queues).sort();
    const age = stats.oldest_pending_age_s;
    return h("section", { class: "page" },
      h("h1", {}, "Overview"),
      h("div", { class: "cards" },
        STATES.map((s) => h("a", { class: "card s-" + s, href: jobsHref({ status: s }), title: MEANING[s],
          dataset: { testid: "count-" + s } },
          h("span", { class: "card-label" }, s), h("span", { class: "card-value" }, String(stats.counts[s] || 0)))),
        h("div", { class: "card lag", title: "How long the oldest job that is due has been waiting" },
          h("span", { class: "card-label" }, "oldest due job waiting"),
          h("span", { class: "card-value", dataset: { testid: "oldest-pending" } }, age == null ? "none" : duration(age))),
        workers ? h("a", { class: "card workers-card", href: "#/workers", title: "Workers whose heartbeat is current" },
          h("span", { class: "card-label" }, "live workers"),
          h("span", { class: "card-value", dataset: { testid: "live-workers" } }, String(workers.length))) : null),
      throughput ? throughputPanel(throughput, chartWidth()) : null,
      h("h2", {}, "Queues"),
      total === 0 ? empty("No jobs yet.",
        "Enqueue one with task.enqueue(...) in Python or POST /api/jobs; run `conveyor worker APP` to process them.") :
      h("div", { class: "scroll" }, h("table", { class: "grid", id: "queues" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "queue"), STATES.map((s) => h("th", { scope: "col", class: "n", title: MEANING[s] }, s)))),
        h("tbody", {}, queues.map((q) => h("tr", { dataset: { queue: q } },
          h("th", { scope: "row" }, h("a", { href: jobsHref({ queue: q }) }, q), flags(flow && flow.get(q))),
          STATES.map((s) => {
            const n = stats.queues[q][s] || 0;
            return h("td", { class: "n" + (n ? "" : " zero"), dataset: { state: s } },
              n ? h("a", { href: jobsHref({ queue: q, status: s }), "aria-label": n + " " + s + " in " + q }, String(n)) : "0");
          })))),
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, "all queues"),
          STATES.map((s) => h("td", { class: "n" }, String(stats.counts[s] || 0))))))));
  },
};
