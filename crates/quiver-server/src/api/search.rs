//! Routes that search: the Query API (dense, keyword, hybrid with prefetches and fusion), the
//! older search API, batches, and Quiver's `/context` for RAG.

use super::*;

pub(super) async fn run_searches(
    state: AppState,
    name: String,
    reqs: Vec<(SearchRequest, PayloadSelect)>,
) -> Result<Vec<Vec<Value>>, ApiError> {
    // Every search goes through the batcher, so concurrent requests share one pass over the
    // vectors; a batch request's searches are queued together.
    let (searches, sels): (Vec<SearchRequest>, Vec<PayloadSelect>) = reqs.into_iter().unzip();
    let pending: Vec<_> = searches.into_iter().map(|r| state.searches.submit(name.clone(), r)).collect();
    let mut out = Vec::with_capacity(pending.len());
    for (p, sel) in pending.into_iter().zip(&sels) {
        out.push(p.wait().await?.into_iter().map(|h| scored_json(h, sel)).collect());
    }
    Ok(out)
}

/// A hybrid query of the Query API: one dense and one keyword (BM25) prefetch fused by RRF.
pub(super) struct HybridQuery {
    dense: SearchRequest,
    text: String,
    fusion: quiver::Fusion,
    depth: usize,
    sel: PayloadSelect,
}

/// `prefetch: [dense, keyword]` with `query: {"fusion": "rrf"}` (or `{"rrf": {"k", "weights"}}`,
/// weights in prefetch order). The top-level `filter` applies to both rankings.
pub(super) fn parse_hybrid(body: &Map<String, Value>) -> Result<HybridQuery, ApiError> {
    reject_present(body, &["lookup_from", "shard_key", "score_threshold"])?;
    main_using(body)?;
    let list = crate::documents::prefetches(body);
    let only = || ApiError::unsupported("prefetch other than one dense and one keyword (bm25) query fused by rrf");
    if list.len() != 2 {
        return Err(only());
    }
    let (mut dense, mut text, mut depth) = (None, None, 0usize);
    let mut order = Vec::new();
    for p in &list {
        let o = p.as_object().ok_or_else(|| ApiError::bad("a prefetch must be an object"))?;
        reject_present(o, &["prefetch", "filter", "lookup_from", "score_threshold"])?;
        depth = depth.max(field_limit(o, 20)?);
        let q = o.get("query").ok_or_else(|| ApiError::bad("a prefetch needs a query"))?;
        if crate::documents::is_keyword_prefetch(p) {
            let t = match q.get("nearest").unwrap_or(q) {
                Value::String(t) => t.clone(),
                Value::Object(d) => d
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::bad("a keyword prefetch needs text"))?
                    .to_string(),
                _ => {
                    return Err(ApiError::bad(
                        "a keyword prefetch query must be a document {text, model} or a string",
                    ))
                }
            };
            text = Some(t);
            order.push(false);
        } else {
            main_using(o)?;
            let v = match q {
                Value::Array(_) => parse_vector(q, "prefetch.query")?,
                Value::Object(n) if n.contains_key("nearest") => parse_vector(&n["nearest"], "prefetch.query.nearest")?,
                _ => return Err(only()),
            };
            dense = Some(v);
            order.push(true);
        }
    }
    let (Some(vector), Some(text)) = (dense, text) else {
        return Err(only());
    };
    let mut fusion = quiver::Fusion::default();
    match body.get("query") {
        Some(Value::Object(q)) if q.get("fusion").and_then(Value::as_str) == Some("rrf") => {}
        Some(Value::Object(q)) if q.get("rrf").is_some_and(Value::is_object) => {
            let r = q["rrf"].as_object().expect("checked");
            if let Some(k) = r.get("k").filter(|v| !v.is_null()) {
                fusion.k = k
                    .as_f64()
                    .filter(|k| *k >= 0.0)
                    .ok_or_else(|| ApiError::bad("rrf.k must be a non-negative number"))? as f32;
            }
            if let Some(w) = r.get("weights").filter(|v| !v.is_null()) {
                let w: Vec<f32> = w
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .and_then(|a| a.iter().map(|x| x.as_f64().filter(|x| *x >= 0.0).map(|x| x as f32)).collect())
                    .ok_or_else(|| ApiError::bad("rrf.weights must be two non-negative numbers, one per prefetch"))?;
                for (is_dense, w) in order.iter().zip(w) {
                    if *is_dense {
                        fusion.dense_weight = w;
                    } else {
                        fusion.text_weight = w;
                    }
                }
            }
        }
        Some(Value::Object(q)) if q.contains_key("fusion") => return Err(ApiError::unsupported(&format!("fusion {}", q["fusion"]))),
        _ => return Err(only()),
    }
    let (exact, ef) = check_params(body)?;
    let sel = parse_with_payload(body, true)?;
    let dense = SearchRequest {
        vector,
        limit: field_limit(body, 10)?,
        offset: field_usize(body, "offset", 0)?,
        filter: field_filter(body)?,
        score_threshold: None,
        with_payload: !matches!(sel, PayloadSelect::None),
        with_vector: parse_with_vector(body)?,
        exact,
        ef,
    };
    Ok(HybridQuery {
        dense,
        text,
        fusion,
        depth,
        sel,
    })
}

