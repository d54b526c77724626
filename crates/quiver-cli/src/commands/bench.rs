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
    /// cosine | dot | euclid | manhattan
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Neighbours per query.
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
        // No graph: a background build would share the cores with the exact searches measured.
        let mut config = CollectionConfig::new(base.cols, metric);
        config.index.enabled = false;
        let c = db.create_collection("bench", config)?;
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
            req.exact = true;
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
                                req.exact = true;
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
                r.exact = true;
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
    #[command(flatten)]
    model: super::ModelDirArg,
    /// Texts per call to the model.
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
    let precision = args.model.precision.unwrap_or_default();
    let model = quiver_embed::MiniLm::load_with(&quiver_embed::find_model(args.model.get())?, precision)?;
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
        json!({"engine": "quiver", "precision": precision.name(), "products": model.products(), "texts": lines.len(), "batch": batch, "mean_tokens": n_tokens as f64 / lines.len().max(1) as f64,
               "median_s": median, "texts_per_s": lines.len() as f64 / median, "threads": rayon_threads()})
    );
    Ok(())
}

#[derive(Args)]
pub struct AnnArgs {
    /// Base vectors, a float32 .npy matrix (ids are row numbers).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors, a float32 .npy matrix.
    #[arg(long)]
    queries: PathBuf,
    /// True neighbours (int .npy, queries x >= k) for recall.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// cosine | dot | euclid | manhattan
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Neighbours per query.
    #[arg(short = 'k', long, default_value_t = 10)]
    k: usize,
    /// `hnsw` or `flat` (exact scan).
    #[arg(long, default_value = "hnsw")]
    index: String,
    #[arg(long, default_value_t = 16)]
    m: usize,
    #[arg(long, default_value_t = 200)]
    ef_construct: usize,
    /// `none`, `int8` or `binary`.
    #[arg(long, default_value = "none")]
    quantization: String,
    /// Rescore this many times k candidates at full precision (quantized indexes; default: every
    /// candidate of the ef list).
    #[arg(long)]
    oversampling: Option<f32>,
    /// Comma-separated search list sizes.
    #[arg(long, default_value = "10,20,40,80,160,320", value_delimiter = ',')]
    ef: Vec<usize>,
    /// Build threads (searches always run one query at a time on one thread).
    #[arg(long)]
    threads: Option<usize>,
    /// Write each setting's result ids as int64 .npy (queries x k) here.
    #[arg(long)]
    ids_out: Option<PathBuf>,
    /// Save the built index to this file, and report the time to load it back.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Renumber the graph's nodes in breadth-first order after building (cache locality).
    #[arg(long)]
    reorder: bool,
    /// Load a saved index (from --save) instead of building one.
    #[arg(long, conflicts_with = "save")]
    load: Option<PathBuf>,
    /// Filtered search through a real collection, at these shares of matching points (a
    /// payload `bucket = id % 1000` with an integer index; the filter is `bucket < share*1000`).
    /// Reports QPS, recall against the exact filtered answer, and the QPS of an unfiltered exact
    /// scan of the same collection for comparison. Runs the first --filtered-queries queries.
    #[arg(long, value_delimiter = ',')]
    filtered: Vec<f64>,
    #[arg(long, default_value_t = 2000)]
    filtered_queries: usize,
    /// Print JSON lines (the default output is also JSON lines; kept for symmetry).
    #[arg(long)]
    json: bool,
}

/// Reads an index written by `--save`: sections, each prefixed by its length.
fn load_index(path: &std::path::Path) -> Result<quiver_index::Hnsw> {
    let bytes = std::fs::read(path)?;
    let mut parts = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        if rest.len() < 8 {
            bail!("{} is truncated", path.display());
        }
        let (len, tail) = rest.split_at(8);
        let len = u64::from_le_bytes(len.try_into()?) as usize;
        if tail.len() < len {
            bail!("{} is truncated", path.display());
        }
        let (part, tail) = tail.split_at(len);
        parts.push(part);
        rest = tail;
    }
    Ok(quiver_index::Hnsw::from_sections(&parts)?)
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

