//! `quiver bench sparse`: BM25 as sparse vectors (weights from client-side term frequencies,
//! IDF from the collection, as Qdrant's `modifier: idf` computes it), three ways over the same
//! documents and queries in one run: Quiver's sparse index (exact, MaxScore pruning), a brute-
//! force sparse dot product over every document, and tantivy's BM25 (Quiver's full-text
//! index). Prints one JSON line: rates, the ratios, and whether every top-k equals brute force.

use anyhow::{bail, Result};
use clap::Args;
use quiver::vector_model::SparseParams;
use quiver::{
    CollectionConfig, Database, Durability, Metric, PayloadIndexType, Point, QueryVector, SearchRequest, SparseVector, VectorData, With,
};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct SparseArgs {
    /// Synthetic documents with Zipf-distributed terms (when --texts is not given).
    #[arg(long, default_value_t = 100_000)]
    docs: usize,
    /// The synthetic vocabulary's size.
    #[arg(long, default_value_t = 50_000)]
    vocab: usize,
    /// Real text instead: every paragraph (blank-line separated, 5 words or more) of every
    /// file under this folder is a document.
    #[arg(long)]
    texts: Option<PathBuf>,
    /// Queries to time (each 2 to 5 terms).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Results per query.
    #[arg(short = 'k', long, default_value_t = 10)]
    k: usize,
    /// Seed of the synthetic corpus and of the queries.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// A small deterministic generator (splitmix64), so the corpus needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Documents as token lists.
fn corpus(a: &SparseArgs, rng: &mut Rng) -> Result<Vec<Vec<String>>> {
    if let Some(dir) = &a.texts {
        let mut docs = Vec::new();
        collect_paragraphs(dir, &mut docs)?;
        if docs.is_empty() {
            bail!("no paragraphs of 5 words or more under {}", dir.display());
        }
        return Ok(docs);
    }
    // Zipf with exponent 1: term t (from 1) with weight 1/t.
    let mut cumulative = Vec::with_capacity(a.vocab);
    let mut total = 0.0;
    for t in 1..=a.vocab {
        total += 1.0 / t as f64;
        cumulative.push(total);
    }
    Ok((0..a.docs)
        .map(|_| {
            let len = 20 + rng.below(41);
            (0..len)
                .map(|_| {
                    let u = rng.unit() * total;
                    format!("t{}", cumulative.partition_point(|&c| c < u))
                })
                .collect()
        })
        .collect())
}

fn collect_paragraphs(path: &Path, out: &mut Vec<Vec<String>>) -> Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            collect_paragraphs(&e, out)?;
        }
    } else if let Ok(text) = std::fs::read_to_string(path) {
        for para in text.split("\n\n") {
            let tokens = quiver::tokens(para);
            if tokens.len() >= 5 {
                out.push(tokens);
            }
        }
    }
    Ok(())
}

