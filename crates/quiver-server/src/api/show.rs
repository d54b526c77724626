//! Quiver's extensions that show the work (the dashboard draws them; any client may call them):
//! `GET /walkthrough?query=` (the by-hand exercise, every matrix), `POST
//! /collections/{name}/explain` (one query's steps on a real collection) and `POST
//! /collections/{name}/map` (a sample of the vectors on their two principal axes). The work is
//! `crate::steps` and the library's `Collection::vector_map`; this room only reads requests
//! and writes JSON.

use super::*;
use crate::steps::{self, ExplainQuery, StepsError};
use axum::extract::Query;
use quiver_embed::Embedder;
use std::collections::HashMap;

impl From<StepsError> for ApiError {
    fn from(e: StepsError) -> ApiError {
        match e {
            StepsError::Embed(e) => ApiError::bad(e.to_string()),
            StepsError::Engine(e) => ApiError::from(e),
            StepsError::Scratch(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("walkthrough scratch folder: {e}")),
        }
    }
}

/// `GET /walkthrough?query=am I you`: every step of the exercise for that query.
pub(super) async fn walkthrough(Query(q): Query<HashMap<String, String>>) -> Response {
    let start = Instant::now();
    let query = q.get("query").cloned().unwrap_or_else(|| steps::WALKTHROUGH_QUERY.to_string());
    respond(start, blocking(move || Ok(steps::walkthrough(&query)?.to_json())).await)
}

/// A text query (embedded by the collection's model) or a vector, as the body gives it.
enum Asked {
    Text(String),
    Vector(Vec<f32>),
}

fn asked_query(b: &Map<String, Value>, required: bool) -> Result<Option<Asked>, ApiError> {
    match (b.get("text"), b.get("vector")) {
        (Some(_), Some(_)) => Err(ApiError::bad("give either text or vector, not both")),
        (Some(Value::String(t)), None) => Ok(Some(Asked::Text(t.clone()))),
        (Some(other), None) => Err(ApiError::bad(format!("text must be a string, got {other}"))),
        (None, Some(v)) if !v.is_null() => Ok(Some(Asked::Vector(parse_vector(v, "vector")?))),
        _ if required => Err(ApiError::bad(
            "give the query: \"text\" (a collection with an embedder) or \"vector\"",
        )),
        _ => Ok(None),
    }
}

fn text_model(state: &AppState, c: &Collection) -> Result<Arc<quiver_embed::MiniLm>, ApiError> {
    if c.config().embedder.is_none() {
        return Err(ApiError::bad(format!(
            "collection {:?} has no embedder, so a query is a vector, not a text",
            c.name()
        )));
    }
    crate::documents::model(state, c.config().embed_precision)
}

/// `POST /collections/{name}/explain` `{"text" | "vector", "limit" (10), "filter"}`: tokens,
/// token ids, the token-embedding matrix, the pooled and query vectors, the search plan and
/// the winners (`Explained::to_json(true)`); or `{"using": sparse name, "sparse": {"indices",
/// "values"}}`: a sparse query's terms and the winners.
pub(super) async fn explain(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || {
            let b = parse_body(&body)?;
            only_fields(&b, &["text", "vector", "sparse", "using", "limit", "filter"], "explain request")?;
            let limit = field_limit(&b, 10)?;
            let filter = field_filter(&b)?;
            let c = collection(&state, &name)?;
            if let Some(sparse) = b.get("sparse") {
                return explain_sparse(&c, &b, sparse, limit, filter);
            }
            let ex = match asked_query(&b, true)?.expect("required") {
                Asked::Text(text) => {
                    let model = text_model(&state, &c)?;
                    steps::explain(
                        &c,
                        ExplainQuery::Text {
                            model: &model,
                            text: &text,
                        },
                        limit,
                        filter,
                    )?
                }
                Asked::Vector(v) => steps::explain(&c, ExplainQuery::Vector(v), limit, filter)?,
            };
            Ok(ex.to_json(true))
        })
        .await,
    )
}

