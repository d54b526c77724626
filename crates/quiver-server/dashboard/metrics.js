// Metrics: the server's own counters: requests, errors, latency percentiles by route, and
// points and requests over time. Refreshed every 10 seconds while the page is open.

import { get } from "./api.js";
import { h, s, clear, errorBox, fmt } from "./ui.js";

function chart(id, title, series) {
  const W = 520;
  const H = 160;
  const pad = 34;
  const svg = s("svg", { id, width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  svg.append(s("rect", { x: 0, y: 0, width: W, height: H, fill: "#fff", stroke: "#dde2ea" }));
  if (series.length === 0) return h("div", { class: "panel" }, h("h3", { text: title }), svg);
  const t0 = series[0][0];
  const t1 = Math.max(series[series.length - 1][0], t0 + 1);
  const vmax = Math.max(1, ...series.map((p) => p[1]));
  const X = (t) => pad + ((t - t0) / (t1 - t0)) * (W - pad - 10);
  const Y = (v) => H - 20 - (v / vmax) * (H - 40);
  svg.append(s("text", { x: 4, y: 14, text: fmt.int(vmax) }), s("text", { x: 4, y: H - 22, text: "0" }), s("text", { x: W - 120, y: H - 4, text: `last ${Math.round(t1 - t0)} s` }));
  svg.append(s("polyline", { points: series.map(([t, v]) => `${X(t).toFixed(1)},${Y(v).toFixed(1)}`).join(" "), fill: "none", stroke: "#1f6feb", "stroke-width": 2 }));
  for (const [t, v] of series) svg.append(s("circle", { cx: X(t), cy: Y(v), r: 2.5, fill: "#1f6feb" }));
  return h("div", { class: "panel" }, h("h3", { text: title }), svg);
}

function card(label, value) {
  return h("div", { class: "card" }, h("div", { class: "v", text: value }), h("div", { class: "l", text: label }));
}

async function draw(out) {
  const m = await get("/dashboard/api/metrics");
  const routes = [...m.routes].sort((a, b) => b.requests - a.requests);
  clear(out).append(
    h("div", { class: "cards", id: "metric-cards" }, card("requests", fmt.int(m.requests)), card("errors (4xx, 5xx)", fmt.int(m.errors)), card("p50 latency", fmt.ms(m.latency.p50_ms)), card("p95 latency", fmt.ms(m.latency.p95_ms)), card("p99 latency", fmt.ms(m.latency.p99_ms)), card("up", `${Math.round(m.uptime_s)} s`)),
    h(
      "div",
      { class: "cols" },
      chart("points-chart", "Points over time", m.history.map((x) => [x.time, x.points])),
      chart("requests-chart", "Requests over time (cumulative)", m.history.map((x) => [x.time, x.requests])),
    ),
    h("h2", { text: "By route (latency over the last requests)" }),
    h(
      "table",
      { id: "routes" },
      h("thead", {}, h("tr", {}, ["method", "route", "requests", "errors", "p50", "p95", "p99", "max"].map((t) => h("th", { text: t })))),
      h(
        "tbody",
        {},
        routes.map((r) => h("tr", {}, h("td", { text: r.method }), h("td", { text: r.route }), h("td", { class: "num", text: fmt.int(r.requests) }), h("td", { class: "num", text: fmt.int(r.errors) }), ...["p50_ms", "p95_ms", "p99_ms", "max_ms"].map((k) => h("td", { class: "num", text: r.latency.samples ? fmt.ms(r.latency[k]) : "–" })))),
      ),
    ),
  );
}

export async function render(main) {
  const out = h("div", { id: "metrics-out" });
  main.append(h("h1", { text: "Metrics" }), h("p", { class: "muted", text: "From the server's own counters (also at /metrics in Prometheus' format)." }), out);
  await draw(out);
  const timer = setInterval(() => draw(out).catch((e) => clear(out).append(errorBox(e))), 10000);
  return () => clearInterval(timer);
}
