// Points: a paged browser under a filter (Qdrant's JSON filter, checked by the server as you
// type), payloads as trees, vectors as heat strips; edit a payload, delete a point.

import { collectionNames, post, put, enc } from "./api.js";
import { h, clear, errorBox, tree, heatStrip, fmt, collectionPicker, chosenCollection, parseJson, debounce } from "./ui.js";

const PAGE = 20;

function vectorCells(p) {
  const v = p.vector;
  if (!v) return h("span", { class: "muted", text: "none" });
  if (Array.isArray(v)) return heatStrip(v, { title: `${v.length} values` });
  return Object.entries(v).map(([name, x]) =>
    h("div", {}, h("span", { class: "muted", text: `${name || "(unnamed)"} ` }), Array.isArray(x) && typeof x[0] === "number" ? heatStrip(x, { title: `${x.length} values` }) : h("span", { text: Array.isArray(x) ? `${x.length} rows` : "sparse" })),
  );
}

export async function render(main, [wanted]) {
  const names = await collectionNames();
  if (!names.length) {
    main.append(h("h1", { text: "Points" }), h("p", { class: "muted", text: "No collections yet." }));
    return;
  }
  let name = names.includes(wanted) ? wanted : chosenCollection(names);
  const filterBox = h("textarea", { id: "filter", rows: 3, placeholder: '{"must": [{"key": "lang", "match": {"value": "en"}}]}', spellcheck: "false" });
  const filterMsg = h("div", { id: "filter-message", class: "muted", text: "No filter: every point." });
  const body = h("tbody");
  const pager = h("div", { class: "row" });
  let offsets = [null];
  let filter = null;

  const check = async () => {
    clear(filterMsg);
    let f;
    try {
      f = parseJson(filterBox.value);
    } catch (e) {
      filterMsg.className = "error";
      filterMsg.textContent = `Not JSON: ${e.message}`;
      return false;
    }
    try {
      // The server's own parser answers: a one-point scroll under the filter.
      await post(`/collections/${enc(name)}/points/scroll`, { filter: f, limit: 1, with_payload: false });
      filterMsg.className = "ok";
      filterMsg.textContent = f ? "Filter accepted." : "No filter: every point.";
      filter = f;
      return true;
    } catch (e) {
      filterMsg.className = "error";
      filterMsg.textContent = e.message;
      return false;
    }
  };

  const load = async (page) => {
    const r = await post(`/collections/${enc(name)}/points/scroll`, { filter, limit: PAGE, offset: offsets[page], with_payload: true, with_vector: true });
    offsets[page + 1] = r.next_page_offset;
    clear(body);
    for (const p of r.points) body.append(pointRow(p));
    if (!r.points.length) body.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: "No points match." })));
    clear(pager).append(
      h("button", { class: "secondary", disabled: page === 0, onclick: () => load(page - 1), text: "← previous" }),
      h("span", { class: "muted", text: `page ${page + 1}` }),
      h("button", { class: "secondary", id: "next-page", disabled: r.next_page_offset === null || r.next_page_offset === undefined, onclick: () => load(page + 1), text: "next →" }),
    );
    main.dataset.points = String(r.points.length);
  };

  const pointRow = (p) => {
    const payloadCell = h("td", {}, tree(p.payload || {}, 1));
    const edit = () => {
      const box = h("textarea", { rows: 6 });
      box.value = JSON.stringify(p.payload || {}, null, 2);
      const msg = h("div");
      const save = async () => {
        try {
          const payload = parseJson(box.value) || {};
          await put(`/collections/${enc(name)}/points/payload`, { payload, points: [p.id] });
          p.payload = payload;
          clear(payloadCell).append(tree(payload, 1));
        } catch (e) {
          clear(msg).append(errorBox(e));
        }
      };
      clear(payloadCell).append(box, h("div", { class: "row" }, h("button", { onclick: save, text: "Save payload" }), h("button", { class: "secondary", onclick: () => clear(payloadCell).append(tree(p.payload || {}, 1)), text: "Cancel" })), msg);
    };
    const remove = async () => {
      if (!window.confirm(`Delete point ${fmt.id(p.id)}?`)) return;
      await post(`/collections/${enc(name)}/points/delete`, { points: [p.id] });
      tr.remove();
    };
    const tr = h(
      "tr",
      { "data-id": fmt.id(p.id) },
      h("td", { text: fmt.id(p.id) }),
      payloadCell,
      h("td", {}, vectorCells(p)),
      h("td", { class: "write" }, h("button", { class: "secondary", onclick: edit, text: "Edit payload" }), " ", h("button", { class: "danger", onclick: remove, text: "Delete" })),
    );
    return tr;
  };

  filterBox.addEventListener("input", debounce(async () => {
    if (await check()) {
      offsets = [null];
      await load(0);
    }
  }, 350));

  const picker = collectionPicker(names, name, async (n) => {
    name = n;
    location.hash = `#/points/${enc(n)}`;
  });
  main.append(
    h("h1", {}, "Points in ", picker),
    h("div", { class: "panel" }, h("label", { for: "filter", text: "Filter (Qdrant's JSON filter)" }), filterBox, filterMsg),
    h("table", { id: "points" }, h("thead", {}, h("tr", {}, ["id", "payload", "vectors"].map((t) => h("th", { text: t })), h("th", { class: "write" }))), body),
    pager,
  );
  await load(0);
}
