//! `GET /metrics` in Prometheus' text format: requests by route and status, a latency histogram
//! per route, and collection gauges (points, segments, payload indexes) read at scrape time.
//! The dashboard reads the same numbers as JSON ([`Metrics::summary`]): latency percentiles by
//! route from the last [`RECENT_MAX`] requests, and points and requests over time (one sample
//! every [`HISTORY_EVERY`] at most, taken as requests arrive, the last [`HISTORY_MAX`] kept).
//! Sampling on requests, not on a timer, loses nothing: points change only through requests
//! (the server holds the data folder's lock), and a timer thread holding the database would
//! outlive the server by up to one period.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Latencies kept for the percentiles (most recent first out).
pub const RECENT_MAX: usize = 4096;
/// Samples of points and requests over time kept (an hour at one each 10 s).
pub const HISTORY_MAX: usize = 360;
/// At most one sample this often.
pub const HISTORY_EVERY: Duration = Duration::from_secs(10);

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_S: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS_S.len()],
    sum_s: f64,
    n: u64,
}

/// One sample of the history.
#[derive(Clone, Copy, Debug)]
struct Sample {
    unix_s: f64,
    points: u64,
    requests: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) -> count
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (method, route) -> latency histogram
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// The last requests: (method, route, seconds).
    recent: Mutex<VecDeque<(String, String, f64)>>,
    history: Mutex<(Option<Instant>, VecDeque<Sample>)>,
    started: std::sync::OnceLock<Instant>,
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The `q` quantile (0 to 1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl Metrics {
    /// When the server started counting.
    pub fn start(&self) {
        self.started.get_or_init(Instant::now);
    }

    /// Adds a sample of points and requests if the last one is older than [`HISTORY_EVERY`]
    /// (or `force`).
    pub fn sample(&self, state: &AppState, force: bool) {
        {
            let h = self.history.lock().expect("metrics lock");
            if !force && h.0.is_some_and(|t| t.elapsed() < HISTORY_EVERY) {
                return;
            }
        }
        let points: u64 = state
            .db
            .list_collections()
            .unwrap_or_default()
            .iter()
            .filter_map(|n| state.db.collection(n).ok())
            .map(|c| c.len() as u64)
            .sum();
        let requests: u64 = self.requests.lock().expect("metrics lock").values().sum();
        let mut h = self.history.lock().expect("metrics lock");
        h.0 = Some(Instant::now());
        if h.1.len() == HISTORY_MAX {
            h.1.pop_front();
        }
        h.1.push_back(Sample {
            unix_s: unix_now(),
            points,
            requests,
        });
    }

    /// The dashboard's view: totals, latency percentiles by route (milliseconds, over the last
    /// requests), and the history.
    pub fn summary(&self, state: &AppState) -> serde_json::Value {
        use serde_json::json;
        self.sample(state, true);
        let counts = self.requests.lock().expect("metrics lock").clone();
        let mut by_route: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for ((m, r, status), n) in &counts {
            let e = by_route.entry((m.clone(), r.clone())).or_default();
            e.0 += n;
            if *status >= 400 {
                e.1 += n;
            }
        }
        let mut recent: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        let mut all = Vec::new();
        for (m, r, s) in self.recent.lock().expect("metrics lock").iter() {
            recent.entry((m.clone(), r.clone())).or_default().push(*s * 1e3);
            all.push(*s * 1e3);
        }
        let pcts = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            json!({"p50_ms": quantile(v, 0.5), "p95_ms": quantile(v, 0.95), "p99_ms": quantile(v, 0.99), "max_ms": v.last().copied().unwrap_or(0.0), "samples": v.len()})
        };
        let routes: Vec<serde_json::Value> = by_route
            .iter()
            .map(|((m, r), (n, errors))| {
                let mut v = recent.remove(&(m.clone(), r.clone())).unwrap_or_default();
                json!({"method": m, "route": r, "requests": n, "errors": errors, "latency": pcts(&mut v)})
            })
            .collect();
        let history: Vec<serde_json::Value> = self
            .history
            .lock()
            .expect("metrics lock")
            .1
            .iter()
            .map(|s| json!({"time": s.unix_s, "points": s.points, "requests": s.requests}))
            .collect();
        json!({
            "uptime_s": self.started.get().map_or(0.0, |t| t.elapsed().as_secs_f64()),
            "requests": counts.values().sum::<u64>(),
            "errors": counts.iter().filter(|((_, _, s), _)| *s >= 400).map(|(_, n)| n).sum::<u64>(),
            "latency": pcts(&mut all),
            "routes": routes,
            "history": history,
        })
    }

    fn history_due(&self) -> bool {
        self.history
            .lock()
            .expect("metrics lock")
            .0
            .is_none_or(|t| t.elapsed() >= HISTORY_EVERY)
    }

    fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        {
            let mut recent = self.recent.lock().expect("metrics lock");
            if recent.len() == RECENT_MAX {
                recent.pop_front();
            }
            recent.push_back((method.to_string(), route.to_string(), secs));
        }
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
        let mut remote = String::new();
        for name in &names {
            if let Ok(c) = state.db.collection(name) {
                if let Some(r) = c.remote_status() {
                    let _ = writeln!(
                        remote,
                        "quiver_storage_log_entry{{collection=\"{name}\",role=\"{}\"}} {}",
                        r.role, r.entry
                    );
                    let _ = writeln!(
                        remote,
                        "quiver_storage_error{{collection=\"{name}\"}} {}",
                        u8::from(r.error.is_some())
                    );
                    if let (Some(total), Some(present)) = (r.base_bytes, r.base_present_bytes) {
                        let _ = writeln!(
                            remote,
                            "quiver_storage_base_present_ratio{{collection=\"{name}\"}} {:.4}",
                            present as f64 / total.max(1) as f64
                        );
                    }
                    if let Some(s) = r.staleness_ms {
                        let _ = writeln!(
                            remote,
                            "quiver_storage_staleness_seconds{{collection=\"{name}\"}} {:.3}",
                            s as f64 / 1e3
                        );
                    }
                    for (q, v) in [("0.5", r.ack_p50_ms), ("0.99", r.ack_p99_ms)] {
                        if let Some(v) = v {
                            let _ = writeln!(
                                remote,
                                "quiver_storage_ack_seconds{{collection=\"{name}\",quantile=\"{q}\"}} {:.4}",
                                v / 1e3
                            );
                        }
                    }
                }
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
        if !remote.is_empty() {
            out.push_str("# HELP quiver_storage_log_entry On object storage: the last log entry written (writer) or applied (replica); quiver_storage_staleness_seconds: time since a replica last read the log to its end; quiver_storage_ack_seconds: a writer's recent acknowledgement latency; quiver_storage_error: 1 while talking to the store fails; quiver_storage_base_present_ratio: the share of a replica's base segment in its cache during a lazy cold start.\n# TYPE quiver_storage_log_entry gauge\n");
            out.push_str(&remote);
        }
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
    if state.metrics.history_due() {
        let s = state.clone();
        // Counting points reads every collection's handle: off the async workers.
        tokio::task::spawn_blocking(move || s.metrics.sample(&s, false));
    }
    // One line per request: the access log.
    tracing::info!(target: "quiver::access", "{method} {path} {status} {:.1} ms", seconds * 1e3);
    resp
}
