// Explain: the steps `quiver explain` prints, drawn: tokens and ids, the token-embedding
// matrix as a heat map, the pooled and query vectors, the search plan, the winners' scores;
// for a sparse query, each index's value, IDF, weight and posting list, and the winners.

import { collectionNames, info, post, enc } from "./api.js";
import { h, clear, errorBox, fmt, heatMap, heatStrip, bars, collectionPicker, chosenCollection, parseJson } from "./ui.js";

function step(stage, title, ...body) {
  return h("section", { class: `step ${stage}` }, h("h3", { text: title }), ...body);
}

function draw(r) {
  const out = [];
  if (r.tokens) {
    out.push(
      step("embedding", `[1] tokens (${r.tokens.length}) and their vocabulary ids`, h("div", { id: "tokens" }, r.tokens.map((t, i) => h("span", { class: "chip" }, t, h("small", { text: r.token_ids[i] }))))),
      step(
        "encoding",
        `[2]-[3] token embeddings after ${r.encoder_layers} encoder layers: ${r.token_embeddings_shape[0]} × ${r.token_embeddings_shape[1]}`,
        h("div", { class: "row" }, h("div", {}, r.tokens.map((t) => h("div", { class: "muted", text: t })).map((d) => {
          d.style.height = "14px";
          d.style.fontSize = "11px";
          d.style.lineHeight = "14px";
          return d;
        })), heatMap(r.token_embeddings, { cell: 2 })),
        h("p", { class: "muted", text: "One row per token, one column per dimension; red positive, blue negative." }),
      ),
      step("encoding", `[4] mean pooling: the sentence embedding (norm ${fmt.num(r.pooled_norm)})`, heatStrip(r.pooled, { width: 768 })),
    );
  }
  out.push(step("query", `[5] the query vector${r.tokens ? " (normalised)" : ""}: ${r.dim} values`, heatStrip(r.query_vector, { width: 768 })));
  const plan = r.plan;
  const planRows =
    plan.kind === "graph"
      ? [["path", "HNSW graph"], ["m", plan.m], ["ef", plan.ef], ["codes", plan.codes], ["distances on codes", fmt.int(plan.distances)], ["rescored at full precision", fmt.int(plan.rescored)], ["points not yet in the graph, scanned", fmt.int(plan.tail)]]
      : [["path", "exact scan"], ["why", plan.reason], ["points scored", fmt.int(plan.scored)]];
  out.push(
    step(
      "indexing",
      "[6]-[9] the search plan",
      h("p", { id: "plan", text: r.search_path }),
      h("table", {}, planRows.map(([k, v]) => h("tr", {}, h("th", { text: k }), h("td", { text: v })))),
      h("p", { class: "muted", text: `${fmt.int(r.points)} points, ${fmt.int(r.distances_computed)} distances computed, ${fmt.ms(r.search_ms)}${r.embed_ms !== undefined ? `; embedding ${fmt.ms(r.embed_ms)}` : ""}` }),
      r.recall_vs_exact !== null && r.recall_vs_exact !== undefined ? h("p", { text: `checked against an exact scan: recall ${fmt.num(r.recall_vs_exact, 2)} (target ${r.target_recall})` }) : null,
    ),
  );
  out.push(
    step(
      "query",
      `[10] the winners (${r.metric})`,
      h("div", { id: "winners" }, bars(r.results.map((x) => ({ label: `${fmt.id(x.id)}  ${typeof x.document === "string" ? x.document.slice(0, 80) : ""}`, value: x.score })))),
    ),
  );
  return out;
}

