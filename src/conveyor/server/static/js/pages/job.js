// One job: its arguments, result, error and every attempt; retry, cancel, delete, and
// edit the arguments then resubmit (the original arguments stay on screen beside the edit).
import { api } from "../api.js";
import { h, pre, idCell, badge, meter, copyButton } from "../dom.js";
import { when, elapsed } from "../format.js";
import { ACTIONS, MEANING, jobsHref } from "../states.js";

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value == null || value === "" ? h("span", { class: "muted" }, "—") : value)];
}

// The arguments an attempt ran with (they stay in its record when a resubmit edits them).
function ranWith(attempt) {
  if (attempt.args == null && attempt.kwargs == null) return null;
  return h("code", { class: "ran-with" }, JSON.stringify({ args: attempt.args, kwargs: attempt.kwargs }));
}

// Fields a job carries only with some features (flow control, schedules, observability):
// a fact when the job JSON has a value, nothing at all otherwise.
function present(value) {
  return value !== undefined && value !== null && value !== "";
}

function extraFacts(job) {
  return [
    present(job.group) ? fact("group", h("a", { href: jobsHref({ queue: job.queue, group: job.group }), dataset: { testid: "group" },
      title: "Jobs of this group in " + job.queue }, job.group)) : null,
    present(job.schedule) ? fact("schedule", h("a", { href: "#/schedules", dataset: { testid: "schedule" } }, job.schedule)) : null,
    present(job.scheduled_for) ? fact("scheduled for", when(job.scheduled_for)) : null,
    present(job.trace_id) ? fact("trace id", h("span", { class: "id", dataset: { testid: "trace-id" } },
      h("code", {}, job.trace_id), " ", copyButton(job.trace_id, "trace id " + job.trace_id))) : null,
  ];
}

/** The task's last progress report: a bar when it gave a fraction, its message, and when. */
function progressView(progress) {
  if (!present(progress)) return null;
  const fraction = typeof progress.fraction === "number" ? progress.fraction : null;
  const text = fraction === null ? "no fraction reported" : Math.round(fraction * 100) + " %";
  return section("Progress", h("div", { class: "progress", dataset: { testid: "progress" } },
    meter(fraction, text, "Progress"),
    present(progress.message) ? h("p", { class: "progress-message" }, progress.message) : null,
    present(progress.updated_at) ? h("p", { class: "muted" }, "reported ", when(progress.updated_at)) : null));
}

function section(title, ...body) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...body);
}

function attemptView(attempt, ctx) {
  const key = "attempt-" + attempt.attempt + "-" + attempt.started_at;
  const details = h("details", { class: "attempt", open: ctx.state.open.has(key), dataset: { key } },
    h("summary", {},
      h("strong", {}, "Attempt " + attempt.attempt), " ", badge(attempt.outcome || "running"), " ",
      when(attempt.started_at), attempt.finished_at ? " · took " + elapsed(attempt.started_at, attempt.finished_at) : "",
      attempt.status_code != null ? h("span", { class: "http" }, " · HTTP " + attempt.status_code) : null),
    h("dl", { class: "facts" },
      fact("worker", attempt.worker), fact("started", when(attempt.started_at)), fact("finished", when(attempt.finished_at)),
      fact("ran with", ranWith(attempt)),
      present(attempt.trace_id) ? fact("trace id", h("code", {}, attempt.trace_id)) : null,
      attempt.status_code != null ? fact("HTTP status", String(attempt.status_code)) : null),
    attempt.error ? [h("h3", {}, "Error"), pre(attempt.error, "code error-text")] : null,
    attempt.response_excerpt ? [h("h3", {}, "Response excerpt"), pre(attempt.response_excerpt)] : null,
    attempt.traceback ? [h("h3", {}, "Traceback"), pre(attempt.traceback, "code traceback")] : null);
  details.addEventListener("toggle", () => {
    if (details.open) ctx.state.open.add(key); else ctx.state.open.delete(key);
  });
  return details;
}

