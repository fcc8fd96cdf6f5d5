// Building DOM nodes. Text always goes in as text nodes (never innerHTML), so payloads
// such as "<script>" in an error or an argument render as the characters they are.

/**
 * h("a", {href: "#/jobs", class: "x", onclick: fn, dataset: {key: "k"}}, "text", node, [more])
 * Attributes whose value is null, undefined or false are left out.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** A <pre> of JSON (or text), escaped by construction. */
export function pre(value, className) {
  const compact = JSON.stringify(value);
  const text = typeof value === "string" ? value : compact.length <= 80 ? compact : JSON.stringify(value, null, 2);
  return h("pre", { class: className || "code" }, text);
}

/** A button that copies ``text`` and says so. */
export function copyButton(text, label) {
  const button = h("button", {
    type: "button",
    class: "copy",
    title: "Copy " + (label || text),
    "aria-label": "Copy " + (label || "id"),
    dataset: { key: "copy-" + text },
  }, "Copy");
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    event.stopPropagation();
    await copyText(text);
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  return button;
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try { await navigator.clipboard.writeText(text); return; } catch { /* fall back below */ }
  }
  // Plain-http pages have no clipboard API: copy through a selected, off-screen field.
  const field = h("textarea", { class: "offscreen", readonly: true });
  field.value = text;
  document.body.append(field);
  field.select();
  document.execCommand("copy");
  field.remove();
}

/** An id in monospace with a copy button; ``short`` shows the first 8 characters. */
export function idCell(id, short) {
  return h("span", { class: "id" },
    h("code", { title: id }, short ? id.slice(0, 8) + "…" : id), " ", copyButton(id, "job id " + id));
}

/** The badge of a job status word. */
export function badge(status) {
  return h("span", { class: "badge s-" + status }, status);
}

/** A message for an empty list: what it means and what to do. */
export function empty(title, hint) {
  return h("div", { class: "empty" }, h("p", { class: "empty-title" }, title), hint ? h("p", {}, hint) : null);
}

/** A bar of ``fraction`` (0 to 1) with its text beside it; ``null`` fraction: no bar, text only. */
export function meter(fraction, text, label) {
  if (fraction == null || Number.isNaN(fraction)) return h("span", { class: "meter-text" }, text);
  const percent = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  const fill = h("span", { class: "meter-fill" });
  fill.style.width = percent + "%"; // through the CSSOM: the page's CSP refuses style attributes
  return h("span", { class: "meter-line" },
    h("span", { class: "meter" + (percent >= 100 ? " full" : ""), role: "progressbar", "aria-label": label,
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(percent), "aria-valuetext": text }, fill),
    h("span", { class: "meter-text" }, text));
}
