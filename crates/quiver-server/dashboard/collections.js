// Collections: every collection with its points, vectors, segments, index, memory and disk,
// payload indexes; create and drop (hidden from a read-only key).

import { info, collectionNames, put, del, enc } from "./api.js";
import { h, fmt, errorBox, clear } from "./ui.js";

function vectorsOf(config) {
  const out = [];
  const v = config.params.vectors || {};
  if (typeof v.size === "number") out.push(`(unnamed) ${v.size} ${v.distance}${v.on_disk ? ", on disk" : ""}`);
  else for (const [n, s] of Object.entries(v)) out.push(`${n}: ${s.size} ${s.distance}${s.multivector_config ? ", multi" : ""}`);
  for (const n of Object.keys(config.params.sparse_vectors || {})) out.push(`${n}: sparse`);
  return out;
}

function row(name, i, onDrop) {
  const idx = i.quiver_index || {};
  const st = i.quiver_storage || {};
  const indexText =
    idx.nodes !== undefined
      ? `${fmt.int(idx.nodes)} in graph${idx.unindexed_points ? `, ${fmt.int(idx.unindexed_points)} scanned exactly` : ""}`
      : "–";
  const recall = idx.estimated_recall !== null && idx.estimated_recall !== undefined ? `recall ≈ ${fmt.num(idx.estimated_recall, 3)} at ef ${idx.ef}` : `ef ${idx.ef ?? "–"}`;
  const schema = Object.entries(i.payload_schema || {});
  return h(
    "tr",
    { "data-collection": name },
    h("td", {}, h("a", { href: `#/points/${enc(name)}`, text: name }), i.quiver_embedder ? h("div", { class: "muted", text: `text: ${i.quiver_embedder}` }) : null),
    h("td", {}, h("span", { class: `badge status-${i.status}`, text: i.status === "yellow" ? "building" : i.status === "red" ? "damaged" : "ready" })),
    h("td", { class: "num", text: fmt.int(i.points_count) }),
    h("td", {}, vectorsOf(i.config).map((t) => h("div", { text: t }))),
    h("td", { class: "num", text: fmt.int(i.segments_count) }),
    h("td", {}, h("div", { text: indexText }), h("div", { class: "muted", text: recall })),
    h("td", { class: "num", text: fmt.bytes(st.memory_bytes) }),
    h("td", { class: "num", text: fmt.bytes(st.disk_bytes) }),
    h("td", {}, schema.length ? schema.map(([k, s]) => h("span", { class: "badge", text: `${k}: ${s.data_type}` })) : h("span", { class: "muted", text: "none" })),
    h("td", { class: "write" }, h("button", { class: "danger", onclick: () => onDrop(name), text: "Drop" })),
  );
}

function createForm(onCreated) {
  const name = h("input", { id: "new-name", placeholder: "name", required: true, pattern: "[A-Za-z0-9_\\-]+" });
  const size = h("input", { id: "new-size", type: "number", min: 1, max: 65536, value: 384 });
  const distance = h("select", { id: "new-distance" }, ["Cosine", "Dot", "Euclid", "Manhattan"].map((d) => h("option", { text: d })));
  const text = h("input", { id: "new-embedder", type: "checkbox" });
  const onDisk = h("input", { id: "new-on-disk", type: "checkbox" });
  const msg = h("span");
  text.addEventListener("change", () => {
    if (text.checked) {
      size.value = 384;
      distance.value = "Cosine";
    }
    size.disabled = text.checked;
  });
  const form = h(
    "form",
    { class: "panel row write", id: "create-form" },
    h("strong", { text: "New collection" }),
    name,
    h("label", {}, "size ", size),
    h("label", {}, "distance ", distance),
    h("label", {}, text, " text (all-MiniLM-L6-v2)"),
    h("label", {}, onDisk, " vectors on disk"),
    h("button", { type: "submit", text: "Create" }),
    msg,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(msg);
    const body = { vectors: { size: Number(size.value), distance: distance.value, on_disk: onDisk.checked } };
    if (text.checked) body.embedder = "all-minilm-l6-v2";
    try {
      await put(`/collections/${enc(name.value)}`, body);
      onCreated();
    } catch (e) {
      msg.append(errorBox(e));
    }
  });
  return form;
}

export async function render(main) {
  const body = h("tbody");
  const refresh = async () => {
    const names = await collectionNames();
    const infos = await Promise.all(names.map((n) => info(n).catch((e) => e)));
    clear(body);
    names.forEach((n, k) => {
      if (infos[k] instanceof Error) body.append(h("tr", {}, h("td", { text: n }), h("td", { colspan: 9 }, errorBox(infos[k]))));
      else body.append(row(n, infos[k], drop));
    });
    if (!names.length) body.append(h("tr", {}, h("td", { colspan: 10, class: "muted", text: "No collections yet." })));
  };
  const drop = async (name) => {
    if (!window.confirm(`Drop collection ${name} and all its points?`)) return;
    await del(`/collections/${enc(name)}`);
    await refresh();
  };
  main.append(
    h("h1", { text: "Collections" }),
    createForm(refresh),
    h(
      "table",
      { id: "collections" },
      h(
        "thead",
        {},
        h("tr", {}, ["name", "status", "points", "vectors", "segments", "index", "memory", "disk", "payload indexes"].map((t) => h("th", { text: t, class: ["points", "segments", "memory", "disk"].includes(t) ? "num" : null })), h("th", { class: "write" })),
      ),
      body,
    ),
  );
  await refresh();
}
