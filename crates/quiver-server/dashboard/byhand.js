// By hand: "Vector Database by Hand" as the sheet draws it, every matrix of steps [1]-[10]
// side by side and coloured by stage, for a query typed from the 22-word vocabulary. The
// numbers come from the server (the classroom model and the engine's exact search).

import { get, enc } from "./api.js";
import { h, s, clear, errorBox, matrix, column, fmt } from "./ui.js";

function step(stage, title, ...body) {
  return h("section", { class: `step ${stage}` }, h("h3", { text: title }), h("div", {}, ...body));
}

const op = (t) => h("span", { class: "op", text: t });

// The 2-d index: stored points and, when given, the query and its nearest.
function plot(stored, labels, query, nearest) {
  const all = query ? [...stored, query] : stored;
  const lo = (k) => Math.min(0, ...all.map((v) => v[k])) - 0.5;
  const hi = (k) => Math.max(0, ...all.map((v) => v[k])) + 0.5;
  const [x0, x1, y0, y1] = [lo(0), hi(0), lo(1), hi(1)];
  const W = 260;
  const H = 220;
  const X = (x) => 20 + ((x - x0) / (x1 - x0)) * (W - 40);
  const Y = (y) => H - 20 - ((y - y0) / (y1 - y0)) * (H - 40);
  const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "plot" });
  svg.append(s("line", { x1: X(x0), x2: X(x1), y1: Y(0), y2: Y(0), stroke: "#bbb" }), s("line", { x1: X(0), x2: X(0), y1: Y(y0), y2: Y(y1), stroke: "#bbb" }));
  // Points on the same spot (the sheet's tie) share one label line each, stacked downwards.
  const seen = new Map();
  stored.forEach((v, i) => {
    const near = nearest === i;
    const spot = `${v[0]},${v[1]}`;
    const k = seen.get(spot) || 0;
    seen.set(spot, k + 1);
    svg.append(s("circle", { cx: X(v[0]), cy: Y(v[1]), r: near ? 7 : 5, fill: "#2f6fd6", stroke: near ? "#d0453a" : "none", "stroke-width": 3 }), s("text", { x: X(v[0]) + 10, y: Y(v[1]) + 4 + k * 13, text: `${i + 1}: ${labels[i]}` }));
  });
  if (query) svg.append(s("path", { d: `M${X(query[0]) - 6},${Y(query[1])} l6,-6 l6,6 l-6,6 z`, fill: "#d0453a" }), s("text", { x: X(query[0]) - 8, y: Y(query[1]) - 9, "text-anchor": "end", text: "query" }));
  return svg;
}

// Steps [2]-[5] for a stored sentence; the query goes through the same ones as step [8].
function sentenceSteps(t, stage) {
  const st = (x) => stage || x;
  const n = (k) => (stage === "query" ? "[8]" : `[${k}]`);
  return [
    step(st("embedding"), `${n(2)} "${t.text}": tokens → vocabulary ids ${JSON.stringify(t.token_ids)} → word columns`, matrix("X", t.X, { cols: t.tokens, stage: st("embedding") })),
    step(
      st("encoding"),
      `${n(3)} encode: H = ReLU(W X + b)`,
      matrix("W", t.W, { stage: st("encoding") }),
      matrix("X", t.X, { cols: t.tokens, stage: st("embedding") }),
      op("+"),
      matrix("b", column(t.b), { stage: st("encoding") }),
      op("="),
      matrix("W X + b", t.Z, { cols: t.tokens, stage: st("encoding") }),
      op("→"),
      matrix("H = ReLU", t.H, { cols: t.tokens, stage: st("encoding") }),
    ),
    step(
      st("indexing"),
      stage === "query" ? "[8] mean pooling over the words, then the 2-d query vector = P × mean" : "[4] mean pooling over the words, [5] the 2-d index vector = P × mean",
      matrix("H", t.H, { cols: t.tokens, stage: st("encoding") }),
      op("→"),
      matrix("mean", column(t.pooled), { stage: st("encoding") }),
      matrix("P", t.P, { stage: st("indexing") }),
      op("="),
      matrix("vector", column(t.index_vector), { stage: st("indexing") }),
    ),
  ];
}

