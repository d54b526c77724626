//! Showing the work: every intermediate of a query's trip through the pipeline, computed by
//! the real engine, as data. One owner for the command line (`quiver walkthrough`, `quiver
//! explain`, which print it) and the dashboard (which draws it, through `GET /walkthrough` and
//! `POST /collections/{name}/explain`).
//!
//! * [`walkthrough`]: the exercise "Vector Database by Hand" with the classroom model: three
//!   sentences and a query of the 22-word vocabulary through steps [1]-[10]; the 2-d vectors are
//!   stored in a real (throwaway) collection and the query answered by its exact search.
//! * [`explain`]: one query on a real collection: tokens, token ids, the token-embedding
//!   matrix, the pooled vector and the query vector (for a text query and the collection's
//!   model), then the search plan (graph or exact, why, distances computed, rescored) and the
//!   winners with their scores, checked against an exact scan when the graph answered.

use quiver::{Collection, CollectionConfig, Database, Filter, Metric, Point, PointId, ScoredPoint, SearchPath, SearchRequest};
use quiver_embed::{ByHandModel, EmbedError, Embedder, MiniLm, Trace};
use serde_json::{json, Value};
use std::time::Instant;

/// The exercise's dataset.
pub const WALKTHROUGH_DATASET: [&str; 3] = ["how are you", "who are you", "who am I"];
/// The exercise's query.
pub const WALKTHROUGH_QUERY: &str = "am I you";

/// Why the work could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum StepsError {
    /// The text cannot go through the model (an unknown word, an empty text): the caller's.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] quiver::Error),
    /// The throwaway folder of the walkthrough could not be made.
    #[error("walkthrough scratch folder: {0}")]
    Scratch(std::io::Error),
}

/// Every step of the exercise, for one query.
#[derive(Clone, Debug)]
pub struct Walkthrough {
    pub model: ByHandModel,
    /// Steps [2]-[6] for each stored sentence.
    pub sentences: Vec<Trace>,
    /// Step [8]: the query through the same steps.
    pub query: Trace,
    /// Step [9]: the dot product of the query with each stored vector, by point (1-based ids
    /// are the position + 1).
    pub scores: Vec<f32>,
    /// Step [10]: the nearest point's id (1-based) and score.
    pub nearest: (u64, f32),
    /// The kernels the engine's exact search ran.
    pub kernels: &'static str,
}

/// Runs the exercise for `query` (words of the 22-word vocabulary).
pub fn walkthrough(query: &str) -> Result<Walkthrough, StepsError> {
    let model = ByHandModel::classroom();
    let sentences: Vec<Trace> = WALKTHROUGH_DATASET.iter().map(|s| model.trace(s)).collect::<Result<_, _>>()?;
    let q = model.trace(query)?;
    // Store and search with the real engine, in a throwaway data folder of its own.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "quiver-walkthrough-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let result = (|| -> Result<Vec<ScoredPoint>, StepsError> {
        let db = Database::open(&dir)?;
        let c = db.create_collection("walkthrough", CollectionConfig::new(2, Metric::Dot))?;
        let points = sentences
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Point::new(i as u64 + 1, t.index_vector.clone()).with_payload(json!({"text": t.text}).as_object().expect("object").clone())
            })
            .collect();
        c.upsert(points)?;
        Ok(c.search(&SearchRequest::new(q.index_vector.clone(), sentences.len()))?)
    })();
    let cleanup = std::fs::remove_dir_all(&dir);
    let hits = result?;
    if let Err(e) = cleanup {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(StepsError::Scratch(e));
        }
    }
    let mut scores = vec![0.0f32; sentences.len()];
    let mut nearest = (0, f32::NAN);
    for (i, h) in hits.iter().enumerate() {
        if let PointId::Num(n) = h.id {
            scores[n as usize - 1] = h.score;
            if i == 0 {
                nearest = (n, h.score);
            }
        }
    }
    Ok(Walkthrough {
        model,
        sentences,
        query: q,
        scores,
        nearest,
        kernels: quiver::kernel_isa(),
    })
}