/// A sparse query's steps (as `quiver explain --using`): each index's value, IDF, weight, the
/// points holding it, whether pruning skipped its posting list; then the winners.
fn explain_sparse(c: &Collection, b: &Map<String, Value>, sparse: &Value, limit: usize, filter: Option<Filter>) -> ApiResult {
    let Some(using) = field_using(b)? else {
        return Err(ApiError::bad("a sparse query needs \"using\": the sparse vector's name"));
    };
    let quiver::VectorData::Sparse(q) = quiver::vector_data_from_json(&using, sparse)? else {
        return Err(ApiError::bad(
            "sparse must be a sparse vector: {\"indices\": [..], \"values\": [..]}",
        ));
    };
    let mut req = SearchRequest::new(Vec::new(), limit);
    req.filter = filter;
    req.with_payload = true;
    let (hits, ex) = c.explain_sparse(&using, &q, &req)?;
    let terms: Vec<Value> = ex
        .terms
        .iter()
        .map(|t| {
            json!({"index": t.index, "value": f32_json(t.value), "idf": t.idf.map(f32_json), "weight": f32_json(t.weight),
                   "points": t.df, "postings": t.postings, "read_in_full": t.read_in_full})
        })
        .collect();
    let results: Vec<Value> = hits
        .into_iter()
        .map(|h| {
            let doc = h.payload.as_ref().and_then(|p| p.get(quiver::collection::DOCUMENT_KEY)).cloned();
            json!({"id": h.id.to_json(), "score": f32_json(h.score), "document": doc, "payload": h.payload})
        })
        .collect();
    Ok(
        json!({"kind": "sparse", "using": using, "points_with_vector": ex.docs, "terms": terms,
              "entries_read": ex.entries_read, "candidates_after_pruning": ex.candidates, "results": results}),
    )
}

/// `POST /collections/{name}/map` `{"sample" (1000, at most 5000), "filter", "using", "text" |
/// "vector", "limit" (10), "with_payload" (true), "seed" (0)}`: the sample's points on the two
/// principal axes (`x`, `y`), the query's position and its neighbours.
pub(super) async fn map(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || {
            let b = parse_body(&body)?;
            only_fields(
                &b,
                &["sample", "filter", "using", "text", "vector", "limit", "with_payload", "seed"],
                "map request",
            )?;
            let c = collection(&state, &name)?;
            let query = match asked_query(&b, false)? {
                None => None,
                Some(Asked::Vector(v)) => Some(v),
                Some(Asked::Text(t)) => {
                    quiver::check_query_text(&t)?;
                    let model = text_model(&state, &c)?;
                    let v = model.embed(&[t.as_str()]).map_err(|e| ApiError::bad(e.to_string()))?;
                    v.into_iter().next()
                }
            };
            let with_payload = match b.get("with_payload") {
                None => true,
                Some(Value::Bool(w)) => *w,
                Some(other) => return Err(ApiError::bad(format!("with_payload must be true or false, got {other}"))),
            };
            let req = quiver::MapRequest {
                sample: field_usize(&b, "sample", 1000)?,
                filter: field_filter(&b)?,
                using: field_using(&b)?,
                query,
                limit: field_usize(&b, "limit", 10)?,
                with_payload,
                seed: field_usize(&b, "seed", 0)? as u64,
            };
            let m = c.vector_map(&req)?;
            let point = |p: quiver::MapPoint| {
                let mut v = json!({"id": p.id.to_json(), "x": f32_json(p.xy[0]), "y": f32_json(p.xy[1])});
                if let Some(pl) = p.payload {
                    v["payload"] = Value::Object(pl);
                }
                if let Some(s) = p.score {
                    v["score"] = f32_json(s);
                }
                v
            };
            Ok(json!({
                "using": m.using,
                "population": m.population,
                "explained_variance": [f32_json(m.explained[0]), f32_json(m.explained[1])],
                "query": m.query.map(|q| json!({"x": f32_json(q[0]), "y": f32_json(q[1])})),
                "neighbours": m.neighbours.into_iter().map(point).collect::<Vec<_>>(),
                "points": m.points.into_iter().map(point).collect::<Vec<_>>(),
            }))
        })
        .await,
    )
}
