// The AS2 console's page. The connection form is rendered at run time from
// the component's JSON Schema and JSON Forms UI schema (GET /api/schema):
// Categorization, Category, Group and Control elements, their labels, the
// schema's descriptions as help text, and the UI schema's rules for what
// shows when. Nothing about a particular field is written here, so a field
// added to the configuration types appears without a change to this file.
//
// Text from the server (file names, messages, partner names) only ever goes
// into the page as text, never as markup.
"use strict";

const TOKEN = document.querySelector('meta[name="console-token"]').content;
const POLL_MS = 2000;

// Script errors, kept for whoever drives the page (the browser test reads them).
window.consoleErrors = [];
window.addEventListener("error", (e) => window.consoleErrors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.consoleErrors.push(String(e.reason)));

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (selector) => document.querySelector(selector);

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (method !== "GET") init.headers["X-Console-Token"] = TOKEN;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, error: { code: "CONSOLE_UNREACHABLE", message: "the console does not answer: is it still running?" } };
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || { code: "HTTP_" + response.status, message: response.statusText };
    return { ok: false, status: response.status, error };
  }
  return { ok: true, status: response.status, data };
}

function notice(text, kind) {
  const box = $("#notice");
  box.replaceChildren();
  if (!text) { box.hidden = true; return; }
  box.className = "notice" + (kind === "info" ? " info" : "");
  if (typeof text === "string") box.append(text);
  else box.append(el("b", {}, text.code), ": " + text.message);
  box.hidden = false;
}

function sizeText(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1 << 20) return (bytes / 1024).toFixed(1) + " KiB";
  return (bytes / (1 << 20)).toFixed(1) + " MiB";
}

// ------------------------------------------------------- JSON Schema walk

let SCHEMA = null;
let UISCHEMA = null;