fn trace_json(t: &Trace, model: &ByHandModel) -> Value {
    json!({
        "text": t.text, "tokens": t.tokens, "token_ids": t.token_ids,
        "X": t.x, "W": model.weights(), "b": model.bias(), "Z": t.z, "H": t.h,
        "pooled": t.pooled, "P": model.projection(), "index_vector": t.index_vector,
    })
}

impl Walkthrough {
    /// Every intermediate matrix, as `quiver walkthrough --json` prints it.
    pub fn to_json(&self) -> Value {
        let (best, score) = self.nearest;
        json!({
            "dataset": WALKTHROUGH_DATASET, "query": self.query.text,
            "vocabulary": self.model.vocabulary(), "word_embeddings": self.model.embedding_table(),
            "sentences": self.sentences.iter().enumerate().map(|(i, t)| {
                let mut v = trace_json(t, &self.model);
                v["point_id"] = json!(i + 1);
                v
            }).collect::<Vec<_>>(),
            "query_trace": trace_json(&self.query, &self.model),
            "dot_products": {
                "stored_vectors": self.sentences.iter().map(|t| t.index_vector.clone()).collect::<Vec<_>>(),
                "query_vector": self.query.index_vector, "scores": self.scores,
                "computed_by": format!("exact search, kernels {}", self.kernels),
            },
            "nearest": {"point_id": best, "text": WALKTHROUGH_DATASET.get(best.wrapping_sub(1) as usize), "score": score},
        })
    }
}

/// What is explained: a text (through the collection's model) or a vector.
pub enum ExplainQuery<'a> {
    Text { model: &'a MiniLm, text: &'a str },
    Vector(Vec<f32>),
}

/// Steps [1]-[5] of a text query.
#[derive(Clone, Debug)]
pub struct Embedding {
    pub text: String,
    pub tokens: Vec<String>,
    pub token_ids: Vec<u32>,
    /// Rows of `hidden` values, one per token, after the encoder.
    pub token_embeddings: Vec<f32>,
    pub hidden: usize,
    pub layers: usize,
    /// The mean of the token rows.
    pub pooled: Vec<f32>,
    pub pooled_norm: f32,
    pub ms: f64,
}

/// One query's trip through the pipeline.
#[derive(Clone, Debug)]
pub struct Explained {
    /// Present for a text query.
    pub embedding: Option<Embedding>,
    /// The vector searched (normalised for a text query).
    pub query: Vec<f32>,
    pub path: SearchPath,
    /// The plan in words.
    pub plan: String,
    /// Distances computed in all.
    pub distances: usize,
    pub points: usize,
    pub search_ms: f64,
    pub hits: Vec<ScoredPoint>,
    /// Recall of a graph answer against an exact scan.
    pub recall: Option<f64>,
    pub target_recall: f32,
    pub metric: &'static str,
    pub model: Option<String>,
    /// The model's arithmetic (`float` or `int8`), for a text query.
    pub precision: Option<&'static str>,
}