function editor(job, ctx) {
  const args = h("textarea", { id: "edit-args", rows: 6, spellcheck: "false" });
  args.value = JSON.stringify(job.args, null, 2);
  const kwargs = h("textarea", { id: "edit-kwargs", rows: 6, spellcheck: "false" });
  kwargs.value = JSON.stringify(job.kwargs, null, 2);
  const problem = h("p", { class: "error-text", role: "alert", id: "edit-problem" });
  const stop = () => { ctx.state.editing = false; ctx.refresh(); };
  const form = h("form", { class: "panel editor", "aria-labelledby": "edit-title", onsubmit: async (event) => {
    event.preventDefault();
    let edits;
    try {
      edits = { args: JSON.parse(args.value), kwargs: JSON.parse(kwargs.value) };
    } catch (error) {
      problem.textContent = "That is not valid JSON: " + error.message;
      return;
    }
    if (!Array.isArray(edits.args)) { problem.textContent = "args must be a JSON array, like [1, \"two\"]."; return; }
    if (edits.kwargs === null || typeof edits.kwargs !== "object" || Array.isArray(edits.kwargs)) {
      problem.textContent = "kwargs must be a JSON object, like {\"to\": \"a@example.com\"}.";
      return;
    }
    const done = await ctx.act(() => api.retry(job.id, edits));
    if (done) { ctx.toast("Resubmitted with the edited arguments: now " + done.status + "."); stop(); }
  } },
  h("h2", { id: "edit-title" }, "Edit arguments and resubmit"),
  h("div", { class: "two" },
    h("div", {}, h("h3", {}, "Original"), h("h4", {}, "args"), pre(job.args), h("h4", {}, "kwargs"), pre(job.kwargs)),
    h("div", {}, h("h3", {}, "New"), h("label", { for: "edit-args" }, "args (JSON array)"), args,
      h("label", { for: "edit-kwargs" }, "kwargs (JSON object)"), kwargs)),
  problem,
  h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, "Resubmit with these arguments"),
    h("button", { type: "button", onclick: stop }, "Cancel")));
  setTimeout(() => { if (!form.contains(document.activeElement)) args.focus(); });
  return form;
}

// How the trail's action words read on a job's page.
const DONE = {
  resubmit: "resubmitted", resubmit_many: "resubmitted with others", cancel: "cancelled",
  delete: "deleted", delete_many: "deleted with others", purge: "purged", process: "processed",
  schedule_run: "enqueued by running its schedule",
};

function historyView(records) {
  if (!records.length) {
    return h("p", { class: "muted" }, "No operator action yet: retries, cancels and deletes are recorded here with who did them.");
  }
  return h("ol", { class: "history" }, records.map((r) => {
    const previous = r.detail && r.detail.previous;
    const filter = r.detail && r.detail.filter;
    return h("li", { dataset: { testid: "history-item" } },
      h("span", { class: "history-line" }, (DONE[r.action] || r.action) + (r.detail && r.detail.edited ? " with edited arguments" : "") + " by ",
        h("strong", {}, r.actor), " · ", when(r.at)),
      r.count > 1 ? h("span", { class: "muted" }, " (" + r.count + " jobs)") : null,
      filter ? h("div", { class: "muted" }, "filter: " + Object.entries(filter).map(([k, v]) => k + "=" + JSON.stringify(v)).join(", ")) : null,
      previous ? h("details", {}, h("summary", {}, "Arguments before the edit"),
        h("h4", {}, "args"), pre(previous.args), h("h4", {}, "kwargs"), pre(previous.kwargs)) : null);
  }));
}

