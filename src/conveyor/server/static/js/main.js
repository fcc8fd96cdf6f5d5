// The shell: navigation, the hash router, live refresh, the API key form, the
// network banner, dialogs and keyboard shortcuts. Pages live in ./pages/, one module
// each; a new page is one module plus one line in PAGES.
import { api, allows, key, AuthError, NetworkError, ApiError } from "./api.js";
import { h } from "./dom.js";
import { localTime } from "./format.js";
import overview from "./pages/overview.js";
import jobs from "./pages/jobs.js";
import job from "./pages/job.js";
import failures from "./pages/failures.js";
import queues from "./pages/queues.js";
import schedules from "./pages/schedules.js";
import workers from "./pages/workers.js";

// A page with ``needs`` (a route such as "GET /api/queues") is shown, and linked, only when
// the server has that route (its OpenAPI document says so): no dead links on older servers.
const PAGES = [overview, jobs, job, failures, queues, schedules, workers];
const REFRESH_MS = 5000;

const main = document.getElementById("main");
const banner = document.getElementById("banner");
const toastBox = document.getElementById("toast");
const live = { paused: sessionStorage.getItem("conveyor-paused") === "1", timer: null, updated: null };
let current = null; // {page, params, state, hash}
let who = null; // the key's {role, actor} (GET /api/key), asked once per key
let routes = null; // the server's routes ("GET /api/queues", ...), read once from /openapi.json
let loading = false;
let rerun = false;

// -- routing -------------------------------------------------------------------------------
function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/overview";
  const [path, search] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(search || "")), hash: "#" + raw };
}

function route() {
  const { path, query, hash } = parseHash();
  for (const page of PAGES) {
    const match = page.path.exec(path);
    if (match) {
      const state = current && current.hash === hash ? current.state : {};
      current = { page, params: { ...query, match: match.slice(1).map(decodeURIComponent) }, state, hash };
      markNav(page);
      document.title = page.title(current.params) + " · Conveyor";
      main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      refresh({ force: true });
      return;
    }
  }
  location.hash = "#/overview";
}

/** Goes to ``hash`` (e.g. "#/jobs?status=failed"). */
export function navigate(hash) {
  if (location.hash === hash) refresh({ force: true });
  else location.hash = hash;
}

// -- refresh ---------------------------------------------------------------------------------
/** True while re-rendering would get in the user's way: typing, a dialog, a text selection. */
function userIsBusy() {
  const active = document.activeElement;
  if (document.querySelector("dialog[open]")) return true;
  if (active && main.contains(active) && (active.matches("textarea, input:not([type=checkbox]):not([type=radio]), select"))) return true;
  const selection = window.getSelection();
  if (selection && !selection.isCollapsed && main.contains(selection.anchorNode)) return true;
  return Boolean(current && current.state.editing);
}

function focusKey(el) {
  if (!el || el === document.body) return null;
  if (el.dataset && el.dataset.key) return "key:" + el.dataset.key;
  if (el.getAttribute("href")) return "href:" + el.getAttribute("href");
  if (el.id) return "id:" + el.id;
  return el.tagName + ":" + el.textContent.trim();
}

function restoreFocus(wanted) {
  if (!wanted) return;
  for (const el of main.querySelectorAll("a, button, input, select, textarea, summary, [tabindex]")) {
    if (focusKey(el) === wanted) { el.focus({ preventScroll: true }); return; }
  }
}

async function refresh({ force = false } = {}) {
  if (!current) return;
  if (loading) { rerun = rerun || force; return; }
  if (!force && (live.paused || userIsBusy())) return;
  const route = current;
  loading = true;
  try {
    if (!routes) { routes = await api.routes(); renderNav(); }
    if (!who) { who = await api.keyInfo(); renderLive(); }
    if (!available(route.page)) { showMissing(route.page); return; }
    const data = await route.page.load(route.params, route.state, (wanted) => routes.has(wanted));
    if (route !== current) return;
    if (!force && userIsBusy()) return;
    hideBanner();
    route.data = data;
    draw(route);
    live.updated = new Date();
    renderLive();
  } catch (error) {
    if (route === current) showError(error);
  } finally {
    loading = false;
    if (rerun) { rerun = false; refresh({ force: true }); }
  }
}

