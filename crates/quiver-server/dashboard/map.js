// Map: a sample of a collection's vectors on their two principal axes (PCA, computed by the
// server), coloured by a payload key; hovering shows the payload; a query's position and its
// nearest neighbours are marked.

import { collectionNames, info, post, enc } from "./api.js";
import { h, s, clear, errorBox, fmt, collectionPicker, chosenCollection, parseJson } from "./ui.js";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const OTHER = "#b0b7c3";

function colourKeys(points) {
  const keys = new Set();
  for (const p of points.slice(0, 500)) for (const [k, v] of Object.entries(p.payload || {})) if (v === null || typeof v !== "object") keys.add(k);
  return [...keys].sort();
}

function colouring(points, key) {
  if (!key) return { of: () => PALETTE[0], legend: [] };
  const counts = new Map();
  for (const p of points) {
    const v = JSON.stringify((p.payload || {})[key] ?? null);
    counts.set(v, (counts.get(v) || 0) + 1);
  }
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length);
  const colour = new Map(top.map(([v], i) => [v, PALETTE[i]]));
  return {
    of: (p) => colour.get(JSON.stringify((p.payload || {})[key] ?? null)) || OTHER,
    legend: [...top.map(([v, n], i) => [v, n, PALETTE[i]]), ...(counts.size > top.length ? [["other", null, OTHER]] : [])],
  };
}

function draw(m, key, tip) {
  const all = [...m.points, ...m.neighbours, ...(m.query ? [m.query] : [])];
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const W = 760;
  const H = 560;
  const pad = 20;
  const X = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * pad);
  const Y = (y) => H - pad - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  const { of, legend } = colouring(m.points, key);
  const svg = s("svg", { id: "map-svg", width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  svg.append(s("rect", { x: 0, y: 0, width: W, height: H, fill: "#fff", stroke: "#dde2ea" }));
  // One listener for the whole layer (a sample has up to 5,000 dots): the dot's index says which.
  const dots = s("g", { class: "points" });
  const show = (p, ev) => {
    tip.textContent = `id ${fmt.id(p.id)}${p.score !== undefined ? `  score ${fmt.num(p.score)}` : ""}\n${JSON.stringify(p.payload || {}, null, 1).slice(0, 600)}`;
    tip.style.display = "block";
    tip.style.left = `${ev.clientX + 12}px`;
    tip.style.top = `${ev.clientY + 12}px`;
  };
  const hide = () => {
    tip.style.display = "none";
  };
  m.points.forEach((p, i) => dots.append(s("circle", { class: "point", cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: 3, fill: of(p), "fill-opacity": 0.75, "data-i": i })));
  dots.addEventListener("mousemove", (ev) => {
    const i = ev.target.dataset ? ev.target.dataset.i : undefined;
    if (i !== undefined) show(m.points[Number(i)], ev);
  });
  dots.addEventListener("mouseleave", hide);
  svg.append(dots);
  if (m.query) {
    for (const n of m.neighbours) {
      svg.append(s("line", { x1: X(m.query.x), y1: Y(m.query.y), x2: X(n.x), y2: Y(n.y), stroke: "#d0453a", "stroke-opacity": 0.35 }));
      svg.append(s("circle", { class: "neighbour", cx: X(n.x), cy: Y(n.y), r: 6, fill: "none", stroke: "#d0453a", "stroke-width": 2, onmousemove: (ev) => show(n, ev), onmouseleave: hide }));
    }
    const q = m.query;
    svg.append(s("path", { id: "map-query", d: `M${X(q.x)},${Y(q.y) - 9} l3,6 6,0 -5,4 2,7 -6,-4 -6,4 2,-7 -5,-4 6,0 z`, fill: "#d0453a", stroke: "#fff" }));
  }
  const leg = h("div", { class: "legend" }, legend.map(([v, n, c]) => {
    const sw = h("span", { class: "sw" });
    sw.style.background = c;
    return h("span", {}, sw, `${v}${n ? ` (${n})` : ""}`);
  }));
  return [svg, leg];
}

export async function render(main, [wanted]) {
  const names = await collectionNames();
  main.append(h("h1", { text: "Map of the vectors" }));
  if (!names.length) return main.append(h("p", { class: "muted", text: "No collections yet." }));
  const name = names.includes(wanted) ? wanted : chosenCollection(names);
  const c = await info(name);
  const textual = Boolean(c.quiver_embedder);
  const sample = h("input", { id: "map-sample", type: "number", min: 1, max: 5000, value: 1000 });
  const colourBy = h("select", { id: "map-colour" }, h("option", { value: "", text: "(one colour)" }));
  const query = h("input", { id: "map-query-input", size: 40, placeholder: textual ? "a text query to place (optional)" : "a vector to place (optional)" });
  const out = h("div", { id: "map-out" });
  const note = h("p", { class: "muted", id: "map-note" });
  const tip = h("div", { class: "tooltip" });
  let last = null;
  const redraw = () => {
    if (!last) return;
    clear(out).append(...draw(last, colourBy.value, tip));
  };
  const run = async () => {
    main.dataset.ready = "false";
    clear(out);
    try {
      const body = { sample: Number(sample.value) || 1000, limit: 10, with_payload: true };
      if (query.value.trim()) {
        if (textual) body.text = query.value;
        else body.vector = parseJson(query.value);
      }
      last = await post(`/collections/${enc(name)}/map`, body);
      const keys = colourKeys(last.points);
      const keep = colourBy.value;
      clear(colourBy).append(h("option", { value: "", text: "(one colour)" }), ...keys.map((k) => h("option", { value: k, text: k, selected: k === keep })));
      if (!keep && keys.length) colourBy.value = keys[0];
      note.textContent = `${fmt.int(last.points.length)} of ${fmt.int(last.population)} points (vector ${last.using || "(unnamed)"}); the axes hold ${(100 * last.explained_variance[0]).toFixed(1)}% and ${(100 * last.explained_variance[1]).toFixed(1)}% of the sample's variance.`;
      redraw();
      main.dataset.mapped = String(last.points.length);
    } catch (e) {
      out.append(errorBox(e));
    }
    main.dataset.ready = "true";
  };
  colourBy.addEventListener("change", redraw);
  const form = h("form", { class: "panel row" }, h("label", {}, "sample ", sample), h("label", {}, "colour by ", colourBy), query, h("button", { type: "submit", text: "Draw" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run();
  });
  const picker = collectionPicker(names, name, (n) => {
    location.hash = `#/map/${enc(n)}`;
  });
  main.append(h("div", { class: "row" }, "Collection ", picker), form, note, out, tip);
  await run();
}