/// Quiver's extension for RAG: `{"question", "limit", "max_tokens", "filter"}` on a text
/// collection gives the best passages (adjacent ingested chunks merged) with their sources,
/// from hybrid retrieval when the collection has a full-text index, dense otherwise.
pub(super) async fn context(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    use quiver_embed::Embedder;
    let start = Instant::now();
    let parsed = (|| {
        let b = parse_body(&body)?;
        for k in b.keys() {
            if !matches!(k.as_str(), "question" | "limit" | "max_tokens" | "filter") {
                return Err(ApiError::bad(format!(
                    "unknown field {k:?}; context takes question, limit, max_tokens, filter"
                )));
            }
        }
        let question = b
            .get("question")
            .and_then(Value::as_str)
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| ApiError::bad("question must be a non-empty string"))?;
        if question.len() > 10_000 {
            return Err(ApiError::bad("question is longer than 10,000 bytes"));
        }
        let limit = field_usize(&b, "limit", 5)?;
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad("limit must be 1..=100"));
        }
        let max_tokens = field_usize(&b, "max_tokens", 1000)?;
        Ok((question.to_string(), limit, max_tokens, field_filter(&b)?))
    })();
    let (question, limit, max_tokens, filter) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let result = blocking(move || {
        let c = collection(&state, &name)?;
        if c.config().embedder.is_none() {
            return Err(ApiError::bad(format!("collection {name:?} has no embedder; context needs a text collection")));
        }
        let m = crate::documents::model(&state, c.config().embed_precision)?;
        let q = m.embed(&[question.as_str()]).map_err(|e| ApiError::bad(e.to_string()))?.pop().unwrap_or_default();
        let count = |s: &str| m.tokenize(s).map(|(_, ids)| ids.len().saturating_sub(2)).unwrap_or(0);
        let passages: Vec<Value> = quiver::context::retrieve(&c, &question, q, limit, filter, max_tokens, &count)?
            .into_iter()
            .map(|p| json!({"source": p.source, "chunks": [p.first_chunk, p.last_chunk], "start": p.start, "end": p.end, "score": f32_json(p.score), "text": p.text}))
            .collect();
        Ok(json!({"question": question, "passages": passages}))
    })
    .await;
    respond(start, result)
}

/// A keyword-only query of the Query API: `query` is a BM25 document (`{"text", "model":
/// "Qdrant/bm25"}`) or a string, with `using: "bm25"` (or `text` / `keyword`), and no prefetch.
pub(super) struct KeywordQuery {
    text: String,
    limit: usize,
    offset: usize,
    filter: Option<Filter>,
    sel: PayloadSelect,
}

pub(super) fn parse_keyword_query(body: &Map<String, Value>) -> Result<Option<KeywordQuery>, ApiError> {
    if body.contains_key("prefetch") || !crate::documents::is_keyword_query(body) {
        return Ok(None);
    }
    reject_present(body, &["lookup_from", "shard_key", "score_threshold"])?;
    // Clients send a document either as the query or wrapped as `{"nearest": document}`.
    let query = body.get("query").map(|q| q.get("nearest").unwrap_or(q));
    let text = match query {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Object(d)) => d
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("a keyword query needs text"))?
            .to_string(),
        _ => return Err(ApiError::bad("a keyword query must be a document {text, model} or a string")),
    };
    Ok(Some(KeywordQuery {
        text,
        limit: field_limit(body, 10)?,
        offset: field_usize(body, "offset", 0)?,
        filter: field_filter(body)?,
        sel: parse_with_payload(body, false)?,
    }))
}