// The schema behind `$ref`s, and the one alternative of an optional field
// (`anyOf: [X, {type: null}]`).
function resolve(node) {
  let seen = 0;
  while (node && seen++ < 20) {
    if (node.$ref) {
      const path = node.$ref.replace(/^#\//, "").split("/");
      node = path.reduce((n, key) => (n ? n[key] : undefined), SCHEMA);
      continue;
    }
    const alternatives = node.anyOf || node.oneOf;
    if (alternatives && !node.properties) {
      const real = alternatives.filter((a) => a.type !== "null");
      if (real.length === 1) { node = real[0]; continue; }
    }
    break;
  }
  return node || {};
}

// The properties of an object schema, merged over the alternatives of a
// `oneOf` (a tagged union: each alternative's fields, and the tag's values).
function propertiesOf(node) {
  node = resolve(node);
  if (node.properties) return node.properties;
  const alternatives = node.oneOf || node.anyOf;
  if (!alternatives) return {};
  const merged = {};
  for (const alternative of alternatives.map(resolve)) {
    for (const [name, property] of Object.entries(alternative.properties || {})) {
      if (property.const !== undefined) {
        const tag = merged[name] || { oneOf: [], tag: true };
        tag.oneOf.push({ const: property.const, title: alternative.description ? alternative.description.replace(/\.$/, "") : property.const });
        merged[name] = tag;
      } else if (!merged[name]) {
        merged[name] = property;
      }
    }
  }
  return merged;
}

function requiredOf(node) {
  node = resolve(node);
  return node.required || [];
}

// The schema of a UI-schema scope (`#/properties/a/properties/b`), the
// property as its parent declares it (where its description sits), and
// whether the parent requires it.
function schemaAt(scope) {
  const names = scope.replace(/^#\/properties\//, "").split("/properties/");
  let node = SCHEMA;
  let property = null;
  let required = false;
  let parent = null;
  let parentProperty = null;
  for (const name of names) {
    parent = node;
    parentProperty = property;
    property = propertiesOf(node)[name];
    required = requiredOf(node).includes(name);
    if (!property) return null;
    node = property;
  }
  return { property, schema: resolve(property), required, parent: resolve(parent), parentProperty };
}

const pointerOf = (scope) => scope.replace(/^#/, "").replace(/\/properties\//g, "/");

function getAt(data, pointer) {
  let node = data;
  for (const key of pointer.split("/").slice(1)) {
    if (node === null || typeof node !== "object") return undefined;
    node = node[key];
  }
  return node;
}

function setAt(data, pointer, value) {
  const keys = pointer.split("/").slice(1);
  let node = data;
  for (const key of keys.slice(0, -1)) {
    if (node[key] === null || typeof node[key] !== "object") node[key] = {};
    node = node[key];
  }
  const last = keys[keys.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
}

function typeOf(schema) {
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  return type;
}

function choicesOf(schema) {
  if (schema.enum) return schema.enum.map((v) => ({ value: v, title: String(v) }));
  const alternatives = schema.oneOf || schema.anyOf;
  if (alternatives && alternatives.every((a) => a.const !== undefined)) {
    return alternatives.map((a) => ({ value: a.const, title: a.title || String(a.const) }));
  }
  return null;
}

function defaultOf(found) {
  if (!found) return undefined;
  if (found.property.default !== undefined) return found.property.default;
  if (found.schema.default !== undefined) return found.schema.default;
  if (found.schema.tag) return found.schema.oneOf[0].const;
  return undefined;
}

// A value checked against a rule's condition schema (the parts rules use).
function matches(value, schema) {
  if (schema.const !== undefined) return value === schema.const;
  if (schema.enum) return schema.enum.includes(value);
  if (schema.not) return !matches(value, schema.not);
  return true;
}

// ------------------------------------------------------------- the form

const form = {
  id: null,         // the connection being edited; null for a new one
  data: {},         // the form's data, as the configuration's JSON
  stored: {},       // what the server holds (secrets by name only)
  controls: [],     // { pointer, scope, node, problemNode, hiddenBy }
  ruled: [],        // { node, rule }
  categories: [],   // { label, tab, panel, badge }
  touched: new Set(),
  showAll: false,
  dirty: false,
  problems: [],
};

function displayValue(control) {
  const value = getAt(form.data, control.pointer);
  return value === undefined ? defaultOf(control.found) : value;
}

function ruleHolds(rule) {
  const found = schemaAt(rule.condition.scope);
  let value = getAt(form.data, pointerOf(rule.condition.scope));
  if (value === undefined) value = defaultOf(found);
  return matches(value, rule.condition.schema || {});
}

function applyRules() {
  for (const { node, rule } of form.ruled) {
    const holds = ruleHolds(rule);
    if (rule.effect === "SHOW") node.hidden = !holds;
    else if (rule.effect === "HIDE") node.hidden = holds;
    else if (rule.effect === "DISABLE" || rule.effect === "ENABLE") {
      const disabled = rule.effect === "DISABLE" ? holds : !holds;
      node.querySelectorAll("input, select, textarea").forEach((input) => (input.disabled = disabled));
    }
  }
}

function isShown(node) {
  for (let n = node; n && n !== document.body; n = n.parentElement) {
    if (n.hidden && !n.classList.contains("category")) return false;
  }
  return true;
}

function changed(control) {
  form.dirty = true;
  form.touched.add(control.pointer);
  $("#save-state").textContent = "unsaved changes";
  applyRules();
  scheduleValidation();
}

function renderForm() {
  const root = $("#form");
  root.replaceChildren();
  form.controls = [];
  form.ruled = [];
  form.categories = [];
  root.append(renderElement(UISCHEMA));
  applyRules();
  if (form.categories.length) selectCategory(form.categories[0]);
}

function withRule(element, node) {
  if (element.rule) form.ruled.push({ node, rule: element.rule });
  return node;
}

function renderElement(element) {
  switch (element.type) {
    case "Categorization": {
      const tabs = el("div", { class: "categories", role: "tablist" });
      const panels = el("div", {});
      for (const category of element.elements) {
        const badge = el("span", { class: "badge", hidden: true });
        const tab = el("button", { type: "button", class: "category-tab", "data-category": category.label }, category.label, badge);
        const panel = el("div", { class: "category", "data-category": category.label, hidden: true },
          category.elements.map(renderElement));
        const entry = { label: category.label, tab, panel, badge };
        tab.addEventListener("click", () => selectCategory(entry));
        form.categories.push(entry);
        tabs.append(tab);
        panels.append(withRule(category, panel));
      }
      return el("div", {}, tabs, panels);
    }
    case "VerticalLayout":
    case "HorizontalLayout":
      return withRule(element, el("div", { class: element.type }, element.elements.map(renderElement)));
    case "Group":
      return withRule(element, el("fieldset", { class: "group" },
        el("legend", {}, element.label || ""), element.elements.map(renderElement)));
    case "Label":
      return withRule(element, el("p", { class: "hint" }, element.text || ""));
    case "Control":
      return withRule(element, renderControl(element));
    default:
      return el("div", { class: "hint" }, "(" + element.type + " is not shown)");
  }
}

function selectCategory(entry) {
  for (const c of form.categories) {
    c.panel.hidden = c !== entry;
    c.tab.classList.toggle("current", c === entry);
  }
}

function renderControl(element) {
  const found = schemaAt(element.scope);
  const pointer = pointerOf(element.scope);
  if (!found) return el("div", { class: "hint" }, "(no field " + element.scope + ")");
  const options = element.options || {};
  const schema = found.schema;
  const label = element.label || schema.title || pointer.split("/").pop();
  // A secret's value is described by the field that holds the secret.
  const described = secretPointer({ pointer, found }) && found.parentProperty ? found.parentProperty : found.property;
  const help = (described.description || schema.description || "").replace(/([^\n])\n(?!\n)/g, "$1 ");
  const inputId = "f" + pointer.replace(/[^a-z0-9]/gi, "_");
  const control = { pointer, scope: element.scope, found, options };
  const problemNode = el("div", { class: "problem", hidden: true });
  control.problemNode = problemNode;
  const container = el("div", { class: "control", "data-pointer": pointer });
  control.node = container;
  form.controls.push(control);
  const readonly = options.readonly === true || schema.readOnly === true;
  const caption = el("label", { class: "caption", for: inputId }, label,
    found.required ? el("span", { class: "required" }, " *") : null);
  const type = typeOf(schema);
  const choices = choicesOf(schema);
  let input;

  if (type === "boolean") {
    input = el("input", { type: "checkbox", id: inputId, disabled: readonly });
    input.checked = displayValue(control) === true;
    input.addEventListener("change", () => { setAt(form.data, pointer, input.checked); changed(control); });
    container.classList.add("checkbox");
    container.append(el("label", { for: inputId }, input, " ", label));
  } else if (choices) {
    input = el("select", { id: inputId, disabled: readonly });
    const current = displayValue(control);
    if (current === undefined) input.append(el("option", { value: "" }, "—"));
    for (const choice of choices) {
      const option = el("option", { value: JSON.stringify(choice.value) }, choice.title);
      if (choice.value === current) option.selected = true;
      input.append(option);
    }
    input.addEventListener("change", () => {
      setAt(form.data, pointer, input.value === "" ? undefined : JSON.parse(input.value));
      changed(control);
    });
    container.append(caption, input);
  } else if (type === "array") {
    container.append(caption, renderArray(control, inputId, readonly));
  } else {
    const secretParent = secretPointer(control);
    const password = options.format === "password" || schema.writeOnly === true;
    const numeric = type === "integer" || type === "number";
    if (options.multi) {
      input = el("textarea", { id: inputId, rows: 6, readonly, spellcheck: "false" });
      if (password) input.classList.add("secret-text");
    } else {
      input = el("input", { id: inputId, type: password ? "password" : numeric ? "number" : "text", readonly });
    }
    const value = secretParent ? undefined : displayValue(control);
    if (value !== undefined && value !== null) input.value = Array.isArray(value) ? value.join(", ") : String(value);
    if (value === undefined && defaultOf(found) === undefined && schema.examples) input.placeholder = String(schema.examples[0]);
    if (secretParent) {
      const storedName = getAt(form.stored, secretParent + "/secret");
      if (storedName) {
        input.placeholder = "stored — enter again to change";
      }
    }
    input.addEventListener("input", () => {
      let v = input.value;
      if (secretParent) {
        // A typed secret replaces the stored one; an empty field keeps it.
        setAt(form.data, secretParent, v === "" ? (getAt(form.stored, secretParent) || undefined) : { value: v });
      } else if (numeric) {
        setAt(form.data, pointer, v === "" ? undefined : Number(v));
      } else {
        setAt(form.data, pointer, v === "" ? undefined : v);
      }
      changed(control);
    });
    container.append(caption, input);
    if (options.file) {
      const file = el("input", { type: "file", accept: options.file, "aria-label": label + " from a file" });
      file.addEventListener("change", async () => {
        if (!file.files.length) return;
        input.value = await file.files[0].text();
        input.dispatchEvent(new Event("input"));
      });
      container.append(el("div", { class: "file" }, "or from a file: ", file));
    }
  }
  if (help) container.append(el("div", { class: "help" }, help));
  container.append(problemNode);
  return container;
}

function renderArray(control, inputId, readonly) {
  const items = resolve(control.found.schema.items || {});
  if (typeOf(items) !== "object") {
    // A list of words, one a line.
    const input = el("textarea", { id: inputId, rows: 3, readonly });
    const value = displayValue(control);
    if (Array.isArray(value)) input.value = value.join("\n");
    input.addEventListener("input", () => {
      const lines = input.value.split("\n").map((l) => l.trim()).filter(Boolean);
      setAt(form.data, control.pointer, lines.length ? lines : undefined);
      changed(control);
    });
    return input;
  }
  // A list of objects: a row of inputs per item.
  const fields = Object.keys(items.properties || {});
  const rows = el("div", { class: "rows", id: inputId });
  const draw = () => {
    rows.replaceChildren();
    const list = getAt(form.data, control.pointer) || [];
    list.forEach((item, index) => {
      const row = el("div", { class: "row" });
      for (const field of fields) {
        const input = el("input", { type: "text", placeholder: field, value: item[field] ?? "", readonly });
        input.addEventListener("input", () => { item[field] = input.value; changed(control); });
        row.append(input);
      }
      row.append(el("button", { type: "button", disabled: readonly, onclick: () => {
        list.splice(index, 1);
        setAt(form.data, control.pointer, list.length ? list : undefined);
        draw(); changed(control);
      } }, "Remove"));
      rows.append(row);
    });
    rows.append(el("button", { type: "button", disabled: readonly, onclick: () => {
      const next = getAt(form.data, control.pointer) || [];
      next.push(Object.fromEntries(fields.map((f) => [f, ""])));
      setAt(form.data, control.pointer, next);
      draw(); changed(control);
    } }, "Add"));
  };
  draw();
  return rows;
}

// ----------------------------------------------- what is saved, problems

// The configuration as saved: what hidden controls hold is left out (what
// a person does not see is not saved), then empty values and objects.
function configToSave() {
  const config = JSON.parse(JSON.stringify(form.data));
  for (const control of form.controls) {
    if (!isShown(control.node)) {
      const secret = secretPointer(control);
      setAt(config, secret || control.pointer, undefined);
    }
  }
  return prune(config) || {};
}

function prune(value) {
  if (Array.isArray(value)) return value.length ? value : undefined;
  if (value === null || value === "") return undefined;
  if (typeof value !== "object") return value;
  const out = {};
  for (const [key, child] of Object.entries(value)) {
    const kept = prune(child);
    if (kept !== undefined) out[key] = kept;
  }
  return Object.keys(out).length ? out : undefined;
}

// The pointer of the secret (`{secret}` or `{value}`) a control's `value`
// field belongs to, when it is one.
function secretPointer(control) {
  const parent = control.found.parent;
  if (control.pointer.endsWith("/value") && parent && parent.properties && parent.properties.secret) {
    return control.pointer.slice(0, -"/value".length);
  }
  return null;
}

let validationTimer = null;
let validationRound = 0;
function scheduleValidation() {
  clearTimeout(validationTimer);
  validationTimer = setTimeout(validateNow, 300);
}

async function validateNow() {
  const round = ++validationRound;
  const result = await api("POST", "/api/validate", { id: form.id, config: configToSave() });
  if (round !== validationRound) return; // a newer round is on its way
  if (!result.ok) { notice(result.error); return; }
  showProblems(result.data.problems);
}

// The control a problem's JSON pointer belongs to: the field itself, the
// field inside it (a secret's value), or the nearest field above it.
function controlFor(field) {
  const shown = form.controls.filter((c) => isShown(c.node));
  return shown.find((c) => c.pointer === field)
    || shown.find((c) => c.pointer.startsWith(field + "/"))
    || shown.filter((c) => field.startsWith(c.pointer + "/")).sort((a, b) => b.pointer.length - a.pointer.length)[0]
    || null;
}

function labelOf(control) {
  const caption = control.node.querySelector("label");
  return caption ? caption.textContent.replace(/ \*$/, "") : control.pointer;
}

function categoryOf(node) {
  return form.categories.find((c) => c.panel.contains(node)) || null;
}

function showProblems(problems) {
  form.problems = problems;
  for (const control of form.controls) {
    control.problemNode.hidden = true;
    control.problemNode.replaceChildren();
    control.node.classList.remove("has-problem");
  }
  for (const c of form.categories) { c.badge.hidden = true; c.badge.textContent = ""; }
  const summary = $("#problem-summary");
  summary.replaceChildren();
  const listed = el("ul", {});
  let errors = 0;
  let untouched = 0;
  for (const problem of problems) {
    const control = controlFor(problem.field);
    const visible = form.showAll || !control || form.touched.has(control.pointer) || form.id !== null;
    if (problem.severity === "error" && visible) errors++;
    if (problem.severity === "error" && !visible) untouched++;
    if (control && visible) {
      control.problemNode.append(el("div", { class: "problem " + problem.severity, "data-code": problem.code }, problem.message + " (" + problem.code + ")"));
      control.problemNode.hidden = false;
      if (problem.severity === "error") control.node.classList.add("has-problem");
      const category = categoryOf(control.node);
      if (category && problem.severity === "error") {
        category.badge.hidden = false;
        category.badge.textContent = String(Number(category.badge.textContent || 0) + 1);
      }
    }
    if (visible) {
      const where = control ? labelOf(control) : problem.field || "the connection";
      const link = el("a", { href: "#", onclick: (e) => {
        e.preventDefault();
        if (control) { const c = categoryOf(control.node); if (c) selectCategory(c); control.node.scrollIntoView({ block: "center" }); }
      } }, where);
      listed.append(el("li", {}, link, ": " + problem.message + " (" + problem.code + ")"));
    }
  }
  if (listed.childElementCount) {
    const more = untouched ? " (and " + untouched + " in fields not filled in yet: Save lists them)" : "";
    summary.append(el("b", {}, errors ? errors + " to fix before saving" + more : "warnings"), listed);
    summary.hidden = false;
  } else {
    summary.hidden = true;
  }
}

// -------------------------------------------------- connections and views

let current = { id: null, view: "configure" };
let pollTimer = null;

async function loadConnections() {
  const result = await api("GET", "/api/connections");
  if (!result.ok) { notice(result.error); return; }
  const list = $("#connection-list");
  list.replaceChildren(...result.data.map((c) => el("li", {},
    el("a", { href: "#" + c.id, "data-id": c.id, class: c.id === current.id ? "current" : "", onclick: (e) => { e.preventDefault(); openConnection(c.id); } },
      c.name, el("small", {}, c.station + " → " + c.partner)))));
}

function showConnection(title) {
  $("#empty").hidden = true;
  $("#connection").hidden = false;
  $("#title").textContent = title;
  $("#test-result").hidden = true;
  $("#save-state").textContent = "";
  notice(null);
}

function newConnection() {
  current.id = null;
  form.id = null;
  form.data = {};
  form.stored = {};
  form.touched = new Set();
  form.showAll = false;
  form.dirty = false;
  showConnection("New connection");
  renderForm();
  showProblems([]);
  selectView("configure");
  loadConnections();
}

async function openConnection(id) {
  const result = await api("GET", "/api/connections/" + encodeURIComponent(id));
  if (!result.ok) { notice(result.error); return; }
  current.id = id;
  form.id = id;
  form.stored = result.data.config;
  form.data = JSON.parse(JSON.stringify(result.data.config));
  form.touched = new Set();
  form.showAll = true;
  form.dirty = false;
  showConnection(result.data.config.name || id);
  renderForm();
  showProblems([]);
  validateNow();
  selectView(current.view);
  loadConnections();
  history.replaceState(null, "", "#" + id);
}

function selectView(view) {
  if (view !== "configure" && current.id === null) view = "configure";
  current.view = view;
  for (const tab of document.querySelectorAll(".view-tab")) {
    tab.classList.toggle("current", tab.dataset.view === view);
    tab.disabled = tab.dataset.view !== "configure" && current.id === null;
  }
  for (const name of ["configure", "source", "destination", "lookup"]) {
    $("#view-" + name).hidden = name !== view;
  }
  clearInterval(pollTimer);
  if (view === "source") { refreshReceived(); pollTimer = setInterval(refreshReceived, POLL_MS); }
  if (view === "destination") { refreshSent(); pollTimer = setInterval(refreshSent, POLL_MS); }
}

async function save() {
  form.showAll = true;
  const config = configToSave();
  const result = form.id === null
    ? await api("POST", "/api/connections", { config })
    : await api("PUT", "/api/connections/" + encodeURIComponent(form.id), { config });
  if (!result.ok) {
    notice(result.error);
    if (result.error.problems) showProblems(result.error.problems);
    $("#save-state").textContent = "not saved";
    return false;
  }
  current.view = "configure";
  await openConnection(result.data.id);
  const moved = result.data.stored.length ? " (" + result.data.stored.length + " secret(s) moved into the store)" : "";
  notice("Saved" + moved + ".", "info");
  $("#save-state").textContent = "saved";
  return true;
}

const VERDICT_WORDS = {
  OK: "The connection works.",
  INVALID_CONFIG: "The configuration has errors.",
  CERT_HAS_EXPIRED: "A certificate in use has expired or is not yet valid.",
  AUTH_FAILED: "The partner refused the credentials.",
  UNREACHABLE: "The partner's URL could not be reached.",
  TLS_ERROR: "The TLS handshake with the partner failed.",
};

async function testConnection() {
  if (form.id === null || form.dirty) {
    if (!(await save())) return;
  }
  const box = $("#test-result");
  box.hidden = false;
  box.replaceChildren(el("span", { class: "state" }, "testing…"));
  const result = await api("POST", "/api/connections/" + encodeURIComponent(form.id) + "/test");
  if (!result.ok) { box.replaceChildren(el("span", { class: "verdict bad" }, result.error.code + ": " + result.error.message)); return; }
  const test = result.data;
  box.replaceChildren(
    el("div", {}, el("span", { class: "verdict " + (test.verdict === "OK" ? "ok" : "bad"), id: "verdict", "data-verdict": test.verdict }, test.verdict),
      " — " + (VERDICT_WORDS[test.verdict] || "") + " " + test.summary),
    el("ul", {}, test.checks.map((check) => el("li", { class: check.passed ? "" : "check-failed" },
      (check.passed ? "ok — " : "failed — ") + check.name + ": " + check.detail))),
    el("ul", { class: "test-warnings" }, (test.warnings || []).map((w) => el("li", { class: "warning", "data-code": w.code },
      "warning — " + w.message + " (" + w.field + ")"))));
}

function messageLink(id) {
  return el("a", { href: "#", onclick: (e) => { e.preventDefault(); $("#lookup-id").value = id; selectView("lookup"); lookup(); } }, id);
}

async function refreshReceived() {
  if (current.id === null) return;
  const id = current.id;
  const result = await api("GET", "/api/connections/" + encodeURIComponent(id) + "/messages?direction=in");
  if (!result.ok || id !== current.id) return;
  const body = $("#received tbody");
  body.replaceChildren(...result.data.map((m) => el("tr", { "data-message-id": m.message_id },
    el("td", {}, m.created_text), el("td", {}, m.partner), el("td", { class: "file" }, m.file_name || ""),
    el("td", {}, sizeText(m.size)), el("td", { class: "mid" }, messageLink(m.message_id)),
    el("td", {}, m.answered || m.state),
    el("td", {}, m.downloadable ? el("a", { href: "/api/connections/" + encodeURIComponent(id) + "/messages/" + encodeURIComponent(m.message_id) + "/document", download: m.file_name || "document" }, "Download") : ""))));
  if (!result.data.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "Nothing received yet.")));
}

async function refreshSent() {
  if (current.id === null) return;
  const id = current.id;
  const result = await api("GET", "/api/connections/" + encodeURIComponent(id) + "/messages?direction=out");
  if (!result.ok || id !== current.id) return;
  const body = $("#sent tbody");
  body.replaceChildren(...result.data.map((m) => el("tr", { "data-message-id": m.message_id },
    el("td", {}, m.created_text), el("td", {}, m.file_name || ""), el("td", { class: "mid" }, messageLink(m.message_id)),
    el("td", {}, m.state), el("td", {}, m.mdn ? m.mdn.disposition : "none yet"))));
}

// Each file in its own request, with upload progress, then the MDN's verdict.
function sendFiles() {
  const files = Array.from($("#send-files").files);
  if (!files.length) { notice("Choose one or more files first."); return; }
  notice(null);
  const type = $("#send-type").value;
  for (const file of files) {
    const bar = el("progress", { max: 100, value: 0 });
    const state = el("span", { class: "state" }, "waiting");
    const row = el("li", { "data-file": file.name }, el("b", {}, file.name), " " + sizeText(file.size), bar, state);
    $("#send-progress").prepend(row);
    const request = new XMLHttpRequest();
    const url = "/api/connections/" + encodeURIComponent(current.id) + "/send?name=" + encodeURIComponent(file.name) + "&type=" + encodeURIComponent(type);
    request.open("POST", url);
    request.setRequestHeader("X-Console-Token", TOKEN);
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) { bar.value = Math.round((100 * e.loaded) / e.total); state.textContent = "uploading " + bar.value + " %"; }
    });
    request.upload.addEventListener("load", () => { bar.value = 100; state.textContent = "sent to the host, waiting for the MDN…"; });
    request.addEventListener("load", () => {
      let data = null;
      try { data = JSON.parse(request.responseText); } catch (e) { data = null; }
      if (request.status !== 200 || !data || data.error) {
        const error = (data && data.error) || { code: "HTTP_" + request.status, message: request.statusText };
        state.className = "failed";
        state.textContent = error.code + ": " + error.message;
        return;
      }
      const mdn = data.disposition ? "MDN " + data.disposition : "no MDN";
      const mic = data.mic_matched === true ? ", MIC matched" : data.mic_matched === false ? ", MIC does not match" : "";
      state.className = data.state === "acknowledged" ? "done" : data.state === "failed" ? "failed" : "state";
      state.dataset.state = data.state;
      state.textContent = data.state + " — " + mdn + mic + " (" + data.message_id + ")";
      refreshSent();
    });
    request.addEventListener("error", () => { state.className = "failed"; state.textContent = "the console does not answer"; });
    request.send(file);
  }
  $("#send-files").value = "";
}