/// Runs one query on `c` and keeps every step.
pub fn explain(c: &Collection, query: ExplainQuery<'_>, k: usize, filter: Option<Filter>) -> Result<Explained, StepsError> {
    let precision = match &query {
        ExplainQuery::Text { model, .. } => Some(model.precision().name()),
        _ => None,
    };
    let embedding = match &query {
        ExplainQuery::Text { model, text } => {
            quiver::check_query_text(text)?;
            let t0 = Instant::now();
            let (tokens, token_ids) = model.tokenize(text)?;
            let token_embeddings = model.encode_ids(&token_ids)?;
            let hidden = model.dim();
            let pooled = quiver_embed::minilm::mean_rows(&token_embeddings, hidden);
            Some(Embedding {
                text: text.to_string(),
                tokens,
                token_ids,
                pooled_norm: pooled.iter().map(|x| x * x).sum::<f32>().sqrt(),
                pooled,
                token_embeddings,
                hidden,
                layers: model.layers(),
                ms: t0.elapsed().as_secs_f64() * 1e3,
            })
        }
        ExplainQuery::Vector(_) => None,
    };
    let vector = match (query, &embedding) {
        (ExplainQuery::Vector(v), _) => v,
        (ExplainQuery::Text { .. }, Some(e)) => quiver_embed::minilm::pool(&e.token_embeddings, e.hidden),
        (ExplainQuery::Text { .. }, None) => unreachable!("a text query has an embedding"),
    };
    let mut req = SearchRequest::new(vector.clone(), k);
    req.filter = filter.clone();
    req.with_payload = true;
    let t1 = Instant::now();
    let (hits, path) = c.search_explained(&req)?;
    let search_ms = t1.elapsed().as_secs_f64() * 1e3;
    let info = c.info();
    // A graph answer is checked against an exact scan, so the user sees its quality.
    let recall = match &path {
        SearchPath::Graph { .. } => Some(c.recall_of(&req, &hits)?),
        SearchPath::Exact { .. } => None,
    };
    let filtered = if filter.is_some() { ", filtered" } else { "" };
    let (plan, distances) = match &path {
        SearchPath::Exact { scored, reason } => (
            format!("exact scan ({} kernels), {} metric{filtered}: {reason}", info.kernel_isa, info.config.metric.name()),
            *scored,
        ),
        SearchPath::Graph {
            ef,
            m,
            quantization,
            distances,
            rescored,
            tail,
        } => (
            format!(
                "HNSW graph (m={m}, ef={ef}, codes {}){filtered}, {rescored} candidates rescored at full precision, {tail} points not yet in the graph scanned exactly",
                quantization.name()
            ),
            distances + rescored + tail,
        ),
    };
    Ok(Explained {
        embedding,
        query: vector,
        path,
        plan,
        distances,
        points: info.points,
        search_ms,
        hits,
        recall,
        target_recall: info.config.index.target_recall,
        metric: info.config.metric.name(),
        model: info.config.embedder.clone(),
        precision,
    })
}

impl Explained {
    /// As JSON; `full` keeps whole matrices and vectors (the dashboard draws them), otherwise
    /// vectors are cut to their first 8 values (what a terminal shows).
    pub fn to_json(&self, full: bool) -> Value {
        let cut = |v: &[f32]| -> Vec<f32> {
            let keep = if full { v.len() } else { v.len().min(8) };
            v[..keep]
                .iter()
                .map(|x| if full { *x } else { (x * 10_000.0).round() / 10_000.0 })
                .collect()
        };
        let path = match &self.path {
            SearchPath::Exact { scored, reason } => json!({"kind": "exact", "scored": scored, "reason": reason}),
            SearchPath::Graph {
                ef,
                m,
                quantization,
                distances,
                rescored,
                tail,
            } => json!({"kind": "graph", "ef": ef, "m": m, "codes": quantization.name(), "distances": distances,
                        "rescored": rescored, "tail": tail}),
        };
        let results: Vec<Value> = self
            .hits
            .iter()
            .map(|h| {
                let doc = h.payload.as_ref().and_then(|p| p.get(quiver::collection::DOCUMENT_KEY)).cloned();
                json!({"id": h.id.to_json(), "score": h.score, "document": doc, "payload": h.payload})
            })
            .collect();
        let mut out = json!({
            "model": self.model, "precision": self.precision, "metric": self.metric, "dim": self.query.len(),
            "search_path": self.plan, "plan": path, "points": self.points, "distances_computed": self.distances,
            "search_ms": self.search_ms, "results": results,
            "recall_vs_exact": self.recall, "target_recall": self.target_recall,
        });
        let key = if full { "query_vector" } else { "query_vector_first_dims" };
        out[key] = json!(cut(&self.query));
        if let Some(e) = &self.embedding {
            out["query"] = json!(e.text);
            out["tokens"] = json!(e.tokens);
            out["token_ids"] = json!(e.token_ids);
            out["token_embeddings_shape"] = json!([e.token_ids.len(), e.hidden]);
            out["encoder_layers"] = json!(e.layers);
            out["pooled_norm"] = json!(e.pooled_norm);
            out["query_vector_norm"] = json!(1.0);
            out["embed_ms"] = json!(e.ms);
            if full {
                out["token_embeddings"] = json!(e.token_embeddings.chunks(e.hidden.max(1)).collect::<Vec<_>>());
                out["pooled"] = json!(e.pooled);
            } else {
                out["pooled_first_dims"] = json!(cut(&e.pooled));
            }
        }
        out
    }
}
