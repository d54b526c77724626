//! `quiver bench ...`: timing harnesses that go through the public library API, so the numbers
//! are what a user of the library gets. The comparison with other engines lives in `bench/`.

use anyhow::{bail, Result};
use clap::Args;
use quiver::{npy, CollectionConfig, Database, Metric, Point, SearchRequest};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct ExactArgs {
    /// Base vectors, a float32 .npy matrix (ids are row numbers).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors, a float32 .npy matrix.
    #[arg(long)]
    queries: PathBuf,
    #[arg(long, default_value = "cosine")]
    metric: String,
    #[arg(short = 'k', long, default_value_t = 10)]
    k: usize,
    /// Run only the first N queries one at a time (the batch always runs all).
    #[arg(long)]
    single_queries: Option<usize>,
    /// Also run the single queries from this many threads at once and report their combined
    /// rate (what a server with this many workers could do at most).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Reopen the collection from disk before searching (measures the layout recovery builds).
    #[arg(long)]
    reopen: bool,
    /// Write the result ids of the single and batched runs as int64 .npy files here.
    #[arg(long)]
    ids_out: Option<PathBuf>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn hit_ids(hits: &[quiver::ScoredPoint], k: usize) -> Vec<i64> {
    let mut out: Vec<i64> = hits
        .iter()
        .map(|h| match h.id {
            quiver::PointId::Num(n) => n as i64,
            quiver::PointId::Uuid(_) => -1,
        })
        .collect();
    out.resize(k, -1);
    out
}

pub fn exact(args: &ExactArgs) -> Result<()> {
    let metric: Metric = args.metric.parse()?;
    let base = npy::read(&args.base)?;
    let queries = npy::read(&args.queries)?;
    if base.cols != queries.cols {
        bail!("base has {} columns, queries {}", base.cols, queries.cols);
    }
    let tmp = std::env::temp_dir().join(format!("quiver-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<serde_json::Value> {
        let db = Database::open(&tmp)?;
        let c = db.create_collection("bench", CollectionConfig::new(base.cols, metric))?;
        let points: Vec<Point> = base
            .data
            .chunks(base.cols)
            .enumerate()
            .map(|(i, v)| Point::new(i as u64, v.to_vec()))
            .collect();
        let t0 = Instant::now();
        c.upsert(points)?;
        let upsert_s = t0.elapsed().as_secs_f64();
        let (_db, c) = if args.reopen {
            drop(c);
            drop(db);
            let db = Database::open(&tmp)?;
            let c = db.collection("bench")?;
            (db, c)
        } else {
            (db, c)
        };

        let n_single = args.single_queries.unwrap_or(queries.rows).min(queries.rows);
        let mut latencies_us = Vec::with_capacity(n_single);
        let mut single_ids = Vec::with_capacity(n_single * args.k);
        // One thread: searches of one query never spawn work, so this loop is single-threaded.
        let t0 = Instant::now();
        for q in queries.data.chunks(queries.cols).take(n_single) {
            let mut req = SearchRequest::new(q.to_vec(), args.k);
            req.with_payload = false;
            let t = Instant::now();
            let hits = c.search(&req)?;
            latencies_us.push(t.elapsed().as_secs_f64() * 1e6);
            single_ids.extend(hit_ids(&hits, args.k));
        }
        let single_s = t0.elapsed().as_secs_f64();
        latencies_us.sort_by(f64::total_cmp);

        let concurrent_qps = if args.concurrency > 1 {
            let t0 = Instant::now();
            std::thread::scope(|scope| -> Result<()> {
                let workers: Vec<_> = (0..args.concurrency)
                    .map(|t| {
                        let c = &c;
                        let queries = &queries;
                        scope.spawn(move || -> Result<()> {
                            for q in queries.data.chunks(queries.cols).take(n_single).skip(t).step_by(args.concurrency) {
                                let mut req = SearchRequest::new(q.to_vec(), args.k);
                                req.with_payload = false;
                                c.search(&req)?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().expect("bench worker panicked")?;
                }
                Ok(())
            })?;
            Some(n_single as f64 / t0.elapsed().as_secs_f64())
        } else {
            None
        };

        let reqs: Vec<SearchRequest> = queries
            .data
            .chunks(queries.cols)
            .map(|q| {
                let mut r = SearchRequest::new(q.to_vec(), args.k);
                r.with_payload = false;
                r
            })
            .collect();
        let t0 = Instant::now();
        let batch = c.search_batch(&reqs)?;
        let batch_s = t0.elapsed().as_secs_f64();
        let batch_ids: Vec<i64> = batch.iter().flat_map(|h| hit_ids(h, args.k)).collect();
        if let Some(dir) = &args.ids_out {
            std::fs::create_dir_all(dir)?;
            npy::write(&dir.join("quiver_single_ids.npy"), &npy::encode_i64(n_single, args.k, &single_ids))?;
            npy::write(
                &dir.join("quiver_batch_ids.npy"),
                &npy::encode_i64(queries.rows, args.k, &batch_ids),
            )?;
        }
        Ok(json!({
            "engine": "quiver",
            "isa": quiver::kernel_isa(),
            "n_base": base.rows, "dim": base.cols, "metric": metric.name(), "k": args.k,
            "upsert_s": upsert_s, "upsert_points_per_s": base.rows as f64 / upsert_s,
            "single_queries": n_single, "single_qps": n_single as f64 / single_s,
            "single_p50_us": percentile(&latencies_us, 0.5), "single_p99_us": percentile(&latencies_us, 0.99),
            "concurrency": args.concurrency, "concurrent_qps": concurrent_qps,
            "batch_queries": queries.rows, "batch_s": batch_s, "batch_qps": queries.rows as f64 / batch_s,
            "threads": rayon_threads(),
        }))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{}", result?);
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[derive(Args)]
pub struct EmbedArgs {
    /// Texts, one per line.
    #[arg(long)]
    file: PathBuf,
    /// A sentence-transformers model folder (default: the usual search).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed passes over the texts (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Write the embeddings as a float32 .npy (for agreement checks).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn embed(args: &EmbedArgs) -> Result<()> {
    use quiver_embed::Embedder;
    let model = quiver_embed::MiniLm::load(&quiver_embed::find_model(args.model.as_deref())?)?;
    let text = std::fs::read_to_string(&args.file)?;
    let lines: Vec<&str> = text.lines().collect();
    let batch = args.batch.max(1);
    let n_tokens: usize = lines.iter().map(|l| model.tokenize(l).map(|(_, ids)| ids.len()).unwrap_or(0)).sum();
    let mut times = Vec::new();
    let mut vectors = Vec::new();
    for _ in 0..args.repeats.max(1) {
        vectors.clear();
        let t0 = Instant::now();
        for chunk in lines.chunks(batch) {
            vectors.extend(model.embed(chunk)?);
        }
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    if let Some(out) = &args.out {
        npy::write(out, &npy::encode_f32(vectors.len(), model.dim(), &vectors.concat()))?;
    }
    println!(
        "{}",
        json!({"engine": "quiver", "texts": lines.len(), "batch": batch, "mean_tokens": n_tokens as f64 / lines.len().max(1) as f64,
               "median_s": median, "texts_per_s": lines.len() as f64 / median, "threads": rayon_threads()})
    );
    Ok(())
}
