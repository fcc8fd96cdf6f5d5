// The failure table: failed jobs grouped by error signature (exception type and the
// message with its values folded). Select rows, or every row of a page, then resubmit
// or delete them; the dialog says how many first.
import { api, forEachJob } from "../api.js";
import { h, empty } from "../dom.js";
import { errorSignature, when } from "../format.js";
import { jobTable, pager } from "./jobs.js";

// Failed jobs fetched for grouping (the API's largest page).
const FETCH = 500;
const GROUP_PAGE = 25;

function groupsOf(items) {
  const groups = new Map();
  for (const job of items) {
    const signature = errorSignature(job.error);
    let group = groups.get(signature.key);
    if (!group) {
      group = { ...signature, jobs: [], tasks: new Set(), last: null };
      groups.set(signature.key, group);
    }
    group.jobs.push(job);
    group.tasks.add(job.task);
    if (job.finished_at && (!group.last || job.finished_at > group.last)) group.last = job.finished_at;
  }
  return [...groups.values()].sort((a, b) => b.jobs.length - a.jobs.length || a.key.localeCompare(b.key));
}

async function bulk(verb, ids, group, ctx) {
  const n = ids.length;
  const noun = n === 1 ? "1 failed job" : n + " failed jobs";
  const sure = await ctx.confirm(
    (verb === "resubmit" ? "Resubmit " : "Delete ") + noun + "?",
    (verb === "resubmit" ? "They go back to pending with a fresh attempt budget. " : "They and their attempt records are removed for good. ")
      + "Error group: " + group.key,
    { action: (verb === "resubmit" ? "Resubmit " : "Delete ") + noun, danger: verb === "delete" });
  if (!sure) return;
  const outcome = await ctx.act(() => forEachJob(ids, verb === "resubmit" ? (id) => api.retry(id) : (id) => api.remove(id)));
  if (!outcome) return;
  for (const id of ids) ctx.state.selected.delete(id);
  const done = (verb === "resubmit" ? "Resubmitted " : "Deleted ") + outcome.done + " of " + n + " job(s).";
  ctx.toast(outcome.failed.length ? done + " " + outcome.failed.length + " could not be: " + outcome.failed[0].message : done,
    outcome.failed.length > 0);
  ctx.refresh();
}

/** The longest text every error of the group starts with: what "all matching" filters on. */
function commonPrefix(texts) {
  let prefix = texts[0] || "";
  for (const text of texts) {
    let i = 0;
    while (i < prefix.length && i < text.length && prefix[i] === text[i]) i += 1;
    prefix = prefix.slice(0, i);
  }
  return prefix.slice(0, 1000);
}

/** The server-side filter for "all matching" a group: failed, its task if one, its errors' shared text. */
function groupFilter(group) {
  const filter = { status: "failed", error: commonPrefix(group.jobs.map((j) => j.error || "")) };
  if (group.tasks.size === 1) filter.task = [...group.tasks][0];
  return filter;
}

/** Everything matching the group on the server (not only the jobs on screen): count, confirm, act. */
async function bulkMatching(verb, group, ctx) {
  const filter = groupFilter(group);
  const call = verb === "resubmit" ? api.retryMatching : api.deleteMatching;
  const dry = await ctx.act(() => call(filter, true));
  if (!dry) return;
  if (dry.matched === 0) { ctx.toast("No failed job matches this group any more."); ctx.refresh(); return; }
  const noun = dry.matched === 1 ? "1 failed job" : dry.matched + " failed jobs";
  const Verb = verb === "resubmit" ? "Resubmit " : "Delete ";
  const sure = await ctx.confirm(Verb + "all " + noun + " matching?",
    "Every failed job" + (filter.task ? " of task " + filter.task : "") + " whose error contains “" + filter.error + "”. "
      + (verb === "resubmit" ? "They go back to pending with a fresh attempt budget." : "They and their attempt records are removed for good."),
    { action: Verb + noun, danger: verb === "delete" });
  if (!sure) return;
  const done = await ctx.act(() => call(filter, false));
  if (!done) return;
  const count = verb === "resubmit" ? done.resubmitted : done.deleted;
  ctx.state.selected.clear();
  ctx.toast((verb === "resubmit" ? "Resubmitted " : "Deleted ") + count + " job(s) matching this error.");
  ctx.refresh();
}