pub fn ann(args: &AnnArgs) -> Result<()> {
    use quiver_index::{HnswParams, Quantization, Scratch};
    use quiver_kernels::{scan_top_k, Allowed};
    let metric: Metric = args.metric.parse()?;
    let kind = metric.score_kind();
    let Some(quant) = Quantization::parse(&args.quantization) else {
        bail!("--quantization must be none, int8 or binary")
    };
    if !matches!(args.index.as_str(), "hnsw" | "flat") {
        bail!("--index must be hnsw or flat");
    }
    let mut base = npy::read(&args.base)?;
    let mut queries = npy::read(&args.queries)?;
    if base.cols != queries.cols {
        bail!("base has {} columns, queries {}", base.cols, queries.cols);
    }
    let dim = base.cols;
    if metric == Metric::Cosine {
        base.data.chunks_mut(dim).for_each(|r| {
            quiver_kernels::normalize(r);
        });
        queries.data.chunks_mut(dim).for_each(|r| {
            quiver_kernels::normalize(r);
        });
    }
    let gt = match &args.gt {
        Some(p) => Some(npy::read_i64(p)?),
        None => None,
    };
    let k = args.k.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or_else(rayon_threads))
        .build()?;
    let rss0 = rss_bytes();
    let t0 = Instant::now();
    let index = (args.index == "hnsw" && args.load.is_none()).then(|| {
        let params = HnswParams {
            m: args.m,
            ef_construct: args.ef_construct,
            ..HnswParams::default()
        };
        pool.install(|| quiver_index::build(dim, kind, quant, params, &base.data))
    });

    let build_s = t0.elapsed().as_secs_f64();
    let rss1 = rss_bytes();
    let mut load_s = None;
    let index = match (&args.save, index) {
        (Some(path), Some(index)) => {
            let sections = index.to_sections();
            let mut out = Vec::new();
            for s in &sections {
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s);
            }
            std::fs::write(path, out)?;
            drop(index);
            let t = Instant::now();
            let loaded = load_index(path)?;
            load_s = Some(t.elapsed().as_secs_f64());
            Some(loaded)
        }
        (_, index) => match &args.load {
            Some(path) => {
                let t = Instant::now();
                let loaded = load_index(path)?;
                load_s = Some(t.elapsed().as_secs_f64());
                Some(loaded)
            }
            None => index,
        },
    };
    let mut index = index;
    let t_reorder = Instant::now();
    let mut order: Option<Vec<u32>> = None;
    if args.reorder {
        if let Some(ix) = &mut index {
            order = Some(ix.reorder());
        }
    }
    let reorder_s = order.as_ref().map(|_| t_reorder.elapsed().as_secs_f64());
    let to_row = |node: u32| order.as_ref().map_or(node, |o| o[node as usize]);
    let efs: Vec<usize> = if index.is_some() { args.ef.clone() } else { vec![0] };
    let all = vec![u64::MAX; base.rows.div_ceil(64)];
    let mut scratch = Scratch::new();
    for ef in efs {
        let mut lat = Vec::with_capacity(queries.rows);
        let mut ids: Vec<i64> = Vec::with_capacity(queries.rows * k);
        let t0 = Instant::now();
        for q in queries.data.chunks(dim) {
            let t = Instant::now();
            let hits = match &index {
                Some(index) => {
                    let mut hits = index.search(q, ef.max(k), None, &mut scratch);
                    if !index.codes().is_exact() {
                        let keep = args.oversampling.map_or(hits.len(), |o| ((k as f32 * o).ceil() as usize).max(k));
                        hits.truncate(keep);
                        for h in &mut hits {
                            let r = to_row(h.row) as usize;
                            let row = &base.data[r * dim..(r + 1) * dim];
                            h.score = kind.score(q, row);
                        }
                        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
                    }
                    hits.truncate(k);
                    hits
                }
                None => scan_top_k(kind, q, &base.data, dim, Allowed::Mask(&all), k),
            };
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            let start = ids.len();
            ids.extend(hits.iter().map(|h| to_row(h.row) as i64));
            ids.resize(start + k, -1);
        }
        let secs = t0.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        let recall = gt.as_ref().map(|gt| {
            let mut found = 0usize;
            for (qi, got) in ids.chunks(k).enumerate() {
                let truth = &gt.data[qi * gt.cols..qi * gt.cols + k.min(gt.cols)];
                found += got.iter().filter(|g| truth.contains(g)).count();
            }
            found as f64 / (queries.rows * k.min(gt.cols)) as f64
        });
        if let Some(dir) = &args.ids_out {
            std::fs::create_dir_all(dir)?;
            let name = match &index {
                Some(_) => format!("quiver_{}_{}_ef{ef}.npy", args.index, quant.name()),
                None => "quiver_flat.npy".to_string(),
            };
            npy::write(&dir.join(name), &npy::encode_i64(queries.rows, k, &ids))?;
        }
        println!(
            "{}",
            json!({
                "engine": "quiver", "index": args.index, "quantization": quant.name(),
                "m": args.m, "ef_construct": args.ef_construct, "ef": ef, "k": k,
                "n_base": base.rows, "dim": dim, "threads": pool.current_num_threads(),
                "build_s": build_s, "load_s": load_s, "reorder_s": reorder_s,
                "qps": queries.rows as f64 / secs, "recall": recall,
                "p50_us": percentile(&lat, 0.5), "p99_us": percentile(&lat, 0.99),
                "index_bytes": index.as_ref().map(|i| i.memory_bytes()),
                "rss_build_delta_bytes": rss0.zip(rss1).map(|(a, b)| b.saturating_sub(a)),
                "isa": quiver::kernel_isa(),
            })
        );
    }
    if !args.filtered.is_empty() {
        drop(index);
        filtered_runs(args, metric, quant, &base, &queries)?;
    }
    Ok(())
}

