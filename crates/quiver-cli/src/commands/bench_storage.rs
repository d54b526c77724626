//! `quiver bench collection`: what an existing collection costs to open and to search, as the
//! process that serves it sees it: open time (manifest, segments, WAL, index file), resident
//! memory after opening and after searching (anonymous and file-backed), the collection's
//! footprint by component, and per `ef` the queries per second (one thread, one query at a
//! time) and recall@k against exact search. Run it inside a memory cgroup to measure a
//! collection larger than its memory (`bench/on_disk.sh` does).

use super::*;
use quiver::{PointId, SearchRequest};
use serde_json::json;
use std::time::Instant;

#[derive(Args)]
pub struct CollectionBenchArgs {
    /// The collection (in --data-dir).
    pub collection: String,
    /// Query vectors, a float32 .npy matrix.
    #[arg(long)]
    pub queries: PathBuf,
    /// True neighbours (int .npy of point ids, queries x >= k); computed by exact search when
    /// absent (and written to --save-truth if given).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Where to write the true neighbours computed here.
    #[arg(long)]
    pub save_truth: Option<PathBuf>,
    #[arg(short = 'k', long, default_value_t = 10)]
    pub k: usize,
    /// The graph's search list sizes to measure (comma-separated).
    #[arg(long, default_value = "16,32,64,128,256")]
    pub ef: String,
    /// Passes over the queries per `ef`; the first warms the caches, the median of the
    /// others is reported.
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
    /// Use only the first N queries.
    #[arg(long)]
    pub queries_max: Option<usize>,
}

/// Resident memory of this process from /proc/self/status: (total, anonymous, file-backed).
fn resident() -> serde_json::Value {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    json!({"rss_bytes": kb("VmRSS:"), "anon_bytes": kb("RssAnon:"), "file_bytes": kb("RssFile:")})
}

fn id_num(id: &PointId) -> i64 {
    match id {
        PointId::Num(n) => *n as i64,
        PointId::Uuid(_) => -1,
    }
}

pub fn collection(ctx: &Ctx, a: &CollectionBenchArgs) -> Result<()> {
    let queries = quiver::npy::read(&a.queries)?;
    let k = a.k;
    let start = Instant::now();
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    let open_s = start.elapsed().as_secs_f64();
    let after_open = resident();
    let qs: Vec<Vec<f32>> = (0..queries.rows)
        .map(|i| queries.data[i * queries.cols..(i + 1) * queries.cols].to_vec())
        .collect();

    let truth: Vec<Vec<i64>> = match &a.truth {
        Some(p) => {
            let t = quiver::npy::read_i64(p)?;
            if t.cols < k || t.rows < qs.len() {
                bail!(
                    "{}: {} x {} does not cover {} queries at k {k}",
                    p.display(),
                    t.rows,
                    t.cols,
                    qs.len()
                );
            }
            (0..qs.len()).map(|i| t.data[i * t.cols..i * t.cols + k].to_vec()).collect()
        }
        None => {
            let reqs: Vec<SearchRequest> = qs
                .iter()
                .map(|q| {
                    let mut r = SearchRequest::new(q.clone(), k);
                    r.exact = true;
                    r.with_payload = false;
                    r
                })
                .collect();
            let hits = c.search_batch(&reqs)?;
            let t: Vec<Vec<i64>> = hits.iter().map(|h| h.iter().map(|p| id_num(&p.id)).collect()).collect();
            if let Some(p) = &a.save_truth {
                let flat: Vec<i64> = t
                    .iter()
                    .flat_map(|r| r.iter().copied().chain(std::iter::repeat(-1)).take(k))
                    .collect();
                quiver::npy::write(p, &quiver::npy::encode_i64(t.len(), k, &flat))?;
            }
            t
        }
    };

    let mut rows = Vec::new();
    for ef in a.ef.split(',') {
        let ef: usize = ef.trim().parse().map_err(|_| anyhow::anyhow!("--ef: {ef:?} is not a number"))?;
        let mut times = Vec::new();
        let mut found = 0usize;
        for pass in 0..a.passes.max(2) {
            let t0 = Instant::now();
            let mut hit = 0usize;
            for (q, t) in qs.iter().zip(&truth) {
                let mut r = SearchRequest::new(q.clone(), k);
                r.ef = Some(ef);
                r.with_payload = false;
                let res = c.search(&r)?;
                hit += res.iter().filter(|p| t.contains(&id_num(&p.id))).count();
            }
            if pass > 0 {
                times.push(t0.elapsed().as_secs_f64());
            }
            found = hit;
        }
        times.sort_by(f64::total_cmp);
        let secs = times[times.len() / 2];
        rows.push(json!({
            "ef": ef,
            "qps": qs.len() as f64 / secs,
            "recall": found as f64 / (qs.len() * k) as f64,
        }));
    }
    let f = c.footprint();
    let components: serde_json::Map<String, serde_json::Value> = f
        .components
        .iter()
        .map(|c| (c.name.to_string(), json!({"memory_bytes": c.memory, "disk_bytes": c.disk})))
        .collect();
    let out = json!({
        "bench": "collection",
        "collection": a.collection,
        "points": c.len(),
        "dim": c.dim(),
        "vectors_on_disk": f.vectors_on_disk,
        "open_s": open_s,
        "resident_after_open": after_open,
        "resident_after_search": resident(),
        "footprint": components,
        "k": k,
        "queries": qs.len(),
        "runs": rows,
    });
    println!("{out}");
    Ok(())
}