/** Renders the current data again (after a selection or mode change), keeping focus and scroll. */
function draw(route) {
  if (route !== current || route.data === undefined) return;
  const focused = main.contains(document.activeElement) ? focusKey(document.activeElement) : null;
  const scroll = window.scrollY;
  main.replaceChildren(route.page.render(route.data, context(route)));
  restoreFocus(focused);
  window.scrollTo({ top: scroll });
}

function context(route) {
  return {
    params: route.params,
    state: route.state,
    refresh: () => refresh({ force: true }),
    rerender: () => draw(route),
    navigate, confirm, toast,
    /** True when the server has ``route`` ("GET /api/workers"): parts of a page that need it show. */
    has: (wanted) => Boolean(routes) && routes.has(wanted),
    /** True when the key may do what needs ``role`` (read-only keys see no action buttons). */
    can: (role) => Boolean(who) && allows(who.role, role),
    /** Runs an action; API errors become a toast, auth and network errors the usual screens. */
    act: async (action) => {
      try { return await action(); } catch (error) {
        if (error instanceof AuthError || error instanceof NetworkError) showError(error);
        else toast(error.message, true);
        return undefined;
      }
    },
  };
}

function showError(error) {
  if (error instanceof AuthError) return askForKey(key.get() ? error.message : null);
  if (error instanceof NetworkError) {
    const since = live.updated ? " The page shows data from " + localTime(live.updated.toISOString()) + "." : "";
    showBanner("The server cannot be reached: " + error.message + "." + since + " Retrying every " + REFRESH_MS / 1000 + " s.");
    return;
  }
  if (error instanceof ApiError && error.code === "forbidden") {
    main.replaceChildren(h("section", { class: "panel" }, h("h1", {}, "This server refuses the dashboard"),
      h("p", { class: "error-text" }, error.message)));
    return;
  }
  main.replaceChildren(h("section", { class: "panel" },
    h("h1", {}, error instanceof ApiError ? "The server said no" : "Something went wrong"),
    h("p", { class: "error-text" }, (error.code ? error.code + ": " : "") + error.message),
    h("p", {}, h("a", { href: "#/overview" }, "Back to the overview"))));
}

function available(page) {
  return !page.needs || (routes !== null && routes.has(page.needs));
}

function showMissing(page) {
  main.replaceChildren(h("section", { class: "panel" }, h("h1", {}, page.title({}) + " are not on this server"),
    h("p", {}, "This server's API has no " + page.needs + " (see /openapi.json); it is an older or smaller build."),
    h("p", {}, h("a", { href: "#/overview" }, "Back to the overview"))));
}

function showBanner(text) { banner.textContent = text; banner.hidden = false; }
function hideBanner() { banner.hidden = true; banner.textContent = ""; }

// -- the API key -----------------------------------------------------------------------------
function askForKey(rejection) {
  key.clear();
  who = null;
  renderLive();
  const input = h("input", { id: "api-key", type: "password", name: "api-key", autocomplete: "off", required: true,
    spellcheck: "false", "aria-describedby": "api-key-help" });
  const form = h("form", { class: "panel keyform", onsubmit: (event) => {
    event.preventDefault();
    key.set(input.value.trim());
    who = null;
    refresh({ force: true });
  } },
  h("h1", {}, "Enter an API key"),
  rejection ? h("p", { class: "error-text", role: "alert" }, "The server did not accept that key: " + rejection) : null,
  h("label", { for: "api-key" }, "API key"),
  h("div", { class: "row" }, input, h("button", { type: "submit", class: "primary" }, "Use key")),
  h("p", { id: "api-key-help", class: "muted" },
    "One of the keys in CONVEYOR_API_KEYS or --api-key-file. It is kept for this browser tab only (sessionStorage) and sent as the x-api-key header."));
  main.replaceChildren(form);
  input.focus();
}

