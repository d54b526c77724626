//! Text through the API: where Qdrant takes a vector, a client may send a document
//! (`{"text": "...", "model": "..."}`, Qdrant's `Document`) when the collection has an embedder.
//! Before a request is parsed, every document in it is embedded with the collection's model and
//! replaced by its vector; an upserted point also keeps its text in the payload (`document`).
//! This is what makes `quiver serve` a complete RAG back end: text in, text out.

use crate::api::ApiError;
use crate::AppState;
use axum::http::StatusCode;
use quiver_embed::MiniLm;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The payload key that keeps a point's text: the library's, as everywhere.
pub use quiver::collection::DOCUMENT_KEY;

/// `(text, model)` when `v` is a document.
fn as_document(v: &Value) -> Option<(&str, Option<&str>)> {
    let o = v.as_object()?;
    let text = o.get("text")?.as_str()?;
    Some((text, o.get("model").and_then(Value::as_str)))
}

/// Where a document sits in a request body.
#[derive(Clone, Copy)]
enum Slot {
    Point(usize),
    BatchVector(usize),
    Query,
    QueryNearest,
    Search(usize),
    SearchNearest(usize),
    Prefetch(usize),
    PrefetchNearest(usize),
}

/// A prefetch of a hybrid query that is a keyword (BM25) query, not a dense one: `using` names
/// a sparse/keyword index, or the query is a document for a BM25 "model" (Qdrant's
/// `Qdrant/bm25`). Its text is not embedded.
pub fn is_keyword_prefetch(p: &Value) -> bool {
    p.as_object().is_some_and(is_keyword_query)
}

/// Whether a query object (a prefetch, or a whole Query API body) asks for a keyword query.
pub fn is_keyword_query(p: &Map<String, Value>) -> bool {
    let using = p.get("using").and_then(Value::as_str).map(str::to_ascii_lowercase);
    let model = p
        .get("query")
        .map(|q| q.get("nearest").unwrap_or(q))
        .and_then(|q| q.get("model"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    // Only text is a keyword query: a sparse vector under `using: "text"` is a sparse query.
    let textual = p
        .get("query")
        .map(|q| q.get("nearest").unwrap_or(q))
        .is_some_and(|q| q.is_string() || q.get("text").is_some() || q.get("model").is_some());
    textual && (matches!(using.as_deref(), Some("bm25" | "text" | "keyword")) || model.is_some_and(|m| m.contains("bm25")))
}

/// The prefetch entries of a body, whether `prefetch` is one object or a list.
pub fn prefetches(body: &Map<String, Value>) -> Vec<&Value> {
    match body.get("prefetch") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    }
}

fn slot_mut(body: &mut Map<String, Value>, slot: Slot) -> Option<&mut Value> {
    match slot {
        Slot::Point(i) => body.get_mut("points")?.get_mut(i)?.get_mut("vector"),
        Slot::BatchVector(i) => body.get_mut("batch")?.get_mut("vectors")?.get_mut(i),
        Slot::Query => body.get_mut("query"),
        Slot::QueryNearest => body.get_mut("query")?.get_mut("nearest"),
        Slot::Search(i) => body.get_mut("searches")?.get_mut(i)?.get_mut("query"),
        Slot::SearchNearest(i) => body.get_mut("searches")?.get_mut(i)?.get_mut("query")?.get_mut("nearest"),
        Slot::Prefetch(i) | Slot::PrefetchNearest(i) => {
            let p = match body.get_mut("prefetch")? {
                Value::Array(list) => list.get_mut(i)?,
                o => o,
            };
            let q = p.get_mut("query")?;
            if matches!(slot, Slot::Prefetch(_)) {
                Some(q)
            } else {
                q.get_mut("nearest")
            }
        }
    }
}

fn find_slots(body: &Map<String, Value>) -> Vec<Slot> {
    let mut out = Vec::new();
    if let Some(points) = body.get("points").and_then(Value::as_array) {
        out.extend(
            points
                .iter()
                .enumerate()
                .filter(|(_, p)| p.get("vector").and_then(as_document).is_some())
                .map(|(i, _)| Slot::Point(i)),
        );
    }
    if let Some(vectors) = body.get("batch").and_then(|b| b.get("vectors")).and_then(Value::as_array) {
        out.extend(
            vectors
                .iter()
                .enumerate()
                .filter(|(_, v)| as_document(v).is_some())
                .map(|(i, _)| Slot::BatchVector(i)),
        );
    }
    if let Some(q) = body.get("query") {
        if as_document(q).is_some() {
            out.push(Slot::Query);
        } else if q.get("nearest").and_then(as_document).is_some() {
            out.push(Slot::QueryNearest);
        }
    }
    for (i, p) in prefetches(body).into_iter().enumerate() {
        if is_keyword_prefetch(p) {
            continue;
        }
        if let Some(q) = p.get("query") {
            if as_document(q).is_some() {
                out.push(Slot::Prefetch(i));
            } else if q.get("nearest").and_then(as_document).is_some() {
                out.push(Slot::PrefetchNearest(i));
            }
        }
    }
    if let Some(searches) = body.get("searches").and_then(Value::as_array) {
        for (i, s) in searches.iter().enumerate() {
            if let Some(q) = s.get("query") {
                if as_document(q).is_some() {
                    out.push(Slot::Search(i));
                } else if q.get("nearest").and_then(as_document).is_some() {
                    out.push(Slot::SearchNearest(i));
                }
            }
        }
    }
    out
}

/// `true` when the body holds at least one document (a cheap check before any model work).
pub fn has_documents(body: &Map<String, Value>) -> bool {
    !find_slots(body).is_empty()
}

/// The model at the precision a collection records, loaded once per precision.
pub(crate) fn model(state: &AppState, precision: quiver::EmbedPrecision) -> Result<Arc<MiniLm>, ApiError> {
    let mut loaded = state
        .embedder
        .lock()
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "embedder lock poisoned"))?;
    if let Some(m) = loaded.get(&precision) {
        return Ok(m.clone());
    }
    let dir = quiver_embed::find_model(None).map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let m = Arc::new(MiniLm::load_with(&dir, precision).map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?);
    tracing::info!(dir = %dir.display(), %precision, "embedding model loaded");
    loaded.insert(precision, m.clone());
    Ok(m)
}

