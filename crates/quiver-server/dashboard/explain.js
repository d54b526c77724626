// Explain: the steps `quiver explain` prints, drawn: tokens and ids, the token-embedding
// matrix as a heat map, the pooled and query vectors, the search plan, the winners' scores.

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

export async function render(main, [wanted]) {
  const names = await collectionNames();
  main.append(h("h1", { text: "Explain a query" }));
  if (!names.length) return main.append(h("p", { class: "muted", text: "No collections yet." }));
  const name = names.includes(wanted) ? wanted : chosenCollection(names);
  const c = await info(name);
  const textual = Boolean(c.quiver_embedder);
  const query = h("input", { id: "explain-query", size: 60, placeholder: textual ? "a text query" : "a vector: [0.1, 0.2, ...]" });
  const limit = h("input", { type: "number", min: 1, max: 100, value: 5 });
  const out = h("div", { id: "explain-out" });
  const form = h("form", { class: "panel row" }, query, h("label", {}, "limit ", limit), h("button", { type: "submit", text: "Explain" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(out);
    main.dataset.ready = "false";
    try {
      const body = textual ? { text: query.value } : { vector: parseJson(query.value) };
      body.limit = Number(limit.value) || 5;
      out.append(...draw(await post(`/collections/${enc(name)}/explain`, body)));
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