// -- live status in the header ---------------------------------------------------------------
function renderLive() {
  const box = document.getElementById("live");
  const toggle = h("button", { type: "button", "aria-pressed": String(live.paused), dataset: { key: "live-toggle" },
    title: "Live updates every " + REFRESH_MS / 1000 + " s (shortcut p)",
    onclick: () => { setPaused(!live.paused); } }, live.paused ? "Resume live" : "Pause live");
  box.replaceChildren(
    h("span", { class: "muted updated" }, live.paused ? "Paused" : live.updated ? "Updated " + localTime(live.updated.toISOString()) : ""),
    toggle,
    who ? h("span", { class: "key-role", dataset: { testid: "key-role" },
      title: who.role === "read" ? "This key can look but not act" : "This key's role and the name the action trail gives it" },
    who.role + " key · " + who.actor) : null,
    key.get() ? h("button", { type: "button", onclick: () => { key.clear(); location.reload(); } }, "Forget key") : null,
    h("button", { type: "button", title: "Keyboard shortcuts", "aria-label": "Keyboard shortcuts", onclick: showHelp }, "?"));
}

function setPaused(paused) {
  live.paused = paused;
  sessionStorage.setItem("conveyor-paused", paused ? "1" : "0");
  renderLive();
  if (!paused) refresh();
}

// -- dialogs and toasts ------------------------------------------------------------------------
/** Asks before doing something; resolves true on confirm. */
export function confirm(title, detail, { action = "Confirm", danger = false } = {}) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "confirm-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "confirm-title" }, title),
        detail ? h("p", {}, detail) : null,
        h("div", { class: "row end" },
          h("button", { value: "cancel", type: "submit" }, "Cancel"),
          h("button", { value: "confirm", type: "submit", class: danger ? "danger" : "primary" }, action))));
    dialog.addEventListener("close", () => { resolve(dialog.returnValue === "confirm"); dialog.remove(); });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector("button[value=cancel]").focus();
  });
}

export function toast(text, isError = false) {
  toastBox.textContent = text;
  toastBox.className = "toast show" + (isError ? " error" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { toastBox.className = "toast"; }, 6000);
}

const SHORTCUTS = [
  ["r", "Refresh now"], ["p", "Pause or resume live updates"], ["?", "This help"], ["Esc", "Close a dialog"],
];

function shortcuts() {
  return [...PAGES.filter((p) => p.nav && available(p)).map((p) => ["g " + p.nav.shortcut, p.nav.label]), ...SHORTCUTS];
}

function showHelp() {
  if (document.querySelector("dialog[open]")) return;
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "help-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "help-title" }, "Keyboard shortcuts"),
      h("table", { class: "shortcuts" }, h("tbody", {}, shortcuts().map(([keys, what]) =>
        h("tr", {}, h("td", {}, keys.split(" ").map((k) => h("kbd", {}, k))), h("td", {}, what))))),
      h("p", { class: "muted" }, "Every action is also reachable with Tab and Enter."),
      h("div", { class: "row end" }, h("button", { type: "submit", class: "primary" }, "Close"))));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

let pendingG = false;
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest && event.target.closest("input, textarea, select, dialog")) return;
  if (pendingG) {
    pendingG = false;
    const page = PAGES.find((p) => p.nav && p.nav.shortcut === event.key && available(p));
    if (page) { event.preventDefault(); navigate(page.nav.href); }
    return;
  }
  if (event.key === "g") { pendingG = true; setTimeout(() => { pendingG = false; }, 1500); }
  else if (event.key === "?") { event.preventDefault(); showHelp(); }
  else if (event.key === "r") refresh({ force: true });
  else if (event.key === "p") setPaused(!live.paused);
});

// -- start -------------------------------------------------------------------------------------
function markNav(page) {
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === page.id || (page.parent && link.dataset.page === page.parent)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function renderNav() {
  document.getElementById("nav").replaceChildren(...PAGES.filter((p) => p.nav && available(p)).map((p) =>
    h("a", { href: p.nav.href, dataset: { page: p.id }, title: p.nav.label + " (g " + p.nav.shortcut + ")" }, p.nav.label)));
  if (current) markNav(current.page);
}

renderNav();
window.addEventListener("hashchange", route);
renderLive();
route();
live.timer = setInterval(() => refresh(), REFRESH_MS);