// A sparse query's steps, as `quiver explain --using` prints them.
function drawSparse(r) {
  const max = r.terms.reduce((m, t) => Math.max(m, Math.abs(t.weight)), 0) || 1;
  const weightBar = (w) => {
    const b = h("div", { class: "bar" });
    b.style.width = `${Math.max(2, (Math.abs(w) / max) * 200)}px`;
    return b;
  };
  return [
    step(
      "query",
      `[1] the sparse query on "${r.using}": ${r.terms.length} indices over ${fmt.int(r.points_with_vector)} points holding the vector`,
      h(
        "table",
        { id: "terms" },
        h("thead", {}, h("tr", {}, ["index", "value", "idf", "weight", "", "points", "postings", "read"].map((t) => h("th", { text: t })))),
        h(
          "tbody",
          {},
          r.terms.map((t) =>
            h("tr", {}, h("td", { class: "num", text: t.index }), h("td", { class: "num", text: fmt.num(t.value) }), h("td", { class: "num", text: t.idf === null ? "–" : fmt.num(t.idf) }), h("td", { class: "num", text: fmt.num(t.weight) }), h("td", {}, weightBar(t.weight)), h("td", { class: "num", text: fmt.int(t.points) }), h("td", { class: "num", text: fmt.int(t.postings) }), h("td", { text: t.postings === 0 ? "absent" : t.read_in_full ? "in full" : "lookups only (pruned)" })),
          ),
        ),
      ),
    ),
    step("indexing", "[2] the inverted index, with MaxScore pruning", h("p", { id: "plan", text: `${fmt.int(r.entries_read)} posting entries read in full passes; ${r.candidates_after_pruning ? `${fmt.int(r.candidates_after_pruning)} candidates left when pruning stopped the full passes` : "every index read in full"}` })),
    step("query", "[3] the winners (dot product of the weights)", h("div", { id: "winners" }, bars(r.results.map((x) => ({ label: `${fmt.id(x.id)}  ${typeof x.document === "string" ? x.document.slice(0, 80) : ""}`, value: x.score }))))),
  ];
}

export async function render(main, [wanted]) {
  const names = await collectionNames();
  main.append(h("h1", { text: "Explain a query" }));
  if (!names.length) return main.append(h("p", { class: "muted", text: "No collections yet." }));
  const name = names.includes(wanted) ? wanted : chosenCollection(names);
  const c = await info(name);
  const textual = Boolean(c.quiver_embedder);
  const sparseNames = Object.keys(c.config.params.sparse_vectors || {});
  const hasDense = Object.keys(c.config.params.vectors || {}).length > 0;
  const kind = h(
    "select",
    { id: "explain-kind", "aria-label": "query kind" },
    textual ? h("option", { value: "text", text: "text" }) : null,
    hasDense ? h("option", { value: "vector", text: "dense vector" }) : null,
    sparseNames.map((n) => h("option", { value: `sparse:${n}`, text: `sparse: ${n}` })),
  );
  const placeholders = { text: "a text query", vector: "a vector: [0.1, 0.2, ...]" };
  const query = h("input", { id: "explain-query", size: 60 });
  const hint = () => {
    query.placeholder = placeholders[kind.value] || '{"indices": [1, 7], "values": [0.5, 1.0]}';
  };
  kind.addEventListener("change", hint);
  hint();
  const limit = h("input", { type: "number", min: 1, max: 100, value: 5 });
  const out = h("div", { id: "explain-out" });
  const form = h("form", { class: "panel row" }, kind, query, h("label", {}, "limit ", limit), h("button", { type: "submit", text: "Explain" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(out);
    main.dataset.ready = "false";
    try {
      const k = kind.value;
      const body = k === "text" ? { text: query.value } : k === "vector" ? { vector: parseJson(query.value) } : { using: k.slice("sparse:".length), sparse: parseJson(query.value) };
      body.limit = Number(limit.value) || 5;
      const r = await post(`/collections/${enc(name)}/explain`, body);
      out.append(...(r.kind === "sparse" ? drawSparse(r) : draw(r)));
    } catch (e) {
      out.append(errorBox(e));
    }
    main.dataset.ready = "true";
  });
  const picker = collectionPicker(names, name, (n) => {
    location.hash = `#/explain/${enc(n)}`;
  });
  main.append(h("div", { class: "row" }, "Collection ", picker, h("span", { class: "muted", text: textual ? `text collection (${c.quiver_embedder})` : "vector collection" })), form, out);
}