async function lookup() {
  const id = $("#lookup-id").value.trim();
  const box = $("#lookup-result");
  if (!id) { box.replaceChildren(el("p", { class: "empty" }, "Give a Message-ID.")); return; }
  const result = await api("GET", "/api/connections/" + encodeURIComponent(current.id) + "/messages/" + encodeURIComponent(id));
  if (!result.ok) { box.replaceChildren(el("p", { class: "notice" }, result.error.code + ": " + result.error.message)); return; }
  const m = result.data;
  const rows = [
    ["Message-ID", m.message_id], ["Direction", m.direction === "in" ? "received from the partner" : "sent to the partner"],
    ["Partner", m.partner], ["File", m.file_name || ""], ["Created", m.created_text], ["State", m.state],
    ["MIC", m.mic], ["Attempts", String(m.attempts)],
  ];
  for (const attempt of m.history || []) rows.push(["  attempt " + attempt.number, attempt.started + ": " + attempt.outcome]);
  if (m.mdn) {
    rows.push(["MDN", m.mdn.disposition_text || m.mdn.disposition], ["MDN signature", m.mdn.signature_text || m.mdn.signature],
      ["MIC in the MDN", m.mdn.received_mic || "none"],
      ["MIC check", m.mic_matched === true ? "matches" : m.mic_matched === false ? "does not match" : "no MIC to compare"]);
    for (const warning of m.mdn.warnings || []) rows.push(["Warning", warning]);
  } else if (m.direction === "out") {
    rows.push(["MDN", "none yet"]);
  }
  if (m.answered) rows.push(["Answered", m.answered]);
  if (m.async_mdn_delivery) rows.push(["Async MDN", JSON.stringify(m.async_mdn_delivery)]);
  if (m.reason) rows.push(["Reason", m.reason]);
  box.replaceChildren(el("dl", { class: "status", id: "status" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
}

// ------------------------------------------------------------------ start

async function start() {
  const result = await api("GET", "/api/schema");
  if (!result.ok) { notice(result.error); return; }
  SCHEMA = result.data.schema;
  UISCHEMA = result.data.uischema;
  $("#new-connection").addEventListener("click", newConnection);
  $("#save").addEventListener("click", save);
  $("#test").addEventListener("click", testConnection);
  $("#send").addEventListener("click", sendFiles);
  $("#lookup").addEventListener("click", lookup);
  for (const tab of document.querySelectorAll(".view-tab")) tab.addEventListener("click", () => selectView(tab.dataset.view));
  await loadConnections();
  const wanted = location.hash.slice(1);
  if (wanted) openConnection(wanted);
  document.body.dataset.ready = "true";
}

start();
