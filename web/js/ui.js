// Small building blocks of the UI: elements (never innerHTML with data), forms whose
// errors land next to the field the server names, tables, notices and dialogs.

/** Creates an element: h("a", {href: "#/"}, "text", child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "value") {
      el.value = value;
    } else if (key === "checked") {
      el.checked = !!value;
    } else {
      el.setAttribute(key, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the content of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// --- formatting ------------------------------------------------------------------

export function amps(value) {
  if (value === undefined || value === null) return "–";
  return `${Number(value).toFixed(1)} A`;
}

/** A per-phase triple: "16.0 / 16.0 / 16.0 A", or one value when all are equal. */
export function perPhase(values) {
  if (!Array.isArray(values) || values.every((v) => v === null || v === undefined)) return "–";
  const shown = values.map((v) => (v === null || v === undefined ? "–" : Number(v).toFixed(1)));
  if (shown.every((v) => v === shown[0])) return `${shown[0]} A`;
  return `${shown.join(" / ")} A`;
}

export function maxOf(values) {
  if (!Array.isArray(values)) return 0;
  return values.reduce((m, v) => Math.max(m, Number(v) || 0), 0);
}

export function kwh(wh) {
  if (wh === undefined || wh === null) return "–";
  return `${(Number(wh) / 1000).toFixed(2)} kWh`;
}

export function when(text) {
  if (!text) return "–";
  const d = new Date(text);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

// --- notices ------------------------------------------------------------------------

/** A short message at the top of the page; errors stay until dismissed. */
export function notify(message, kind = "ok") {
  const area = document.getElementById("notices");
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss" }, "×");
  const note = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", {}, message), close);
  close.addEventListener("click", () => note.remove());
  area.append(note);
  if (kind !== "error") setTimeout(() => note.remove(), 4000);
}

// --- forms --------------------------------------------------------------------------

let fieldCounter = 0;

/**
 * A labelled input. `options`: {type, value, required, help, choices: [[value, label]],
 * min, max, step, placeholder, autocomplete}.
 */
export function field(name, label, options = {}) {
  const id = `f${++fieldCounter}`;
  let input;
  if (options.choices) {
    input = h("select", { id, name, required: options.required });
    for (const [value, text] of options.choices) {
      input.append(h("option", { value }, text));
    }
    if (options.value !== undefined && options.value !== null) input.value = String(options.value);
  } else if (options.type === "checkbox") {
    input = h("input", { id, name, type: "checkbox", checked: !!options.value });
  } else {
    input = h("input", {
      id,
      name,
      type: options.type || "text",
      value: options.value === undefined || options.value === null ? "" : String(options.value),
      required: options.required,
      min: options.min,
      max: options.max,
      step: options.step,
      placeholder: options.placeholder,
      autocomplete: options.autocomplete || "off",
      inputmode: options.inputmode,
    });
  }
  const message = h("span", { class: "field-error", id: `${id}-error` });
  input.setAttribute("aria-describedby", `${id}-error`);
  const wrap = h(
    "div",
    { class: options.type === "checkbox" ? "field check" : "field" },
    options.type === "checkbox" ? [input, h("label", { for: id }, label)] : [h("label", { for: id }, label), input],
    options.help ? h("span", { class: "help" }, options.help) : null,
    message,
  );
  return wrap;
}

/** The values of a form's fields: numbers for number inputs, booleans for checkboxes. */
export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "checkbox") out[el.name] = el.checked;
    else if (el.type === "number") out[el.name] = el.value === "" ? null : Number(el.value);
    else out[el.name] = el.value;
  }
  return out;
}

/** Clears the errors shown in a form. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error, .form-error")) el.textContent = "";
}

/** Shows an API error next to the field it names, or at the top of the form. */
export function showError(form, error) {
  clearErrors(form);
  const name = error.field ? String(error.field) : "";
  const last = name.split(".").pop();
  const input = name && (form.querySelector(`[name="${CSS.escape(name)}"]`) || form.querySelector(`[name="${CSS.escape(last)}"]`));
  if (input) {
    input.setAttribute("aria-invalid", "true");
    const message = document.getElementById(input.getAttribute("aria-describedby"));
    if (message) message.textContent = error.message;
    input.focus();
  } else {
    const top = form.querySelector(".form-error");
    const text = name ? `${name}: ${error.message}` : error.message;
    if (top) top.textContent = text;
    else notify(text, "error");
  }
}

/**
 * A form: `fields` and a submit button; `onsubmit(values, form)` may throw an ApiError
 * that is then shown next to its field.
 */
export function form(attrs, fields, submitLabel, onsubmit, extraButtons = []) {
  const button = h("button", { type: "submit", class: "primary" }, submitLabel);
  const el = h(
    "form",
    Object.assign({ novalidate: true }, attrs),
    h("p", { class: "form-error", role: "alert" }),
    h("div", { class: "fields" }, fields),
    h("div", { class: "buttons" }, button, extraButtons),
  );
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(el);
    button.disabled = true;
    try {
      await onsubmit(values(el), el);
    } catch (error) {
      showError(el, error);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

/** Runs an action from a button, reporting failures as notices. */
export async function act(what, fn) {
  try {
    const result = await fn();
    if (what) notify(what);
    return result;
  } catch (error) {
    notify(error.message, "error");
    return undefined;
  }
}

// --- tables and layout ------------------------------------------------------------------

/** A table with a caption; `rows` are arrays of cells (strings or nodes). */
export function table(caption, headers, rows, empty = "Nothing yet.") {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => h("td", { "data-label": headers[i] || "" }, c))))),
    ),
  );
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), children);
}

export function heading(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, title), h("div", { class: "actions" }, actions));
}

export function badge(text, kind = "") {
  return h("span", { class: `tag ${kind}` }, text);
}

/** A modal dialog holding `content`; resolves when it closes. */
export function dialog(title, content) {
  const close = h("button", { type: "button", class: "link close", "aria-label": "Close" }, "×");
  const box = h("dialog", { "aria-label": title }, h("div", { class: "dialog-head" }, h("h2", {}, title), close), content);
  close.addEventListener("click", () => box.close());
  document.body.append(box);
  box.addEventListener("close", () => box.remove());
  box.showModal();
  return box;
}

/** Asks for confirmation in a dialog. */
export function confirmDialog(question, yes = "Yes") {
  return new Promise((resolve) => {
    let answer = false;
    const ok = h("button", { type: "button", class: "danger" }, yes);
    const no = h("button", { type: "button" }, "Cancel");
    const box = dialog("Please confirm", h("div", {}, h("p", {}, question), h("div", { class: "buttons" }, ok, no)));
    ok.addEventListener("click", () => {
      answer = true;
      box.close();
    });
    no.addEventListener("click", () => box.close());
    box.addEventListener("close", () => resolve(answer));
    no.focus();
  });
}