/// QPS, the result ids per query, graph searches, mean distances per graph search.
type FilteredRun = (f64, Vec<Vec<quiver::PointId>>, usize, Option<usize>);

/// The filtered-search part of `bench ann`: everything through `Collection::search`.
fn filtered_runs(
    args: &AnnArgs,
    metric: Metric,
    quant: quiver_index::Quantization,
    base: &npy::Matrix,
    queries: &npy::Matrix,
) -> Result<()> {
    let dim = base.cols;
    let tmp = std::env::temp_dir().join(format!("quiver-bench-ann-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<()> {
        let db = Database::open(&tmp)?;
        let mut config = CollectionConfig::new(dim, metric);
        config.index = quiver::IndexConfig {
            m: args.m,
            ef_construct: args.ef_construct,
            ef: args.ef.first().copied().unwrap_or(64),
            full_scan_threshold: 0,
            quantization: quant,
            ..quiver::IndexConfig::default()
        };
        let c = db.create_collection("filtered", config)?;
        c.create_payload_index("bucket", quiver::PayloadIndexType::Integer)?;
        let t0 = Instant::now();
        for (chunk_no, chunk) in base.data.chunks(dim * 50_000).enumerate() {
            let points: Vec<Point> = chunk
                .chunks(dim)
                .enumerate()
                .map(|(i, v)| {
                    let id = chunk_no * 50_000 + i;
                    let mut p = quiver::Payload::new();
                    p.insert("bucket".into(), json!(id % 1000));
                    Point::new(id as u64, v.to_vec()).with_payload(p)
                })
                .collect();
            c.upsert(points)?;
        }
        c.wait_for_index();
        c.build_index()?;
        let build_s = t0.elapsed().as_secs_f64();
        let nq = args.filtered_queries.min(queries.rows);
        let qs: Vec<&[f32]> = queries.data.chunks(dim).take(nq).collect();
        let k = args.k.max(1);
        let run = |filter: Option<&quiver::Filter>, exact: bool| -> Result<FilteredRun> {
            let mut out = Vec::with_capacity(nq);
            let mut graph = 0;
            let mut dist = 0;
            let t = Instant::now();
            for q in &qs {
                let mut req = SearchRequest::new(q.to_vec(), k);
                req.with_payload = false;
                req.filter = filter.cloned();
                req.exact = exact;
                let (hits, path) = c.search_explained(&req)?;
                if let quiver::SearchPath::Graph { distances, .. } = path {
                    graph += 1;
                    dist += distances;
                }
                out.push(hits.into_iter().map(|h| h.id).collect());
            }
            Ok((nq as f64 / t.elapsed().as_secs_f64(), out, graph, dist.checked_div(graph)))
        };
        let (flat_qps, _, _, _) = run(None, true)?;
        for &share in &args.filtered {
            let limit = (share * 1000.0).round() as i64;
            let filter = quiver::Filter::from_json(&json!({"must": [{"key": "bucket", "range": {"lt": limit}}]}))?;
            let (exact_qps, truth, _, _) = run(Some(&filter), true)?;
            let (qps, got, graph, mean_distances) = run(Some(&filter), false)?;
            let mut found = 0;
            let mut total = 0;
            let mut short = 0;
            for (g, t) in got.iter().zip(&truth) {
                found += t.iter().filter(|x| g.contains(x)).count();
                total += t.len();
                short += (g.len() < t.len()) as usize;
            }
            println!(
                "{}",
                json!({
                    "engine": "quiver", "filter_share": share, "k": k, "queries": nq, "ef": args.ef.first(),
                    "quantization": quant.name(), "upsert_and_index_s": build_s,
                    "qps": qps, "recall": found as f64 / total.max(1) as f64, "short_results": short,
                    "graph_searches": graph, "mean_graph_distances": mean_distances, "exact_filtered_qps": exact_qps, "exact_unfiltered_qps": flat_qps,
                    "speedup_vs_exact_scan": qps / flat_qps,
                })
            );
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

#[derive(Args)]
pub struct RetrievalArgs {
    /// A text collection filled by `quiver ingest`.
    collection: String,
    /// JSON lines: {"question", "source" (a suffix of the chunk's source path), "answer" (text the
    /// relevant chunk contains)}.
    #[arg(long)]
    questions: PathBuf,
    /// Recall is measured at this depth.
    #[arg(short = 'k', long, default_value_t = 5)]
    k: usize,
    #[command(flatten)]
    model: super::ModelDirArg,
}

/// Recall@k and MRR@k of dense, BM25 and hybrid retrieval on a question set: a retrieved chunk
/// is relevant when it comes from the question's source and contains its answer text.
pub fn retrieval(db: &Database, args: &RetrievalArgs) -> Result<()> {
    use quiver_embed::Embedder;
    let c = db.collection(&args.collection)?;
    let model = super::text::collection_embedder(&c, &args.model)?;
    let text = std::fs::read_to_string(&args.questions)?;
    let qs: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let k = args.k.max(1);
    let mut totals = [(0.0f64, 0.0f64); 3];
    for q in &qs {
        let (Some(question), Some(source), Some(answer)) = (q["question"].as_str(), q["source"].as_str(), q["answer"].as_str()) else {
            bail!("each question needs question, source and answer: {q}");
        };
        let v = model.embed(&[question])?.pop().unwrap_or_default();
        let req = SearchRequest::new(v, k);
        let rankings = [
            c.search(&req)?,
            c.search_text(question, None, k, None, quiver::With::PAYLOAD)?,
            c.hybrid(&req, question, &quiver::Fusion::default(), quiver::collection::hybrid_depth(k))?,
        ];
        for (t, hits) in totals.iter_mut().zip(&rankings) {
            let rank = hits.iter().position(|h| {
                let p = h.payload.as_ref();
                let src = p.and_then(|p| p.get("source")).and_then(|s| s.as_str()).unwrap_or("");
                let doc = p.and_then(|p| p.get("document")).and_then(|s| s.as_str()).unwrap_or("");
                src.ends_with(source) && doc.contains(answer)
            });
            if let Some(r) = rank {
                t.0 += 1.0;
                t.1 += 1.0 / (r + 1) as f64;
            }
        }
    }
    let n = qs.len().max(1) as f64;
    for (name, (hits, rr)) in ["dense", "bm25", "hybrid"].iter().zip(totals) {
        println!(
            "{}",
            json!({"method": name, "questions": qs.len(), "k": k, "recall_at_k": hits / n, "mrr_at_k": rr / n})
        );
    }
    Ok(())
}
