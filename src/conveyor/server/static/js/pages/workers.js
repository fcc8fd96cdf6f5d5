// Live workers: each registered worker, what it serves and the jobs it runs now. A worker
// renews its entry with each heartbeat; one that misses three drops off by itself.
import { api } from "../api.js";
import { h, empty, copyButton } from "../dom.js";
import { when } from "../format.js";

function runningJobs(ids) {
  if (!ids.length) return h("span", { class: "muted" }, "idle");
  return h("ul", { class: "inline-list" }, ids.map((id) => h("li", {},
    h("a", { href: "#/jobs/" + encodeURIComponent(id), class: "job-link", title: id, "aria-label": "Open job " + id },
      h("code", {}, id.slice(0, 8) + "…")))));
}

export default {
  id: "workers",
  path: /^\/workers$/,
  nav: { label: "Workers", href: "#/workers", shortcut: "w" },
  needs: "GET /api/workers",
  title: () => "Workers",
  load: () => api.workers(),
  render(list) {
    const busy = list.items.reduce((sum, w) => sum + w.running.length, 0);
    const slots = list.items.reduce((sum, w) => sum + w.concurrency, 0);
    return h("section", { class: "page" },
      h("h1", {}, "Workers"),
      list.items.length === 0 ? empty("No worker is running.",
        "Start one with `conveyor worker APP`; it shows up here within a heartbeat and drops off when it stops.") : [
        h("p", { class: "muted", dataset: { testid: "worker-summary" } },
          list.items.length + " live worker(s), " + busy + " of " + slots + " slot(s) busy."),
        h("div", { class: "scroll" }, h("table", { class: "grid workers", id: "workers" },
          h("thead", {}, h("tr", {}, ["id", "host", "pid", "queues", "concurrency", "running", "started", "last seen"]
            .map((c) => h("th", { scope: "col", class: c === "pid" || c === "concurrency" ? "n" : null }, c)))),
          // data-label names each cell where a phone shows the rows as cards (the header is hidden).
          h("tbody", {}, list.items.map((w) => h("tr", { dataset: { worker: w.id } },
            h("th", { scope: "row", class: "id" }, h("code", {}, w.id), " ", copyButton(w.id, "worker id " + w.id)),
            h("td", { dataset: { label: "host", testid: "host" } }, w.host),
            h("td", { class: "n", dataset: { label: "pid", testid: "pid" } }, String(w.pid)),
            h("td", { dataset: { label: "queues", testid: "queues" } },
              w.queues.length ? w.queues.join(", ") : h("span", { class: "muted" }, "all")),
            h("td", { class: "n", dataset: { label: "concurrency", testid: "concurrency" } }, String(w.concurrency)),
            h("td", { dataset: { label: "running", testid: "running" } }, runningJobs(w.running)),
            h("td", { dataset: { label: "started", testid: "started" } }, when(w.started_at)),
            h("td", { dataset: { label: "last seen", testid: "last-seen" } }, when(w.last_seen_at)))))))]);
  },
};
