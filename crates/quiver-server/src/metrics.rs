//! `GET /metrics` in Prometheus' text format: requests by route and status, a latency histogram
//! per route, and collection gauges (points, segments, payload indexes) read at scrape time.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_S: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS_S.len()],
    sum_s: f64,
    n: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) -> count
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (method, route) -> latency histogram
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
}

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let mut lat = self.latency.lock().expect("metrics lock");
        let h = lat.entry((method.to_string(), route.to_string())).or_default();
        for (i, b) in BUCKETS_S.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum_s += secs;
        h.n += 1;
    }

    /// Renders the exposition text; `state` supplies the collection gauges.
    pub fn render(&self, state: &AppState) -> String {
        let mut out = String::new();
        out.push_str("# HELP quiver_http_requests_total HTTP requests by route and status.\n# TYPE quiver_http_requests_total counter\n");
        for ((m, r, s), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "quiver_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}");
        }
        out.push_str("# HELP quiver_http_request_duration_seconds Request latency by route.\n# TYPE quiver_http_request_duration_seconds histogram\n");
        for ((m, r), h) in self.latency.lock().expect("metrics lock").iter() {
            for (i, b) in BUCKETS_S.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "quiver_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "quiver_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"+Inf\"}} {}",
                h.n
            );
            let _ = writeln!(
                out,
                "quiver_http_request_duration_seconds_sum{{method=\"{m}\",route=\"{r}\"}} {}",
                h.sum_s
            );
            let _ = writeln!(
                out,
                "quiver_http_request_duration_seconds_count{{method=\"{m}\",route=\"{r}\"}} {}",
                h.n
            );
        }
        let names = state.db.list_collections().unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP quiver_collections Collections in the data folder.\n# TYPE quiver_collections gauge\nquiver_collections {}",
            names.len()
        );
        out.push_str("# HELP quiver_collection_points Points stored.\n# TYPE quiver_collection_points gauge\n");
        let mut segments = String::new();
        let mut indexes = String::new();
        let mut recall = String::new();
        let mut ef = String::new();
        for name in &names {
            if let Ok(c) = state.db.collection(name) {
                let info = c.info();
                let status = c.index_status();
                let _ = writeln!(ef, "quiver_collection_search_ef{{collection=\"{name}\"}} {}", status.ef);
                if let Some(r) = status.recall {
                    let _ = writeln!(
                        recall,
                        "quiver_collection_estimated_recall{{collection=\"{name}\",ef=\"{}\"}} {:.4}",
                        r.ef, r.recall
                    );
                }
                let _ = writeln!(out, "quiver_collection_points{{collection=\"{name}\"}} {}", info.points);
                let _ = writeln!(segments, "quiver_collection_segments{{collection=\"{name}\"}} {}", info.segments);
                let _ = writeln!(
                    indexes,
                    "quiver_collection_payload_indexes{{collection=\"{name}\"}} {}",
                    info.payload_indexes.len()
                );
            }
        }
        out.push_str("# HELP quiver_collection_segments Segment files.\n# TYPE quiver_collection_segments gauge\n");
        out.push_str(&segments);
        out.push_str("# HELP quiver_collection_payload_indexes Payload indexes (built in memory, always ready).\n# TYPE quiver_collection_payload_indexes gauge\n");
        out.push_str(&indexes);
        out.push_str("# HELP quiver_collection_search_ef The list size a top-10 search that names no ef uses now.\n# TYPE quiver_collection_search_ef gauge\n");
        out.push_str(&ef);
        out.push_str("# HELP quiver_collection_estimated_recall Recall@k of the index at that ef, measured on sampled searches against exact search.\n# TYPE quiver_collection_estimated_recall gauge\n");
        out.push_str(&recall);
        out
    }
}

/// Middleware: times every request and counts it under its route template.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let (status, seconds) = (resp.status().as_u16(), start.elapsed().as_secs_f64());
    state.metrics.observe(&method, &route, status, seconds);
    // One line per request: the access log.
    tracing::info!(target: "quiver::access", "{method} {path} {status} {:.1} ms", seconds * 1e3);
    resp
}