pub fn sparse(a: &SparseArgs) -> Result<()> {
    let mut rng = Rng(a.seed);
    let docs = corpus(a, &mut rng)?;
    let mut vocab: HashMap<&str, u32> = HashMap::new();
    for d in &docs {
        for t in d {
            let next = vocab.len() as u32;
            vocab.entry(t.as_str()).or_insert(next);
        }
    }
    // BM25 term weights (k1 = 1.2, b = 0.75), as a client computes them for Qdrant.
    let avg_len = docs.iter().map(Vec::len).sum::<usize>() as f64 / docs.len() as f64;
    let (k1, b) = (1.2, 0.75);
    let vectors: Vec<SparseVector> = docs
        .iter()
        .map(|d| {
            let mut tf: HashMap<u32, f64> = HashMap::new();
            for t in d {
                *tf.entry(vocab[t.as_str()]).or_default() += 1.0;
            }
            let norm = k1 * (1.0 - b + b * d.len() as f64 / avg_len);
            let mut pairs: Vec<(u32, f32)> = tf.into_iter().map(|(i, f)| (i, (f * (k1 + 1.0) / (f + norm)) as f32)).collect();
            pairs.sort_by_key(|p| p.0);
            let (indices, values) = pairs.into_iter().unzip();
            SparseVector { indices, values }
        })
        .collect();

    let tmp = std::env::temp_dir().join(format!("quiver-bench-sparse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = run(a, &tmp, &docs, &vocab, &vectors, avg_len, &mut rng);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run(
    a: &SparseArgs,
    tmp: &Path,
    docs: &[Vec<String>],
    vocab: &HashMap<&str, u32>,
    vectors: &[SparseVector],
    avg_len: f64,
    rng: &mut Rng,
) -> Result<()> {
    let db = Database::open(tmp)?;
    let mut config = CollectionConfig::new(0, Metric::Dot);
    config.vectors.sparse.insert("bm25".into(), SparseParams { idf: true });
    config.durability = Durability::Periodic { interval_ms: 1000 };
    let c = db.create_collection("bench", config)?;
    c.create_payload_index("text", PayloadIndexType::Text)?;
    let t0 = Instant::now();
    for (start, chunk) in docs.chunks(5_000).enumerate().map(|(i, c)| (i * 5_000, c)) {
        let points = chunk
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut payload = quiver::Payload::new();
                payload.insert("text".into(), json!(d.join(" ")));
                Point::new((start + i) as u64, Vec::new())
                    .with_named("bm25", VectorData::Sparse(vectors[start + i].clone()))
                    .with_payload(payload)
            })
            .collect();
        c.upsert(points)?;
    }
    let load_secs = t0.elapsed().as_secs_f64();

    // Queries: 2 to 5 distinct terms of a random document.
    let queries: Vec<Vec<String>> = (0..a.queries)
        .map(|_| {
            let d = &docs[rng.below(docs.len())];
            let mut q: Vec<String> = (0..2 + rng.below(4)).map(|_| d[rng.below(d.len())].clone()).collect();
            q.sort();
            q.dedup();
            q
        })
        .collect();
    let sparse_query = |q: &[String]| {
        let mut idx: Vec<u32> = q.iter().map(|t| vocab[t.as_str()]).collect();
        idx.sort_unstable();
        SparseVector {
            values: vec![1.0; idx.len()],
            indices: idx,
        }
    };
    let mut req = SearchRequest::new(Vec::new(), a.k);
    req.with_payload = false;

    // Quiver's sparse index.
    let mut ours = Vec::with_capacity(queries.len());
    let mut lat = Vec::with_capacity(queries.len());
    let t0 = Instant::now();
    for q in &queries {
        let t = Instant::now();
        ours.push(c.search_named("bm25", &QueryVector::Sparse(sparse_query(q)), &req)?);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let ours_secs = t0.elapsed().as_secs_f64();

    // Brute force: every document's dot product with the IDF-weighted query.
    let n = docs.len();
    let mut df: HashMap<u32, usize> = HashMap::new();
    for v in vectors {
        for i in &v.indices {
            *df.entry(*i).or_default() += 1;
        }
    }
    let t0 = Instant::now();
    let mut brute = Vec::with_capacity(queries.len());
    for q in &queries {
        let mut w = sparse_query(q);
        for (i, v) in w.indices.iter().zip(w.values.iter_mut()) {
            *v *= quiver::vector_model::idf(n, df[i]);
        }
        let mut top = quiver_kernels::TopK::new(a.k);
        for (row, d) in vectors.iter().enumerate() {
            let s = d.dot(&w);
            if s != 0.0 {
                top.push(row as u32, s);
            }
        }
        brute.push(top.into_sorted());
    }
    let brute_secs = t0.elapsed().as_secs_f64();

    // tantivy's BM25 over the same texts.
    let t0 = Instant::now();
    let mut tantivy = Vec::with_capacity(queries.len());
    for q in &queries {
        tantivy.push(c.search_text(&q.join(" "), None, a.k, None, With::NOTHING)?);
    }
    let tantivy_secs = t0.elapsed().as_secs_f64();

    // Every top-k equals brute force (scores to rounding; ids may swap only within ties).
    let mut identical = 0;
    let mut overlap = 0.0;
    for ((o, b), t) in ours.iter().zip(&brute).zip(&tantivy) {
        let same = o.len() == b.len()
            && o.iter()
                .zip(b)
                .all(|(x, y)| (x.score - y.score).abs() <= 1e-4 * y.score.abs().max(1.0));
        identical += same as usize;
        let mine: std::collections::HashSet<_> = o.iter().map(|h| h.id).collect();
        overlap += t.iter().filter(|h| mine.contains(&h.id)).count() as f64 / o.len().max(1) as f64;
    }
    lat.sort_by(f64::total_cmp);
    let qps = |secs: f64| queries.len() as f64 / secs;
    println!(
        "{}",
        json!({
            "bench": "sparse", "corpus": a.texts.as_ref().map_or("zipf".to_string(), |p| p.display().to_string()),
            "docs": n, "vocabulary": vocab.len(), "avg_terms": avg_len, "queries": queries.len(), "k": a.k,
            "load_secs": load_secs,
            "qps_quiver_sparse": qps(ours_secs), "qps_brute_force": qps(brute_secs), "qps_tantivy_bm25": qps(tantivy_secs),
            "ratio_vs_brute_force": brute_secs / ours_secs, "ratio_vs_tantivy": tantivy_secs / ours_secs,
            "p50_ms": lat[lat.len() / 2], "p99_ms": lat[(lat.len() * 99 / 100).min(lat.len() - 1)],
            "topk_identical_to_brute_force": format!("{identical}/{}", queries.len()),
            "overlap_with_tantivy": overlap / queries.len() as f64,
        })
    );
    if identical != queries.len() {
        bail!("{} of {} answers differ from brute force", queries.len() - identical, queries.len());
    }
    Ok(())
}
