// Search: a text query (collections with an embedder), a vector, a keyword (BM25) query or
// the hybrid of both, under a filter; for hybrid, the two rankings side by side and their
// fusion (each one a real query to the server).

import { collectionNames, info, post, enc } from "./api.js";
import { h, clear, errorBox, fmt, collectionPicker, chosenCollection, parseJson } from "./ui.js";

function hitsTable(title, hits, id) {
  return h(
    "div",
    { class: "panel" },
    h("h3", { text: title }),
    h(
      "table",
      { id, class: "hits" },
      h("thead", {}, h("tr", {}, ["#", "id", "score", "document / payload"].map((t) => h("th", { text: t })))),
      h(
        "tbody",
        {},
        hits.map((p, i) => {
          const doc = p.payload && typeof p.payload.document === "string" ? p.payload.document : JSON.stringify(p.payload || {});
          return h("tr", { "data-id": fmt.id(p.id) }, h("td", { text: i + 1 }), h("td", { text: fmt.id(p.id) }), h("td", { class: "num", text: fmt.num(p.score) }), h("td", { text: doc.length > 240 ? `${doc.slice(0, 240)}…` : doc }));
        }),
      ),
    ),
  );
}

export async function render(main, [wanted]) {
  const names = await collectionNames();
  main.append(h("h1", { text: "Search" }));
  if (!names.length) return main.append(h("p", { class: "muted", text: "No collections yet." }));
  let name = names.includes(wanted) ? wanted : chosenCollection(names);
  const c = await info(name);
  const textual = Boolean(c.quiver_embedder);
  const hasText = Object.values(c.payload_schema || {}).some((s) => s.data_type === "text");
  const mode = h(
    "select",
    { id: "mode" },
    textual ? h("option", { value: "text", text: "text (embedded by the collection's model)" }) : null,
    h("option", { value: "vector", text: "vector (JSON array)" }),
    hasText ? h("option", { value: "keyword", text: "keyword (BM25 on the text index)" }) : null,
    textual && hasText ? h("option", { value: "hybrid", text: "hybrid (text + keyword, RRF)" }) : null,
  );
  const query = h("input", { id: "query", size: 60, placeholder: textual ? "a question or some words" : "[0.1, 0.2, ...]" });
  const limit = h("input", { id: "limit", type: "number", min: 1, max: 100, value: 10 });
  const filterBox = h("textarea", { id: "search-filter", rows: 2, placeholder: "filter (optional)", spellcheck: "false" });
  const out = h("div", { id: "results" });
  const form = h("form", { class: "panel" }, h("div", { class: "row" }, mode, query, h("label", {}, "limit ", limit), h("button", { type: "submit", id: "run", text: "Search" })), filterBox);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(out);
    main.dataset.ready = "false";
    try {
      const filter = parseJson(filterBox.value);
      const k = Number(limit.value) || 10;
      const base = { limit: k, filter, with_payload: true };
      const path = `/collections/${enc(name)}/points/query`;
      const t = query.value;
      if (mode.value === "text") out.append(hitsTable("Nearest by meaning", (await post(path, { ...base, query: { text: t } })).points, "hits"));
      else if (mode.value === "vector") out.append(hitsTable("Nearest vectors", (await post(path, { ...base, query: parseJson(t) })).points, "hits"));
      else if (mode.value === "keyword") out.append(hitsTable("BM25", (await post(path, { ...base, query: t, using: "bm25" })).points, "hits"));
      else {
        const depth = Math.max(k * 3, 20);
        const [dense, keyword, fused] = await Promise.all([
          post(path, { ...base, limit: depth, query: { text: t } }),
          post(path, { ...base, limit: depth, query: t, using: "bm25" }),
          post(path, { ...base, prefetch: [{ query: { text: t }, limit: depth }, { query: t, using: "bm25", limit: depth }], query: { fusion: "rrf" } }),
        ]);
        out.append(h("div", { class: "cols" }, hitsTable("Dense ranking", dense.points.slice(0, k), "dense"), hitsTable("Keyword ranking (BM25)", keyword.points.slice(0, k), "keyword"), hitsTable("Fused (RRF)", fused.points, "hits")));
      }
    } catch (e) {
      out.append(errorBox(e));
    }
    main.dataset.ready = "true";
  });
  const picker = collectionPicker(names, name, (n) => {
    location.hash = `#/search/${enc(n)}`;
  });
  main.append(h("div", { class: "row" }, "Collection ", picker), form, out);
}
