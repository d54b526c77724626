//! Context for a language model: chunk hits (as `quiver ingest` stores them) turned into
//! passages, adjacent chunks of one source merged, best first, within a token budget. Used by
//! `quiver context` and `POST /collections/{name}/context`.

use crate::collection::{Collection, Fusion, SearchRequest};
use crate::error::Result;
use crate::filter::Filter;
use crate::payload_index::PayloadIndexType;
use crate::types::ScoredPoint;
use serde_json::Value;
use std::collections::BTreeMap;

/// Payload keys of an ingested chunk: its file and its number within the file (character
/// offsets are under `start` and `end`, the text under `document`).
pub const SOURCE_KEY: &str = "source";
/// The payload key of a chunk's number within its source.
pub const CHUNK_KEY: &str = "chunk";

/// One passage of context: adjacent chunks of one source merged.
#[derive(Debug)]
pub struct Passage {
    /// The file the passage comes from.
    pub source: String,
    /// Its first chunk number.
    pub first_chunk: u64,
    /// Its last chunk number.
    pub last_chunk: u64,
    /// Character offset of its start in the source.
    pub start: u64,
    /// Character offset of its end.
    pub end: u64,
    /// The best score among its chunks.
    pub score: f32,
    /// The passage's text.
    pub text: String,
}

/// Turns ranked chunk hits into passages: chunks of one source whose numbers are adjacent are
/// merged (their overlap counted once), passages keep the best score of their chunks, come out
/// best first, and stop before `max_tokens` (as `count` measures) would be exceeded.
pub fn passages(hits: &[ScoredPoint], max_tokens: usize, count: &dyn Fn(&str) -> usize) -> Vec<Passage> {
    struct Piece {
        n: u64,
        start: u64,
        end: u64,
        score: f32,
        text: String,
    }
    let mut by_source: BTreeMap<String, Vec<Piece>> = BTreeMap::new();
    for h in hits {
        let Some(p) = &h.payload else { continue };
        let (Some(src), Some(n), Some(start), Some(end), Some(text)) = (
            p.get(SOURCE_KEY).and_then(Value::as_str),
            p.get(CHUNK_KEY).and_then(Value::as_u64),
            p.get("start").and_then(Value::as_u64),
            p.get("end").and_then(Value::as_u64),
            p.get(crate::collection::DOCUMENT_KEY).and_then(Value::as_str),
        ) else {
            continue;
        };
        by_source.entry(src.to_string()).or_default().push(Piece {
            n,
            start,
            end,
            score: h.score,
            text: text.to_string(),
        });
    }
    let mut out: Vec<Passage> = Vec::new();
    for (source, mut pieces) in by_source {
        pieces.sort_by_key(|p| p.n);
        let mut cur: Option<Passage> = None;
        for p in pieces {
            match &mut cur {
                Some(c) if p.n == c.last_chunk + 1 && p.start <= c.end => {
                    // Overlapping neighbours: append only the part after the current end.
                    let skip = (c.end - p.start) as usize;
                    c.text.extend(p.text.chars().skip(skip));
                    c.last_chunk = p.n;
                    c.end = c.end.max(p.end);
                    c.score = c.score.max(p.score);
                }
                _ => {
                    if let Some(done) = cur.take() {
                        out.push(done);
                    }
                    cur = Some(Passage {
                        source: source.clone(),
                        first_chunk: p.n,
                        last_chunk: p.n,
                        start: p.start,
                        end: p.end,
                        score: p.score,
                        text: p.text,
                    });
                }
            }
        }
        out.extend(cur);
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut total = 0;
    let mut kept = Vec::new();
    for p in out {
        let n = count(&p.text);
        if total + n > max_tokens && !kept.is_empty() {
            break;
        }
        total += n;
        kept.push(p);
    }
    kept
}

/// Retrieves context for `question` (embedded as `vector` by the caller): hybrid retrieval
/// (dense + BM25, fused by RRF) when the collection has a full-text index, dense otherwise;
/// then [`passages`] within `max_tokens`.
pub fn retrieve(
    c: &Collection,
    question: &str,
    vector: Vec<f32>,
    limit: usize,
    filter: Option<Filter>,
    max_tokens: usize,
    count: &dyn Fn(&str) -> usize,
) -> Result<Vec<Passage>> {
    crate::text_index::check_query_text(question)?;
    let mut req = SearchRequest::new(vector, limit);
    req.filter = filter;
    let has_text = c.info().payload_indexes.iter().any(|(_, t, _, _)| *t == PayloadIndexType::Text);
    let hits = if has_text {
        c.hybrid(&req, question, &Fusion::default(), crate::collection::hybrid_depth(limit))?
    } else {
        c.search(&req)?
    };
    Ok(passages(&hits, max_tokens, count))
}