fn same_model(asked: &str, collection: &str) -> bool {
    let (a, c) = (quiver_embed::registry::lookup(asked), quiver_embed::registry::lookup(collection));
    a.is_some() && a == c
}

/// Embeds every document of `body` with the collection's model and puts the vectors in their
/// place. Runs on the blocking pool (the model is CPU work).
pub fn resolve(state: &AppState, collection: &str, body: &mut Map<String, Value>) -> Result<(), ApiError> {
    let slots = find_slots(body);
    if slots.is_empty() {
        return Ok(());
    }
    let c = state.db.collection(collection)?;
    let Some(embedder) = c.config().embedder.clone() else {
        return Err(ApiError::bad(format!(
            "collection {collection:?} has no embedder, so it takes vectors, not documents; create it with \"embedder\": \"all-minilm-l6-v2\""
        )));
    };
    let mut texts = Vec::with_capacity(slots.len());
    for &slot in &slots {
        let v = slot_mut(body, slot).expect("slots point at documents");
        let (text, asked) = as_document(v).expect("slots point at documents");
        if let Some(asked) = asked {
            if !same_model(asked, &embedder) {
                return Err(ApiError::bad(format!(
                    "document model {asked:?} differs from the collection's embedder {embedder:?}"
                )));
            }
        }
        let is_query = !matches!(slot, Slot::Point(_) | Slot::BatchVector(_));
        if is_query && text.trim().is_empty() {
            return Err(ApiError::bad("the text of a query document is empty: give the words to search for"));
        }
        texts.push(text.to_string());
    }
    let m = model(state, c.config().embed_precision)?;
    let vectors = state.embeds.embed(m, texts.clone())?;
    for ((slot, vector), text) in slots.into_iter().zip(vectors).zip(texts) {
        *slot_mut(body, slot).expect("slots point at documents") = Value::from(vector);
        match slot {
            Slot::Point(i) => {
                if let Some(p) = body.get_mut("points").and_then(|p| p.get_mut(i)).and_then(Value::as_object_mut) {
                    let payload = p.entry("payload").or_insert_with(|| Value::Object(Map::new()));
                    if payload.is_null() {
                        *payload = Value::Object(Map::new());
                    }
                    if let Some(obj) = payload.as_object_mut() {
                        obj.insert(DOCUMENT_KEY.into(), Value::String(text));
                    }
                }
            }
            Slot::BatchVector(i) => {
                if let Some(b) = body.get_mut("batch").and_then(Value::as_object_mut) {
                    let n = b.get("ids").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
                    let payloads = b.entry("payloads").or_insert_with(|| Value::Array(vec![Value::Null; n]));
                    if payloads.is_null() {
                        *payloads = Value::Array(vec![Value::Null; n]);
                    }
                    if let Some(slot) = payloads.get_mut(i) {
                        if slot.is_null() {
                            *slot = Value::Object(Map::new());
                        }
                        if let Some(obj) = slot.as_object_mut() {
                            obj.insert(DOCUMENT_KEY.into(), Value::String(text));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