/// A Query API request without a query: the points in id order (as a scroll), under the filter,
/// `offset` and `limit` counting points; every score is 0.
async fn query_without_query(state: AppState, name: String, body: Map<String, Value>) -> ApiResult {
    reject_present(&body, &["lookup_from", "using", "score_threshold"])?;
    let limit = field_limit(&body, 10)?;
    let offset = field_usize(&body, "offset", 0)?;
    let sel = parse_with_payload(&body, false)?;
    let req = ScrollRequest {
        offset: None,
        limit: limit.saturating_add(offset).min(quiver::SEARCH_LIMIT_MAX),
        filter: field_filter(&body)?,
        with_payload: !matches!(sel, PayloadSelect::None),
        with_vector: parse_with_vector(&body)?,
    };
    blocking(move || {
        let page = collection(&state, &name)?.scroll(&req)?;
        let points: Vec<Value> = page
            .points
            .into_iter()
            .skip(offset)
            .map(|r| {
                scored_json(
                    ScoredPoint {
                        id: r.id,
                        score: 0.0,
                        payload: r.payload,
                        vector: r.vector,
                        vectors: r.vectors,
                    },
                    &sel,
                )
            })
            .collect();
        Ok(json!({ "points": points }))
    })
    .await
}

/// Qdrant's maximal marginal relevance: `{"nearest": v, "mmr": {"diversity", "candidates_limit"}}`.
struct Mmr {
    diversity: f32,
    candidates: Option<usize>,
}

/// Takes `query.mmr` out of a Query API body (leaving `{"nearest": v}` for the search parser).
fn take_mmr(mut body: Map<String, Value>) -> Result<(Option<Mmr>, Map<String, Value>), ApiError> {
    let Some(Value::Object(q)) = body.get_mut("query") else {
        return Ok((None, body));
    };
    let Some(m) = q.remove("mmr").filter(|m| !m.is_null()) else {
        return Ok((None, body));
    };
    let m = m
        .as_object()
        .ok_or_else(|| ApiError::bad("mmr must be an object {diversity, candidates_limit}"))?;
    if let Some(k) = m.keys().find(|k| !matches!(k.as_str(), "diversity" | "candidates_limit")) {
        return Err(ApiError::bad(format!(
            "mmr: unknown field {k:?} (expected diversity, candidates_limit)"
        )));
    }
    let diversity = match m.get("diversity") {
        None | Some(Value::Null) => 0.5,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| ApiError::bad("mmr.diversity must be a number from 0 to 1"))? as f32,
    };
    let candidates = match m.get("candidates_limit") {
        None | Some(Value::Null) => None,
        Some(_) => Some(field_usize(m, "candidates_limit", 0)?),
    };
    Ok((Some(Mmr { diversity, candidates }), body))
}

