// The dashboard's shell: asks for the API key when the server wants one, hides write controls
// from a read-only key, and shows one page at a time (the part of the address after '#').

import { session, setKey, get, ApiError } from "./api.js";
import { clear, errorBox, h } from "./ui.js";
import * as collections from "./collections.js";
import * as points from "./points.js";
import * as search from "./search.js";
import * as explain from "./explain.js";
import * as byhand from "./byhand.js";
import * as map from "./map.js";
import * as metrics from "./metrics.js";

const PAGES = { collections, points, search, explain, byhand, map, metrics };
let leave = null;

// What the current key may do; asks for a key until the server accepts one.
async function checkAccess(reason) {
  const a = await get("/dashboard/api/access");
  session.auth = a.auth;
  if (a.access === "none") {
    return askKey(reason || (session.key ? "The key given was refused: try another." : "This server asks for an API key."));
  }
  session.access = a.access;
  document.body.classList.toggle("read-only", a.access === "read_only");
  document.getElementById("access").textContent = !a.auth ? "no API key set" : a.access === "read_only" ? "read-only key" : "full-access key";
}

function askKey(reason) {
  const dialog = document.getElementById("key-dialog");
  document.getElementById("key-reason").textContent = reason;
  return new Promise((resolve) => {
    const form = document.getElementById("key-form");
    form.onsubmit = (ev) => {
      ev.preventDefault();
      setKey(document.getElementById("key-input").value);
      dialog.close();
      resolve(checkAccess());
    };
    if (!dialog.open) dialog.showModal();
  });
}

async function show() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] ? name : "collections";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  if (leave) leave();
  leave = null;
  const main = clear(document.getElementById("main"));
  main.dataset.page = page;
  main.dataset.ready = "false";
  try {
    leave = (await PAGES[page].render(main, rest.map(decodeURIComponent))) || null;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      await checkAccess("The server refused the key: give it again.");
      return show();
    }
    main.append(errorBox(e));
  }
  main.dataset.ready = "true";
}

async function start() {
  try {
    await checkAccess();
  } catch (e) {
    clear(document.getElementById("main")).append(h("h1", { text: "Quiver" }), errorBox(e));
    return;
  }
  window.addEventListener("hashchange", show);
  await show();
}

start();
