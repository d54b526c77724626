// Small building blocks of the pages. Data is always set as text, never as markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function errorBox(e) {
  return h("div", { class: "error", role: "alert", text: e && e.message ? e.message : String(e) });
}

export const fmt = {
  int: (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US")),
  num: (x, d = 4) => (x === undefined || x === null ? "–" : Number(x).toFixed(d)),
  bytes(n) {
    if (n === undefined || n === null) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = Number(n);
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  },
  ms: (x) => (x === undefined || x === null ? "–" : `${Number(x).toFixed(x < 10 ? 2 : 0)} ms`),
  id: (id) => (typeof id === "object" ? JSON.stringify(id) : String(id)),
};

// A colour for a value in [-1, 1]: blue for negative, white at 0, red for positive.
export function diverging(t) {
  const a = Math.max(-1, Math.min(1, t || 0));
  if (a >= 0) return `rgb(255,${Math.round(255 - 170 * a)},${Math.round(255 - 190 * a)})`;
  return `rgb(${Math.round(255 + 200 * a)},${Math.round(255 + 120 * a)},255)`;
}

const maxAbs = (values) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;

// A vector as a strip of coloured cells (one pixel column per value, scaled).
export function heatStrip(vector, { width = 384, height = 14, title } = {}) {
  const c = h("canvas", { class: "strip", width: Math.max(1, vector.length), height: 1, title });
  c.style.width = `${Math.min(width, Math.max(vector.length * 3, 60))}px`;
  c.style.height = `${height}px`;
  const g = c.getContext("2d");
  const m = maxAbs(vector);
  vector.forEach((v, i) => {
    g.fillStyle = diverging(v / m);
    g.fillRect(i, 0, 1, 1);
  });
  return c;
}

// A matrix (rows of numbers) as a heat map canvas, one row a line.
export function heatMap(rows, { cell = 3, rowHeight = 14 } = {}) {
  const cols = rows.reduce((m, r) => Math.max(m, r.length), 0);
  const c = h("canvas", { class: "strip", width: Math.max(1, cols), height: Math.max(1, rows.length) });
  c.style.width = `${Math.max(cols * cell, 60)}px`;
  c.style.height = `${rows.length * rowHeight}px`;
  const g = c.getContext("2d");
  const m = maxAbs(rows.flat());
  rows.forEach((r, y) =>
    r.forEach((v, x) => {
      g.fillStyle = diverging(v / m);
      g.fillRect(x, y, 1, 1);
    }),
  );
  return c;
}

// A small matrix with its numbers, cells tinted by value, as the by-hand sheet draws it.
export function matrix(name, rows, { cols, stage = "", rowNames } = {}) {
  const m = maxAbs(rows.flat());
  const cell = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2));
  const table = h(
    "table",
    {},
    cols ? h("tr", {}, rowNames ? h("th") : null, cols.map((c) => h("th", { text: c }))) : null,
    rows.map((r, i) =>
      h(
        "tr",
        {},
        rowNames ? h("th", { text: rowNames[i] }) : null,
        r.map((v) => {
          const td = h("td", { text: cell(v) });
          td.style.background = diverging((v / m) * 0.6);
          return td;
        }),
      ),
    ),
  );
  return h("div", { class: `matrix stage-${stage}` }, h("div", { class: "name", text: name }), table);
}

export const column = (v) => v.map((x) => [x]);

// A JSON value as a collapsible tree.
export function tree(value, open = 1) {
  const root = h("div", { class: "tree" });
  root.append(node(null, value, open));
  return root;
}

function node(key, value, open) {
  const label = key === null ? [] : [h("span", { class: "k", text: key }), ": "];
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    const d = h("details", { open: open > 0 });
    const brief = Array.isArray(value) ? `[${value.length}]` : `{${entries.length}}`;
    d.append(h("summary", {}, label, h("span", { class: "muted", text: brief })));
    for (const [k, v] of entries) d.append(node(k, v, open - 1));
    return d;
  }
  const cls = typeof value === "string" ? "s" : "n";
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return h("div", { class: "leaf" }, label, h("span", { class: cls, text }));
}

// A <select> of the collections, remembering the last one chosen.
export function collectionPicker(names, current, onChange) {
  const sel = h("select", { id: "collection", "aria-label": "collection" }, names.map((n) => h("option", { value: n, text: n, selected: n === current })));
  sel.addEventListener("change", () => {
    localStorage.setItem("quiver-collection", sel.value);
    onChange(sel.value);
  });
  return sel;
}

export function chosenCollection(names) {
  const last = localStorage.getItem("quiver-collection");
  return names.includes(last) ? last : names[0];
}

// Parses the text of a JSON editor; empty means null.
export function parseJson(text) {
  const t = text.trim();
  return t === "" ? null : JSON.parse(t);
}

// Runs `f` at most once per `ms` after the last call.
export function debounce(f, ms) {
  let t = null;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => f(...a), ms);
  };
}

// A horizontal bar chart of labelled values (scores).
export function bars(items) {
  const max = items.reduce((m, i) => Math.max(m, Math.abs(i.value)), 0) || 1;
  return h(
    "table",
    {},
    items.map((i) => {
      const bar = h("div", { class: "bar" });
      bar.style.width = `${Math.max(2, (Math.abs(i.value) / max) * 260)}px`;
      return h("tr", {}, h("td", { text: i.label }), h("td", { class: "num", text: fmt.num(i.value) }), h("td", {}, bar));
    }),
  );
}
