// Overview: counts per queue and status, and how long the oldest due job has waited.
import { api } from "../api.js";
import { h, empty } from "../dom.js";
import { duration } from "../format.js";
import { STATES, MEANING, jobsHref } from "../states.js";

export default {
  id: "overview",
  path: /^\/overview$/,
  nav: { label: "Overview", href: "#/overview", shortcut: "o" },
  title: () => "Overview",
  load: () => api.stats(),
  render(stats) {
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
          h("span", { class: "card-value", dataset: { testid: "oldest-pending" } }, age == null ? "none" : duration(age)))),
      h("h2", {}, "Queues"),
      total === 0 ? empty("No jobs yet.",
        "Enqueue one with task.enqueue(...) in Python or POST /api/jobs; run `conveyor worker APP` to process them.") :
      h("div", { class: "scroll" }, h("table", { class: "grid", id: "queues" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "queue"), STATES.map((s) => h("th", { scope: "col", class: "n", title: MEANING[s] }, s)))),
        h("tbody", {}, queues.map((q) => h("tr", { dataset: { queue: q } },
          h("th", { scope: "row" }, h("a", { href: jobsHref({ queue: q }) }, q)),
          STATES.map((s) => {
            const n = stats.queues[q][s] || 0;
            return h("td", { class: "n" + (n ? "" : " zero"), dataset: { state: s } },
              n ? h("a", { href: jobsHref({ queue: q, status: s }), "aria-label": n + " " + s + " in " + q }, String(n)) : "0");
          })))),
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, "all queues"),
          STATES.map((s) => h("td", { class: "n" }, String(stats.counts[s] || 0))))))));
  },
};