function groupView(group, index, ctx) {
  const key = "group-" + group.key;
  const offset = Math.min(ctx.state.offsets.get(group.key) || 0, Math.max(0, group.jobs.length - 1));
  const pageJobs = group.jobs.slice(offset, offset + GROUP_PAGE);
  const selectedHere = group.jobs.filter((j) => ctx.state.selected.has(j.id)).map((j) => j.id);
  const all = h("input", { type: "checkbox", "aria-label": "Select every job on this page", dataset: { key: key + "-all" },
    checked: pageJobs.length > 0 && pageJobs.every((j) => ctx.state.selected.has(j.id)) });
  all.addEventListener("change", () => {
    for (const j of pageJobs) { if (all.checked) ctx.state.selected.add(j.id); else ctx.state.selected.delete(j.id); }
    ctx.rerender();
  });
  const box = (job) => {
    const input = h("input", { type: "checkbox", "aria-label": "Select job " + job.id, dataset: { key: "select-" + job.id },
      checked: ctx.state.selected.has(job.id) });
    input.addEventListener("change", () => {
      if (input.checked) ctx.state.selected.add(job.id); else ctx.state.selected.delete(job.id);
      ctx.rerender();
    });
    return input;
  };
  const details = h("details", { class: "group panel", open: ctx.state.open.has(group.key), dataset: { key, group: String(index) } },
    h("summary", {},
      h("span", { class: "count", dataset: { testid: "group-count" } }, String(group.jobs.length)),
      h("span", { class: "signature" }, h("strong", {}, group.type), group.message ? ": " + group.message : ""),
      h("span", { class: "muted group-meta" }, [...group.tasks].sort().join(", "), group.last ? [" · last ", when(group.last)] : null)),
    ctx.can("write") ? h("div", { class: "row actions" },
      h("span", { class: "muted", dataset: { testid: "selected-count" } }, selectedHere.length + " selected"),
      h("button", { type: "button", class: "primary", disabled: selectedHere.length === 0, dataset: { key: key + "-resubmit" },
        onclick: () => bulk("resubmit", selectedHere, group, ctx) }, "Resubmit selected (" + selectedHere.length + ")"),
      ctx.can("admin") ? h("button", { type: "button", class: "danger", disabled: selectedHere.length === 0, dataset: { key: key + "-delete" },
        onclick: () => bulk("delete", selectedHere, group, ctx) }, "Delete selected (" + selectedHere.length + ")") : null,
      h("button", { type: "button", dataset: { key: key + "-resubmit-all" },
        onclick: () => bulkMatching("resubmit", group, ctx) }, "Resubmit all matching…"),
      ctx.can("admin") ? h("button", { type: "button", class: "danger", dataset: { key: key + "-delete-all" },
        onclick: () => bulkMatching("delete", group, ctx) }, "Delete all matching…") : null) : null,
    group.jobs.length > GROUP_PAGE ? pagerFor(group, offset, ctx) : null,
    jobTable(pageJobs, ctx.can("write") ? { select: { all, box } } : {}));
  details.addEventListener("toggle", () => {
    if (details.open) ctx.state.open.add(group.key); else ctx.state.open.delete(group.key);
  });
  return details;
}

function pagerFor(group, offset, ctx) {
  const nav = pager({ offset, limit: GROUP_PAGE }, group.jobs.length, (o) => "#group-page-" + o);
  // In-page paging: links would change the route, so they set this group's offset instead.
  for (const link of nav.querySelectorAll("a")) {
    const to = Number(link.getAttribute("href").replace("#group-page-", ""));
    link.addEventListener("click", (event) => { event.preventDefault(); ctx.state.offsets.set(group.key, to); ctx.rerender(); });
  }
  return nav;
}

export default {
  id: "failures",
  path: /^\/failures$/,
  nav: { label: "Failures", href: "#/failures", shortcut: "f" },
  title: () => "Failures",
  load: () => api.jobs({ status: "failed", limit: FETCH }),
  render(page, ctx) {
    ctx.state.selected ||= new Set();
    ctx.state.open ||= new Set();
    ctx.state.offsets ||= new Map();
    const live = new Set(page.items.map((j) => j.id));
    for (const id of ctx.state.selected) if (!live.has(id)) ctx.state.selected.delete(id);
    const groups = groupsOf(page.items);
    if (groups.length === 1 && !ctx.state.autoOpened) ctx.state.open.add(groups[0].key);
    ctx.state.autoOpened = true;
    return h("section", { class: "page" },
      h("h1", {}, "Failures"),
      page.total === 0 ? empty("No failed jobs.",
        "Jobs land here when their attempts are spent or they raise conveyor.Permanent.") : [
        h("p", { class: "muted", dataset: { testid: "failure-summary" } },
          page.total + " failed job(s) in " + groups.length + " error group(s)"
          + (page.total > page.items.length ? "; grouping the newest " + page.items.length : "") + "."),
        groups.map((g, i) => groupView(g, i, ctx))]);
  },
};