function draw(w) {
  const stored = w.dot_products.stored_vectors;
  const nearestIndex = w.nearest.point_id - 1;
  const half = Math.ceil(w.vocabulary.length / 2);
  return [
    step("", "[1] the dataset: three sentences", h("ol", {}, w.dataset.map((d) => h("li", { text: d })))),
    step(
      "embedding",
      "[2] word embeddings: one 4-d column per word of the 22-word vocabulary",
      matrix(`E, words 1-${half}`, w.word_embeddings.map((r) => r.slice(0, half)), { cols: w.vocabulary.slice(0, half), stage: "embedding" }),
      matrix(`E, words ${half + 1}-${w.vocabulary.length}`, w.word_embeddings.map((r) => r.slice(half)), { cols: w.vocabulary.slice(half), stage: "embedding" }),
    ),
    h("h2", { text: `Sentence 1: "${w.sentences[0].text}"` }),
    ...sentenceSteps(w.sentences[0]),
    step(
      "encoding",
      "[6] the same steps for the other sentences",
      ...w.sentences.slice(1).map((t) => h("div", {}, h("div", { class: "muted", text: `"${t.text}"` }), matrix("X", t.X, { cols: t.tokens, stage: "embedding" }), matrix("H", t.H, { cols: t.tokens, stage: "encoding" }), matrix("mean", column(t.pooled), { stage: "encoding" }), matrix("vector", column(t.index_vector), { stage: "indexing" }))),
    ),
    step("indexing", "[7] the index: the 2-d vectors, stored as points of a collection", matrix("V", stored, { cols: ["x", "y"], rowNames: ["1", "2", "3"], stage: "indexing" }), plot(stored, w.dataset)),
    h("h2", { text: `The query: "${w.query}"` }),
    ...sentenceSteps(w.query_trace, "query"),
    step(
      "query",
      "[9] dot products: the stored vectors times the query vector",
      matrix("V", stored, { rowNames: ["1", "2", "3"], stage: "indexing" }),
      matrix("q", column(w.dot_products.query_vector), { stage: "query" }),
      op("="),
      matrix("V q", column(w.dot_products.scores), { rowNames: ["1", "2", "3"], stage: "query" }),
      h("p", { class: "muted", text: `computed by Quiver's ${w.dot_products.computed_by}` }),
    ),
    step(
      "query",
      "[10] the nearest neighbour by linear scan",
      h("p", {}, "Nearest: point ", String(w.nearest.point_id), ", ", h("strong", { id: "nearest", text: w.nearest.text }), ` (score ${fmt.num(w.nearest.score, 2)})`),
      plot(stored, w.dataset, w.dot_products.query_vector, nearestIndex),
    ),
  ];
}

export async function render(main) {
  const query = h("input", { id: "byhand-query", size: 30, value: sessionStorage.getItem("quiver-byhand") || "am I you" });
  const out = h("div", { id: "byhand-out" });
  const vocab = h("p", { class: "muted" });
  const run = async () => {
    main.dataset.ready = "false";
    clear(out);
    try {
      const w = await get(`/walkthrough?query=${enc(query.value)}`);
      sessionStorage.setItem("quiver-byhand", query.value);
      vocab.textContent = `Vocabulary: ${w.vocabulary.join(" ")}`;
      out.append(...draw(w));
    } catch (e) {
      out.append(errorBox(e));
    }
    main.dataset.ready = "true";
  };
  const form = h("form", { class: "panel row" }, h("label", { for: "byhand-query", text: "Query" }), query, h("button", { type: "submit", text: "Compute" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run();
  });
  main.append(h("h1", { text: "Vector database by hand" }), h("p", { class: "muted", text: "Every matrix of the exercise, computed by the server: the classroom model turns each sentence into a 2-d vector, a real collection stores them, and its exact search answers the query." }), form, vocab, out);
  await run();
}
