//! Qdrant's older recommend and discover APIs (`/points/recommend`, `/points/recommend/batch`,
//! `/points/recommend/groups`, `/points/discover`, `/points/discover/batch`): each body is
//! rewritten into the Query API's (`{"query": {"recommend" | "discover": ..}, ...}`) and answered
//! by the query stages, so the two spellings cannot disagree. Answers keep the old shape (a
//! list of hits, not `{"points": ..}`).

use super::*;

/// How an older body becomes a Query API body.
type Rewrite = fn(Map<String, Value>) -> Result<Map<String, Value>, ApiError>;

/// `{positive, negative, strategy, filter, limit, ...}` as `{"query": {"recommend": ..}, ...}`.
fn recommend_as_query(mut body: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let mut reco = Map::new();
    for k in ["positive", "negative", "strategy"] {
        if let Some(v) = body.remove(k) {
            reco.insert(k.into(), v);
        }
    }
    reject_present(&body, &["query", "vector"])?;
    body.insert("query".into(), json!({ "recommend": reco }));
    Ok(body)
}

/// `{target, context: [{positive, negative}], filter, limit, ...}` as `{"query": {"discover":
/// ..}}` (or `{"context": ..}` without a target).
fn discover_as_query(mut body: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    reject_present(&body, &["query", "vector"])?;
    let target = body.remove("target").filter(|t| !t.is_null());
    let context = body.remove("context").unwrap_or(Value::Array(Vec::new()));
    let query = match target {
        Some(t) => json!({"discover": {"target": t, "context": context}}),
        None => json!({ "context": context }),
    };
    body.insert("query".into(), query);
    Ok(body)
}

/// One rewritten body answered as the old APIs answer: a list of hits.
async fn one(state: AppState, name: String, body: Bytes, rewrite: Rewrite) -> Response {
    let start = Instant::now();
    let body = match parse_body(&body).and_then(rewrite) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let result = blocking(move || {
        let c = collection(&state, &name)?;
        let q = parse_staged(&body, false, &Resolver { db: &state.db, c: &c })?;
        Ok(Value::Array(q.run(&c)?))
    })
    .await;
    respond(start, result)
}

/// `{"searches": [bodies]}` answered as a list of hit lists.
async fn batch(state: AppState, name: String, body: Bytes, rewrite: Rewrite) -> Response {
    let start = Instant::now();
    let parsed = parse_body(&body).and_then(|b| {
        only_fields(&b, &["searches"], "batch")?;
        b.get("searches")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad("searches must be a list of requests"))?
            .iter()
            .map(|s| rewrite(s.as_object().cloned().ok_or_else(|| ApiError::bad("a request must be an object"))?))
            .collect::<Result<Vec<_>, _>>()
    });
    let bodies = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let result = blocking(move || {
        let c = collection(&state, &name)?;
        let mut out = Vec::with_capacity(bodies.len());
        for body in &bodies {
            let q = parse_staged(body, false, &Resolver { db: &state.db, c: &c })?;
            out.push(Value::Array(q.run(&c)?));
        }
        Ok(Value::Array(out))
    })
    .await;
    respond(start, result)
}

pub(super) async fn recommend_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    one(state, name, body, recommend_as_query).await
}

pub(super) async fn recommend_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    batch(state, name, body, recommend_as_query).await
}

pub(super) async fn discover_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    one(state, name, body, discover_as_query).await
}

pub(super) async fn discover_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    batch(state, name, body, discover_as_query).await
}

/// `/points/recommend/groups`: a recommend body with `group_by`, `group_size`, `with_lookup`.
pub(super) async fn recommend_groups(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    match parse_body(&body).and_then(recommend_as_query) {
        Ok(b) => respond(start, groups(state, name, b, false).await),
        Err(e) => e.into_response(),
    }
}
