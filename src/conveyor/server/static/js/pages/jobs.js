// The job browser: filter by status, queue, task, group and error text; pages with the real total, newest first.
import { api } from "../api.js";
import { h, idCell, badge, empty } from "../dom.js";
import { when } from "../format.js";
import { STATES, MEANING, jobsHref } from "../states.js";

const PAGE_SIZES = [25, 50, 100, 200];

function filtersOf(params) {
  const limit = PAGE_SIZES.includes(Number(params.limit)) ? Number(params.limit) : 50;
  const offset = Math.max(0, Number.parseInt(params.offset || "0", 10) || 0);
  return { status: params.status || "", queue: params.queue || "", task: params.task || "", group: params.group || "", error: params.error || "", limit, offset };
}

function filterForm(filters, ctx) {
  const status = h("select", { id: "f-status", name: "status" },
    h("option", { value: "" }, "any status"),
    STATES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));
  const queue = h("input", { id: "f-queue", name: "queue", value: filters.queue, placeholder: "any queue", size: 14 });
  const task = h("input", { id: "f-task", name: "task", value: filters.task, placeholder: "any task", size: 22 });
  const group = h("input", { id: "f-group", name: "group", value: filters.group, placeholder: "any group", size: 14 });
  const error = h("input", { id: "f-error", name: "error", value: filters.error, placeholder: "error contains…", size: 22 });
  const limit = h("select", { id: "f-limit", name: "limit", "aria-label": "Jobs per page" },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === filters.limit }, n + " a page")));
  const apply = () => ctx.navigate(jobsHref({
    status: status.value, queue: queue.value.trim(), task: task.value.trim(), group: group.value.trim(), error: error.value, limit: limit.value === "50" ? "" : limit.value,
  }));
  status.addEventListener("change", apply);
  limit.addEventListener("change", apply);
  return h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); apply(); } },
    h("label", {}, "Status ", status), h("label", {}, "Queue ", queue), h("label", {}, "Task ", task), h("label", {}, "Group ", group), h("label", {}, "Error ", error), limit,
    h("button", { type: "submit", class: "primary" }, "Filter"),
    filters.status || filters.queue || filters.task || filters.group || filters.error ? h("a", { class: "button", href: "#/jobs" }, "Clear") : null);
}

export function pager(filters, total, hrefFor) {
  const first = total === 0 ? 0 : filters.offset + 1;
  const last = Math.min(filters.offset + filters.limit, total);
  const prev = filters.offset > 0 ? Math.max(0, filters.offset - filters.limit) : null;
  const next = last < total ? filters.offset + filters.limit : null;
  return h("nav", { class: "pager", "aria-label": "Pages" },
    h("span", { class: "muted", dataset: { testid: "range" } }, first + "–" + last + " of " + total),
    prev == null ? h("button", { type: "button", disabled: true }, "‹ Newer")
      : h("a", { class: "button", href: hrefFor(prev), rel: "prev" }, "‹ Newer"),
    next == null ? h("button", { type: "button", disabled: true }, "Older ›")
      : h("a", { class: "button", href: hrefFor(next), rel: "next" }, "Older ›"));
}

/** The table of a page of jobs; ``select`` adds checkboxes (failure groups). */
export function jobTable(items, { select } = {}) {
  return h("div", { class: "scroll" }, h("table", { class: "grid jobs" },
    h("thead", {}, h("tr", {},
      select ? h("th", { class: "check" }, select.all) : null,
      ["id", "task", "queue", "status", "attempts", "created", "finished", "error"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, items.map((job) => h("tr", { dataset: { job: job.id } },
      select ? h("td", { class: "check" }, select.box(job)) : null,
      h("td", {}, h("a", { href: "#/jobs/" + encodeURIComponent(job.id), class: "job-link", "aria-label": "Open job " + job.id, title: job.id },
        job.id.slice(0, 8) + "…"), " ", idCell(job.id, true).lastChild),
      h("td", { class: "task" }, job.task),
      h("td", {}, job.queue),
      h("td", {}, badge(job.status)),
      h("td", { class: "n" }, job.attempt + "/" + job.max_attempts),
      h("td", {}, when(job.created_at)),
      h("td", {}, when(job.finished_at)),
      h("td", { class: "error-cell", title: job.error || "" }, job.error || ""))))));
}

export default {
  id: "jobs",
  path: /^\/jobs$/,
  nav: { label: "Jobs", href: "#/jobs", shortcut: "j" },
  title: () => "Jobs",
  load: (params) => api.jobs(filtersOf(params)),
  render(page, ctx) {
    const filters = filtersOf(ctx.params);
    const hrefFor = (offset) => jobsHref({ ...filters, limit: filters.limit === 50 ? "" : filters.limit, offset });
    const filtered = filters.status || filters.queue || filters.task || filters.group || filters.error;
    return h("section", { class: "page" },
      h("h1", {}, "Jobs"),
      filterForm(filters, ctx),
      page.items.length === 0 ? empty(
        filtered ? "No job matches these filters." : "No jobs yet.",
        filtered ? (filters.status ? "Status " + filters.status + ": " + MEANING[filters.status] + ". " : "") + "Clear a filter to see more."
          : "Jobs appear here as soon as they are enqueued (task.enqueue(...) or POST /api/jobs).")
        : [pager(filters, page.total, hrefFor), jobTable(page.items)]);
  },
};