function actions(job, ctx) {
  const run = (label, work, message) => ctx.act(async () => {
    const result = await work();
    if (result) { ctx.toast(message); ctx.refresh(); }
  });
  const buttons = [];
  if (!ctx.can("write")) {
    return h("p", { class: "muted", dataset: { testid: "read-only" } }, "This key is read-only: it can look but not act.");
  }
  if (ACTIONS.retry(job.status)) {
    buttons.push(h("button", { type: "button", class: "primary", onclick: () => run("retry", () => api.retry(job.id), "Resubmitted: the job is pending again.") }, "Retry"));
    buttons.push(h("button", { type: "button", onclick: () => { ctx.state.editing = true; ctx.rerender(); } }, "Edit arguments and resubmit"));
  }
  if (ACTIONS.cancel(job.status)) {
    buttons.push(h("button", { type: "button", onclick: () => run("cancel", () => api.cancel(job.id),
      job.status === "processing" ? "Asked the worker to stop the job." : "Cancelled.") }, "Cancel job"));
  }
  if (ACTIONS.remove(job.status) && ctx.can("admin")) {
    buttons.push(h("button", { type: "button", class: "danger", onclick: async () => {
      const sure = await ctx.confirm("Delete this job?", "Job " + job.id + " (" + job.task + ") and its attempt records are removed for good.", { action: "Delete 1 job", danger: true });
      if (!sure) return;
      const done = await ctx.act(() => api.remove(job.id));
      if (done) { ctx.toast("Deleted job " + job.id + "."); ctx.navigate(jobsHref({ status: job.status })); }
    } }, "Delete"));
  }
  return h("div", { class: "row actions", role: "group", "aria-label": "Actions" }, buttons);
}

export default {
  id: "job",
  parent: "jobs",
  path: /^\/jobs\/([^/]+)$/,
  nav: null,
  title: (params) => "Job " + params.match[0].slice(0, 8),
  load: async (params) => {
    const [job, trail] = await Promise.all([api.job(params.match[0]), api.actions(params.match[0])]);
    return { job, history: trail.items };
  },
  render({ job, history }, ctx) {
    ctx.state.open ||= new Set();
    const attempts = [...(job.attempts || [])].sort((a, b) => b.attempt - a.attempt);
    return h("article", { class: "page job" },
      h("p", { class: "crumbs" }, h("a", { href: jobsHref({ status: job.status }) }, "← " + job.status + " jobs")),
      h("h1", {}, h("span", { class: "task" }, job.task), " ", badge(job.status)),
      h("p", { class: "muted" }, MEANING[job.status] || ""),
      actions(job, ctx),
      ctx.state.editing && ctx.can("write") ? editor(job, ctx) : null,
      h("div", { class: "two" },
        section("Details", h("dl", { class: "facts" },
          fact("id", idCell(job.id)), fact("queue", h("a", { href: jobsHref({ queue: job.queue }) }, job.queue)),
          fact("attempts", job.prior_attempts
            ? job.attempt + " of " + (job.prior_attempts + job.max_attempts) + " (" + job.prior_attempts + " before the resubmit)"
            : job.attempt + " of " + job.max_attempts), fact("priority", String(job.priority)),
          fact("created", when(job.created_at)), fact("run at", when(job.run_at)),
          fact("started", when(job.started_at)), fact("finished", when(job.finished_at)),
          fact("worker", job.worker), fact("key", job.key),
          extraFacts(job),
          job.cancel_requested ? fact("cancel", "requested") : null,
          job.on_complete ? fact("on complete", job.on_complete) : null)),
        section("Arguments", h("h3", {}, "args"), pre(job.args), h("h3", {}, "kwargs"), pre(job.kwargs))),
      progressView(job.progress),
      job.result != null ? section("Result", pre(job.result)) : null,
      job.error ? section("Error", pre(job.error, "code error-text")) : null,
      job.traceback ? section("Traceback", pre(job.traceback, "code traceback")) : null,
      section("History (" + history.length + ")", historyView(history)),
      section("Attempts (" + attempts.length + ")", attempts.length ? attempts.map((a) => attemptView(a, ctx))
        : h("p", { class: "muted" }, "No attempt yet: the job has not been picked up by a worker.")));
  },
};
