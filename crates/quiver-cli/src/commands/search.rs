//! Searching: `search` (vector, text, keyword, hybrid, many queries from a file) and `context`
//! (passages for a language model's prompt).

use super::{parse_ef, parse_limit, text, Ctx, FilterArg, ModelDirArg, WithArgs};
use crate::render::{HitLists, Hits, Message, Output};
use anyhow::{bail, Context, Result};
use clap::Args;
use quiver::{npy, SearchRequest};
use quiver_embed::Embedder;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct SearchArgs {
    /// The collection's name.
    collection: String,
    /// One query vector as JSON, e.g. '[0.1, 0.2]'; with --using also a sparse vector
    /// '{"indices": [3, 17], "values": [0.5, 1.0]}' or a multivector '[[..], [..]]'.
    #[arg(long, conflicts_with_all = ["file", "text"])]
    vector: Option<String>,
    /// The named vector to search (see `create --vector/--sparse`); default: the main one.
    #[arg(long, requires = "vector")]
    using: Option<String>,
    /// A text query (text collections): embedded with the collection's model.
    #[arg(long, conflicts_with = "file")]
    text: Option<String>,
    /// Many queries: a .npy float32 matrix, one query per row.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Results to return.
    #[arg(short = 'k', long = "limit", visible_alias = "k", default_value_t = 10, value_parser = parse_limit)]
    k: usize,
    /// Skip this many best results first.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    #[command(flatten)]
    filter: FilterArg,
    /// Keep only results at least this similar (cosine, dot) or at most this far (euclid, manhattan).
    #[arg(long)]
    threshold: Option<f32>,
    /// The index's search list size, 1 to 4096 (larger: better recall, slower).
    #[arg(long, value_parser = parse_ef)]
    ef: Option<usize>,
    /// Score every point (the exact oracle), even when an index exists.
    #[arg(long)]
    exact: bool,
    /// With --text: fuse the dense ranking with the BM25 ranking of the same words
    /// (reciprocal rank fusion), so exact terms (names, codes, errors) count too.
    #[arg(long, requires = "text", conflicts_with = "keyword")]
    hybrid: bool,
    /// With --text: BM25 keyword search only (no embedding).
    #[arg(long, requires = "text")]
    keyword: bool,
    /// With --hybrid: the weight of the BM25 ranking against the dense one (1: plain RRF).
    #[arg(long, default_value_t = 1.0)]
    text_weight: f32,
    #[command(flatten)]
    with: WithArgs,
    #[command(flatten)]
    model: ModelDirArg,
}

impl SearchArgs {
    fn request(&self, vector: Vec<f32>) -> Result<SearchRequest> {
        Ok(SearchRequest {
            vector,
            limit: self.k,
            offset: self.offset,
            filter: self.filter.parse()?,
            score_threshold: self.threshold,
            with_payload: !self.with.no_payload,
            with_vector: self.with.with_vector,
            exact: self.exact,
            ef: self.ef,
        })
    }
}

pub fn search(ctx: &Ctx, a: &SearchArgs) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    if let Some(t) = &a.text {
        quiver::check_query_text(t)?;
        let hits = if a.keyword {
            let filter = a.filter.parse()?;
            c.search_text(t, None, a.k + a.offset, filter.as_ref(), a.with.get())?
                .into_iter()
                .skip(a.offset)
                .collect()
        } else {
            let model = text::collection_embedder(&c, &a.model)?;
            let q = model.embed(&[t.as_str()])?.pop().context("the model returned no vector")?;
            if a.hybrid {
                let fusion = quiver::Fusion {
                    text_weight: a.text_weight,
                    ..quiver::Fusion::default()
                };
                c.hybrid(&a.request(q)?, t, &fusion, quiver::collection::hybrid_depth(a.k))?
            } else {
                c.search(&a.request(q)?)?
            }
        };
        return Ok(Box::new(Hits(hits)));
    }
    match (&a.vector, &a.file) {
        (Some(v), _) if a.using.is_some() => {
            let using = a.using.as_deref().unwrap_or_default();
            let json: Value = serde_json::from_str(v).context("--vector must be JSON")?;
            let query = match quiver::vector_data_from_json(using, &json)? {
                quiver::VectorData::Dense(d) => quiver::QueryVector::Dense(d),
                quiver::VectorData::Multi(m) => quiver::QueryVector::Multi(m),
                quiver::VectorData::Sparse(s) => quiver::QueryVector::Sparse(s),
            };
            Ok(Box::new(Hits(c.search_named(using, &query, &a.request(Vec::new())?)?)))
        }
        (Some(v), _) => Ok(Box::new(Hits(c.search(&a.request(parse_vector(v)?)?)?))),
        (None, Some(f)) => {
            let m = npy::read(f)?;
            let reqs: Vec<SearchRequest> = m.data.chunks(m.cols.max(1)).map(|q| a.request(q.to_vec())).collect::<Result<_>>()?;
            let t0 = Instant::now();
            let all = c.search_batch(&reqs)?;
            let secs = t0.elapsed().as_secs_f64();
            if !ctx.json {
                eprintln!("{} queries in {:.3}s ({:.0} queries/s)", reqs.len(), secs, reqs.len() as f64 / secs);
            }
            Ok(Box::new(HitLists(all)))
        }
        (None, None) => bail!("search needs a query: --vector JSON, --text TEXT (text collections) or --file QUERIES.npy"),
    }
}

fn parse_vector(text: &str) -> Result<Vec<f32>> {
    let v: Value = serde_json::from_str(text).context("--vector must be a JSON array of numbers")?;
    quiver::vector_from_json(&v).context("--vector must be a JSON array of numbers")
}

#[derive(Args)]
pub struct ContextArgs {
    /// The collection's name.
    collection: String,
    /// The question.
    question: String,
    /// Chunks to retrieve.
    #[arg(short = 'k', long, visible_alias = "k", default_value_t = 5, value_parser = parse_limit)]
    limit: usize,
    /// Stop adding passages before this many tokens.
    #[arg(long, default_value_t = 1000)]
    max_tokens: usize,
    #[command(flatten)]
    filter: FilterArg,
    #[command(flatten)]
    model: ModelDirArg,
}

pub fn context(ctx: &Ctx, a: &ContextArgs) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    let model = text::collection_embedder(&c, &a.model)?;
    let q = model.embed(&[a.question.as_str()])?.pop().context("the model returned no vector")?;
    let count = |s: &str| model.tokenize(s).map(|(_, ids)| ids.len().saturating_sub(2)).unwrap_or(0);
    let passages = quiver::context::retrieve(&c, &a.question, q, a.limit, a.filter.parse()?, a.max_tokens, &count)?;
    let list: Vec<Value> = passages
        .iter()
        .map(|p| json!({"source": p.source, "chunks": [p.first_chunk, p.last_chunk], "start": p.start, "end": p.end, "score": p.score, "text": p.text}))
        .collect();
    let text = if passages.is_empty() {
        "(no context found)".to_string()
    } else {
        passages
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let chunks = if p.first_chunk == p.last_chunk {
                    format!("chunk {}", p.first_chunk)
                } else {
                    format!("chunks {}-{}", p.first_chunk, p.last_chunk)
                };
                format!(
                    "[{}] {} ({chunks}, characters {}-{})\n{}\n",
                    i + 1,
                    p.source,
                    p.start,
                    p.end,
                    p.text.trim()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Box::new(Message::new(json!({"question": a.question, "passages": list}), text)))
}