pub(super) async fn query_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let keyword = match parse_body(&body).and_then(|b| parse_keyword_query(&b)) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    if let Some(kq) = keyword {
        let result = blocking(move || {
            let c = collection(&state, &name)?;
            let with_payload = !matches!(kq.sel, PayloadSelect::None);
            let hits = c.search_text(
                &kq.text,
                None,
                kq.limit.saturating_add(kq.offset),
                kq.filter.as_ref(),
                quiver::With {
                    payload: with_payload,
                    vector: false,
                },
            )?;
            let points: Vec<Value> = hits.into_iter().skip(kq.offset).map(|p| scored_json(p, &kq.sel)).collect();
            Ok(json!({ "points": points }))
        })
        .await;
        return respond(start, result);
    }
    let parsed = body_with_vectors(&state, &name, &body).await;
    if let Ok(b) = &parsed {
        if needs_stages(b) || without_main(&state, &name) {
            let body = b.clone();
            let result = blocking(move || {
                let c = collection(&state, &name)?;
                let q = parse_staged(&body, true, &Resolver { db: &state.db, c: &c })?;
                Ok(json!({"points": q.run(&c)?}))
            })
            .await;
            return respond(start, result);
        }
        if b.contains_key("prefetch") {
            let h = match parse_hybrid(b) {
                Ok(h) => h,
                Err(e) => return e.into_response(),
            };
            let result = blocking(move || {
                let c = collection(&state, &name)?;
                c.check_search(&h.dense)?;
                let hits = c.hybrid(&h.dense, &h.text, &h.fusion, h.depth)?;
                Ok(json!({"points": hits.into_iter().map(|p| scored_json(p, &h.sel)).collect::<Vec<_>>()}))
            })
            .await;
            return respond(start, result);
        }
    }
    let (mmr, parsed) = match parsed.and_then(take_mmr) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    if parsed.get("query").is_none_or(Value::is_null) && !parsed.contains_key("prefetch") {
        return respond(start, query_without_query(state, name, parsed).await);
    }
    let req = match parse_search(&parsed, true) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Some(m) = mmr {
        let (req, sel) = req;
        let result = blocking(move || {
            let c = collection(&state, &name)?;
            let hits = c.search_mmr(&req, m.diversity, m.candidates.unwrap_or(req.limit))?;
            Ok(json!({"points": hits.into_iter().map(|p| scored_json(p, &sel)).collect::<Vec<_>>()}))
        })
        .await;
        return respond(start, result);
    }
    let result = run_searches(state, name, vec![req])
        .await
        .map(|mut r| json!({"points": r.pop().unwrap_or_default()}));
    respond(start, result)
}

/// True when the collection has no main vector (every space is named, sparse or multi): its
/// searches go through the query stages, which search any space.
fn without_main(state: &AppState, name: &str) -> bool {
    state.db.collection(name).is_ok_and(|c| c.dim() == 0)
}

/// A batch of which some searches need the query stages: every search runs through them.
fn staged_batch(body: &Map<String, Value>, no_main: bool) -> Option<Vec<Map<String, Value>>> {
    let list = body.get("searches").and_then(Value::as_array)?;
    if !no_main && !list.iter().any(|s| s.as_object().is_some_and(needs_stages)) {
        return None;
    }
    Some(list.iter().map(|s| s.as_object().cloned().unwrap_or_default()).collect())
}

async fn run_staged_batch(state: AppState, name: String, bodies: Vec<Map<String, Value>>, query_api: bool) -> ApiResult {
    blocking(move || {
        let c = collection(&state, &name)?;
        let mut out = Vec::with_capacity(bodies.len());
        for body in &bodies {
            let hits = parse_staged(body, query_api, &Resolver { db: &state.db, c: &c })?.run(&c)?;
            out.push(if query_api { json!({ "points": hits }) } else { Value::Array(hits) });
        }
        Ok(Value::Array(out))
    })
    .await
}

pub(super) async fn query_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let resolved = body_with_vectors(&state, &name, &body).await;
    if let Ok(b) = &resolved {
        if let Some(bodies) = staged_batch(b, without_main(&state, &name)) {
            return respond(start, run_staged_batch(state, name, bodies, true).await);
        }
    }
    let reqs = match resolved.and_then(|b| parse_batch(&b, true)) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let result = run_searches(state, name, reqs)
        .await
        .map(|r| Value::Array(r.into_iter().map(|p| json!({"points": p})).collect()));
    respond(start, result)
}

pub(super) async fn search_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    if let Ok(b) = parse_body(&body) {
        if needs_stages(&b) || without_main(&state, &name) {
            let result = blocking(move || {
                let c = collection(&state, &name)?;
                Ok(Value::Array(parse_staged(&b, false, &Resolver { db: &state.db, c: &c })?.run(&c)?))
            })
            .await;
            return respond(start, result);
        }
    }
    let req = match parse_body(&body).and_then(|b| parse_search(&b, false)) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let result = run_searches(state, name, vec![req])
        .await
        .map(|mut r| Value::Array(r.pop().unwrap_or_default()));
    respond(start, result)
}

pub(super) async fn search_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    if let Ok(b) = parse_body(&body) {
        if let Some(bodies) = staged_batch(&b, without_main(&state, &name)) {
            return respond(start, run_staged_batch(state, name, bodies, false).await);
        }
    }
    let reqs = match parse_body(&body).and_then(|b| parse_batch(&b, false)) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let result = run_searches(state, name, reqs)
        .await
        .map(|r| Value::Array(r.into_iter().map(Value::Array).collect()));
    respond(start, result)
}
