//! `quiver bench payload` and `quiver bench multistage`: the Query API's costs. Facet counts
//! and `order_by` answered from payload indexes beside the scan a client (or an engine without
//! such indexes) would do; a two-stage query (an approximate prefetch on the int8 graph, then
//! full-precision rescoring of its candidates) beside the single-stage search, with recall
//! against the true neighbours. One JSON line each; medians of repeated runs.

use super::*;
use quiver::{
    CollectionConfig, IndexConfig, Metric, PayloadIndexType, Point, QueryStage, QueryVector, ScrollRequest, SearchRequest, StageQuery,
};
use serde_json::json;
use std::collections::HashMap;
use std::time::Instant;

#[derive(Args)]
pub struct PayloadArgs {
    /// Points in the collection.
    #[arg(long, default_value_t = 1_000_000)]
    pub points: usize,
    /// Distinct values of the faceted keyword.
    #[arg(long, default_value_t = 50)]
    pub values: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub repeat: usize,
}

#[derive(Args)]
pub struct MultistageArgs {
    /// Base vectors, a float32 .npy matrix.
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors, a float32 .npy matrix.
    #[arg(long)]
    pub queries: PathBuf,
    /// True neighbours (int .npy, queries x >= k).
    #[arg(long)]
    pub gt: PathBuf,
    /// cosine | dot | euclid
    #[arg(long, default_value = "cosine")]
    pub metric: String,
    #[arg(short = 'k', long, default_value_t = 10)]
    pub k: usize,
    /// Queries timed (the first N).
    #[arg(long, default_value_t = 2000)]
    pub queries_max: usize,
    /// Candidates the first stage hands to the rescoring stage (comma-separated).
    #[arg(long, default_value = "20,50,100")]
    pub prefetch: String,
    /// The graph's search list size of the first stage.
    #[arg(long, default_value_t = 64)]
    pub ef: usize,
    /// `int8` or `binary` codes for the graph.
    #[arg(long, default_value = "int8")]
    pub quantization: String,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn temp_db(tag: &str) -> Result<(PathBuf, Database)> {
    let tmp = std::env::temp_dir().join(format!("quiver-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let db = Database::open(&tmp)?;
    Ok((tmp, db))
}

pub fn payload(a: &PayloadArgs) -> Result<()> {
    let (tmp, db) = temp_db("payload")?;
    let result = (|| -> Result<serde_json::Value> {
        let c = db.create_collection("bench", CollectionConfig::new(4, Metric::Dot))?;
        // Deterministic payloads: a keyword of `values` values (skewed) and an integer price.
        let mut x: u64 = 42;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        for start in (0..a.points).step_by(50_000) {
            let points: Vec<Point> = (start..(start + 50_000).min(a.points))
                .map(|i| {
                    let r = next();
                    let color = format!("c{}", (r % a.values as u64) * (r % 3) % a.values as u64);
                    let mut p = Point::new(i as u64, vec![1.0, 0.0, 0.0, 0.0]);
                    p.payload = Some(
                        serde_json::json!({"color": color, "price": (next() % 100_000) as i64})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    );
                    p
                })
                .collect();
            c.upsert(points)?;
        }
        c.create_payload_index("color", PayloadIndexType::Keyword)?;
        c.create_payload_index("price", PayloadIndexType::Integer)?;
        let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
            let mut ms = Vec::with_capacity(a.repeat);
            for _ in 0..a.repeat {
                let t = Instant::now();
                f()?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok(median(ms))
        };
        // Scans: every payload read through scroll pages, as a client without these indexes does.
        let scan = |f: &mut dyn FnMut(&quiver::Payload)| -> Result<()> {
            let mut offset = None;
            loop {
                let page = c.scroll(&ScrollRequest {
                    offset,
                    limit: 10_000,
                    filter: None,
                    with_payload: true,
                    with_vector: false,
                })?;
                for r in &page.points {
                    if let Some(p) = &r.payload {
                        f(p);
                    }
                }
                match page.next_offset {
                    Some(o) => offset = Some(o),
                    None => return Ok(()),
                }
            }
        };
        let mut facet_top = Vec::new();
        let facet_index_ms = time(&mut || {
            facet_top = c.facet("color", None, 10)?;
            Ok(())
        })?;
        let mut scan_top: Vec<(String, u64)> = Vec::new();
        let facet_scan_ms = time(&mut || {
            let mut counts: HashMap<String, u64> = HashMap::new();
            scan(&mut |p| {
                if let Some(v) = p.get("color").and_then(|v| v.as_str()) {
                    *counts.entry(v.to_string()).or_default() += 1;
                }
            })?;
            let mut v: Vec<(String, u64)> = counts.into_iter().collect();
            v.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            v.truncate(10);
            scan_top = v;
            Ok(())
        })?;
        let same_facets = facet_top
            .iter()
            .map(|(v, n)| (v.as_str().unwrap_or("").to_string(), *n))
            .collect::<Vec<_>>()
            == scan_top;
        let req = ScrollRequest {
            offset: None,
            limit: 10,
            filter: None,
            with_payload: false,
            with_vector: false,
        };
        let mut top_index = Vec::new();
        let order_index_ms = time(&mut || {
            top_index = c
                .scroll_ordered(&req, "price", true, None)?
                .into_iter()
                .map(|(_, v)| v as i64)
                .collect();
            Ok(())
        })?;
        let mut top_scan = Vec::new();
        let order_scan_ms = time(&mut || {
            let mut prices = Vec::with_capacity(a.points);
            scan(&mut |p| {
                if let Some(v) = p.get("price").and_then(|v| v.as_i64()) {
                    prices.push(v);
                }
            })?;
            prices.sort_unstable_by(|x, y| y.cmp(x));
            prices.truncate(10);
            top_scan = prices;
            Ok(())
        })?;
        Ok(json!({
            "bench": "payload", "points": a.points, "repeat": a.repeat,
            "facet_index_ms": facet_index_ms, "facet_scan_ms": facet_scan_ms, "facet_speedup": facet_scan_ms / facet_index_ms,
            "facet_answers_equal": same_facets,
            "order_by_index_ms": order_index_ms, "order_by_scan_ms": order_scan_ms, "order_by_speedup": order_scan_ms / order_index_ms,
            "order_by_answers_equal": top_index == top_scan,
            "kernel_isa": quiver::kernel_isa(),
        }))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{}", result?);
    Ok(())
}

pub fn multistage(a: &MultistageArgs) -> Result<()> {
    let metric: Metric = a.metric.parse()?;
    let base = quiver::npy::read(&a.base)?;
    let queries = quiver::npy::read(&a.queries)?;
    let gt = quiver::npy::read_i64(&a.gt)?;
    let (tmp, db) = temp_db("multistage")?;
    let result = (|| -> Result<serde_json::Value> {
        let mut config = CollectionConfig::new(base.cols, metric);
        let quantization = match a.quantization.as_str() {
            "int8" => quiver::Quantization::Int8,
            "binary" => quiver::Quantization::Binary,
            other => bail!("--quantization must be int8 or binary, got {other:?}"),
        };
        config.index = IndexConfig {
            quantization,
            full_scan_threshold: 1000,
            target_recall: 0.0,
            ..IndexConfig::default_for(metric)
        };
        let c = db.create_collection("bench", config)?;
        let points: Vec<Point> = base
            .data
            .chunks(base.cols)
            .enumerate()
            .map(|(i, v)| Point::new(i as u64, v.to_vec()))
            .collect();
        c.upsert(points)?;
        let t = Instant::now();
        c.build_index()?;
        let build_s = t.elapsed().as_secs_f64();
        let n = a.queries_max.min(queries.rows);
        let recall = |hits: &[Vec<u64>]| -> f64 {
            let mut found = 0usize;
            for (qi, h) in hits.iter().enumerate() {
                let truth: Vec<u64> = gt.data[qi * gt.cols..qi * gt.cols + a.k].iter().map(|&x| x as u64).collect();
                found += h.iter().filter(|id| truth.contains(id)).count();
            }
            found as f64 / (hits.len() * a.k) as f64
        };
        let ids = |hits: Vec<quiver::ScoredPoint>| {
            hits.into_iter()
                .map(|h| h.id.to_string().parse::<u64>().unwrap_or(u64::MAX))
                .collect::<Vec<u64>>()
        };
        let with = quiver::With {
            payload: false,
            vector: false,
        };
        let mut rows = Vec::new();
        // Single stage: the graph walk (int8 codes, candidates rescored inside the index).
        let mut hits = Vec::with_capacity(n);
        let t = Instant::now();
        for q in queries.data.chunks(queries.cols).take(n) {
            let mut req = SearchRequest::new(q.to_vec(), a.k);
            req.with_payload = false;
            req.ef = Some(a.ef);
            hits.push(ids(c.search(&req)?));
        }
        let s = t.elapsed().as_secs_f64();
        rows.push(json!({"plan": "single stage", "ef": a.ef, "recall": recall(&hits), "qps": n as f64 / s}));
        for pf in a
            .prefetch
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()?
        {
            let mut hits = Vec::with_capacity(n);
            let t = Instant::now();
            for q in queries.data.chunks(queries.cols).take(n) {
                let mut first = QueryStage::nearest(QueryVector::Dense(q.to_vec()), pf);
                first.ef = Some(a.ef.max(pf));
                let stage = QueryStage {
                    prefetch: vec![first],
                    query: Some(StageQuery::Nearest(QueryVector::Dense(q.to_vec()))),
                    ..QueryStage::nearest(QueryVector::Dense(Vec::new()), a.k)
                };
                hits.push(ids(c.query(&stage, 0, with)?));
            }
            let s = t.elapsed().as_secs_f64();
            rows.push(json!({"plan": format!("prefetch {pf} ({}) + full-precision rescoring", a.quantization), "ef": a.ef.max(pf), "recall": recall(&hits), "qps": n as f64 / s}));
        }
        Ok(
            json!({"bench": "multistage", "points": base.rows, "queries": n, "k": a.k, "build_s": build_s, "runs": rows, "kernel_isa": quiver::kernel_isa()}),
        )
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{}", result?);
    Ok(())
}
