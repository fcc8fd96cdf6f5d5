// Schedules and failure alerts: each schedule's task, timing and zone, its next tick (local
// time, and the wall clock of its own zone), its last run with a link to that job; admin keys
// pause, resume and run one now. Below, the failure alerts with the host they post to.
import { api } from "../api.js";
import { h, empty } from "../dom.js";
import { when, duration } from "../format.js";

const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** "02:00 Europe/Berlin" (the date too when it is not today there): the tick on its own zone's clock. */
function inZone(iso, zone) {
  try {
    const date = new Date(iso);
    const sameDay = new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(date)
      === new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(new Date());
    const format = new Intl.DateTimeFormat(undefined, {
      timeZone: zone, hour: "2-digit", minute: "2-digit", ...(sameDay ? {} : { month: "short", day: "numeric" }),
    });
    return format.format(date) + " " + zone;
  } catch {
    return zone; // a zone this browser does not know: the local time above still stands
  }
}

function timing(schedule) {
  if (schedule.cron) return h("code", { class: "cron", title: "cron, evaluated in " + schedule.tz }, schedule.cron);
  return h("span", { title: "every " + schedule.every + " seconds, on whole multiples since the epoch" }, "every " + duration(schedule.every));
}

function nextRun(schedule) {
  if (schedule.paused) return h("span", { class: "muted" }, "paused: from its next tick once resumed");
  // A cron ticks on its own zone's wall clock: say when that is there too, unless it is ours.
  return [when(schedule.next_run_at), schedule.cron && schedule.tz !== BROWSER_ZONE
    ? h("div", { class: "muted zone-time", dataset: { testid: "zone-time" } }, inZone(schedule.next_run_at, schedule.tz)) : null];
}

function jobLink(id, label) {
  return h("a", { href: "#/jobs/" + encodeURIComponent(id), title: id, class: "job-link", "aria-label": label + " " + id },
    h("code", {}, id.slice(0, 8) + "…"));
}

function lastRun(schedule, ctx) {
  const ran = ctx.state.ran.get(schedule.name);
  return [
    schedule.last_run_at ? when(schedule.last_run_at) : h("span", { class: "muted" }, "not yet"),
    schedule.last_job_id ? h("div", {}, "job ", jobLink(schedule.last_job_id, "Last job of " + schedule.name)) : null,
    ran && ran !== schedule.last_job_id ? h("div", { dataset: { testid: "ran-now" } }, "run now: ", jobLink(ran, "Job run now of " + schedule.name)) : null,
  ];
}

function actions(schedule, ctx) {
  if (!ctx.can("admin")) return null;
  const toggle = schedule.paused
    ? h("button", { type: "button", class: "primary", dataset: { key: "toggle-" + schedule.name }, onclick: async () => {
      const done = await ctx.act(() => api.resumeSchedule(schedule.name));
      if (done) { ctx.toast("Resumed " + schedule.name + ": it runs from its next tick."); ctx.refresh(); }
    } }, "Resume")
    : h("button", { type: "button", dataset: { key: "toggle-" + schedule.name }, onclick: async () => {
      const done = await ctx.act(() => api.pauseSchedule(schedule.name));
      if (done) { ctx.toast("Paused " + schedule.name + ": no tick enqueues a job until it is resumed."); ctx.refresh(); }
    } }, "Pause");
  const run = h("button", { type: "button", dataset: { key: "run-" + schedule.name }, title: "Enqueue its job now, besides its ticks",
    onclick: async () => {
      const job = await ctx.act(() => api.runSchedule(schedule.name));
      if (!job) return;
      ctx.state.ran.set(schedule.name, job.id);
      ctx.toast("Enqueued " + schedule.task + " now (job " + job.id.slice(0, 8) + "…); its next tick is unchanged.");
      ctx.refresh();
    } }, "Run now");
  return h("div", { class: "row", role: "group", "aria-label": "Actions on " + schedule.name }, toggle, run);
}

function scheduleTable(items, ctx) {
  const admin = ctx.can("admin");
  return h("div", { class: "scroll" }, h("table", { class: "grid schedules", id: "schedules" },
    h("thead", {}, h("tr", {}, ["name", "task", "timing", "zone", "next run", "last run"].map((c) => h("th", { scope: "col" }, c)),
      admin ? h("th", { scope: "col" }, "actions") : null)),
    h("tbody", {}, items.map((s) => h("tr", { dataset: { schedule: s.name } },
      h("th", { scope: "row" }, s.name, s.paused ? [" ", h("span", { class: "badge flag paused" }, "paused")] : null),
      h("td", { class: "task" }, s.task, s.queue ? h("div", { class: "muted" }, "on " + s.queue) : null),
      h("td", {}, timing(s)),
      h("td", {}, s.tz),
      h("td", { dataset: { testid: "next-run" } }, nextRun(s)),
      h("td", { dataset: { testid: "last-run" } }, lastRun(s, ctx)),
      admin ? h("td", {}, actions(s, ctx)) : null)))));
}

/** The host an alert posts to; the rest of the URL (a path with a token, say) stays off screen. */
function host(url) {
  try { return new URL(url).host; } catch { return "?"; }
}

function alertTable(items) {
  return h("div", { class: "scroll" }, h("table", { class: "grid alerts", id: "alerts" },
    h("thead", {}, h("tr", {}, ["name", "fires when", "queue", "posts to", "last fired"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, items.map((a) => h("tr", { dataset: { alert: a.name } },
      h("th", { scope: "row" }, a.name),
      h("td", {}, a.threshold + " job(s) fail within " + a.window),
      h("td", {}, a.queue || h("span", { class: "muted" }, "any queue")),
      h("td", {}, h("code", { title: "Only the host is shown: the URL's path may carry a secret" }, host(a.url))),
      h("td", {}, a.last_fired_at ? when(a.last_fired_at) : h("span", { class: "muted" }, "never")))))));
}

export default {
  id: "schedules",
  path: /^\/schedules$/,
  nav: { label: "Schedules", href: "#/schedules", shortcut: "s" },
  needs: "GET /api/schedules",
  title: () => "Schedules",
  load: async (params, state, has) => {
    const [schedules, alerts] = await Promise.all([api.schedules(), has("GET /api/alerts") ? api.alerts() : null]);
    return { schedules: schedules.items, alerts: alerts ? alerts.items : null };
  },
  render({ schedules, alerts }, ctx) {
    ctx.state.ran ||= new Map();
    return h("section", { class: "page" },
      h("h1", {}, "Schedules"),
      schedules.length === 0 ? empty("No schedules.",
        "Declare one with @app.periodic(cron=...) or app.schedule(...), or `conveyor schedules add`; workers run them.")
        : scheduleTable(schedules, ctx),
      alerts === null ? null : [
        h("h2", { class: "section-title" }, "Failure alerts"),
        alerts.length === 0 ? empty("No failure alerts.",
          "app.alert(name, url=..., threshold=10, window=\"5m\") posts a signed message when that many jobs fail within the window.")
          : alertTable(alerts)]);
  },
};
