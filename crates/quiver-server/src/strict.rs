//! Strict mode at the door: before a request on a collection reaches its handler, the
//! collection's limits are checked against the request (its JSON body and its `timeout`), and
//! its cost is taken from the read or write bucket. The rules and their wording are the
//! library's (`quiver::strict_mode`); this room only knows which route reads what. A
//! collection without strict mode costs one settings read per request and nothing else.
//!
//! Costs follow Qdrant: a read costs one per query vector (one per example for the
//! `best_score` and `sum_scores` recommend strategies, one per row of a multivector) plus one
//! per filter condition, a retrieve one per id; a write one per point it names, or for a
//! filter the points it matches (half the collection when the filter reads unindexed keys,
//! Qdrant's estimate).

use crate::api::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quiver::strict_mode::{read_cost, RateKind, SearchShape};
use quiver::{Collection, Filter, StrictMode};
use serde_json::{Map, Value};

/// What a route does, as strict mode sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// One search, query, recommend or discover body.
    Search,
    /// `{"searches": [...]}`.
    Batch,
    /// A grouped search: `limit` groups of `group_size`.
    Groups,
    /// A distance matrix: `sample` points, `limit` neighbours each.
    Matrix,
    /// Scroll, count, facet: a filter and a limit.
    Listing,
    /// Points by id (`POST points`).
    Retrieve,
    /// One point by id (`GET points/{id}`).
    RetrieveOne,
    /// `PUT points`.
    Upsert,
    /// `PUT points/vectors`.
    UpdateVectors,
    /// Deletes and payload edits by ids or filter.
    Selected {
        /// It adds payload bytes (set / overwrite payload).
        grows: bool,
    },
    /// `POST points/batch`: a list of the writes above.
    WriteBatch,
    /// `PUT index`: one more payload index.
    CreateIndex,
}

fn classify(method: &Method, op: &str) -> Option<Route> {
    let post = method == Method::POST;
    Some(match op {
        "points/search" | "points/query" | "points/recommend" | "points/discover" if post => Route::Search,
        "points/search/batch" | "points/query/batch" | "points/recommend/batch" | "points/discover/batch" if post => Route::Batch,
        "points/query/groups" | "points/search/groups" | "points/recommend/groups" if post => Route::Groups,
        "points/search/matrix/pairs" | "points/search/matrix/offsets" if post => Route::Matrix,
        "points/scroll" | "points/count" | "facet" if post => Route::Listing,
        "points" if post => Route::Retrieve,
        "points" if method == Method::PUT => Route::Upsert,
        "points/vectors" if method == Method::PUT => Route::UpdateVectors,
        "points/payload" if post || method == Method::PUT => Route::Selected { grows: true },
        "points/delete" | "points/payload/delete" | "points/payload/clear" | "points/vectors/delete" if post => {
            Route::Selected { grows: false }
        }
        "points/batch" if post => Route::WriteBatch,
        "index" if method == Method::PUT => Route::CreateIndex,
        _ if method == Method::GET && op.starts_with("points/") && !op[7..].contains('/') => Route::RetrieveOne,
        _ => return None,
    })
}

/// The middleware: checks a request on a collection in strict mode, or lets it through.
pub async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // `timeout` (seconds) is a positive whole number on every route, as in Qdrant.
    if let Some(t) = query_param(&req, "timeout") {
        match t.parse::<u64>() {
            Ok(0) => {
                return ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "Validation error in query parameters: [timeout: value 0 invalid, must be 1 or larger]",
                )
                .into_response()
            }
            Ok(_) => {}
            Err(_) => {
                return ApiError::bad(format!(
                    "Query deserialize error: timeout must be a whole number of seconds, got {t:?}"
                ))
                .into_response()
            }
        }
    }
    let Some(rest) = req.uri().path().strip_prefix("/collections/") else {
        return next.run(req).await;
    };
    let Some((name, op)) = rest.split_once('/') else {
        return next.run(req).await;
    };
    let Some(route) = classify(req.method(), op) else {
        return next.run(req).await;
    };
    // An unknown collection is the handler's to report.
    let Ok(c) = state.db.collection(name) else {
        return next.run(req).await;
    };
    let sm = c.strict_mode();
    if !sm.is_enabled() {
        return next.run(req).await;
    }
    let timeout = query_param(&req, "timeout").and_then(|v| v.parse::<usize>().ok());
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.body_bytes_max).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad(format!("could not read the request body: {e}")).into_response(),
    };
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let checked = tokio::task::spawn_blocking(move || check(&c, &sm, route, &json, timeout)).await;
    match checked {
        Ok(Ok(())) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}")).into_response(),
    }
}

/// A query-string parameter's raw value.
fn query_param(req: &Request, name: &str) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Every check of one request, then its cost.
fn check(c: &Collection, sm: &StrictMode, route: Route, body: &Value, timeout: Option<usize>) -> quiver::Result<()> {
    if let Some(t) = timeout {
        sm.check_timeout(t)?;
    }
    let empty = Map::new();
    let o = body.as_object().unwrap_or(&empty);
    let index_of = |k: &str| c.payload_index_caps(k);
    match route {
        Route::Search | Route::Batch | Route::Groups | Route::Matrix | Route::Listing => {
            let bodies: Vec<&Map<String, Value>> = if route == Route::Batch {
                let list = o.get("searches").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
                sm.check_search_batch(list.len())?;
                list.iter().filter_map(Value::as_object).collect()
            } else {
                vec![o]
            };
            let mut cost = 0;
            for b in bodies {
                cost += check_search_body(sm, route, b, 0, &index_of)?;
            }
            c.charge(RateKind::Read, cost.max(1))
        }
        Route::Retrieve => {
            let n = o.get("ids").and_then(Value::as_array).map_or(0, Vec::len);
            c.charge(RateKind::Read, n.max(1))
        }
        Route::RetrieveOne => c.charge(RateKind::Read, 1),
        Route::Upsert | Route::UpdateVectors => check_write_points(c, sm, route, o),
        Route::Selected { grows } => check_selected(c, sm, o, grows),
        Route::WriteBatch => {
            for op in o.get("operations").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
                let Some((kind, inner)) = op.as_object().and_then(|m| m.iter().next()) else {
                    continue;
                };
                let inner = inner.as_object().unwrap_or(&empty);
                match kind.as_str() {
                    "upsert" => check_write_points(c, sm, Route::Upsert, inner)?,
                    "update_vectors" => check_write_points(c, sm, Route::UpdateVectors, inner)?,
                    "set_payload" | "overwrite_payload" => check_selected(c, sm, inner, true)?,
                    _ => check_selected(c, sm, inner, false)?,
                }
            }
            Ok(())
        }
        Route::CreateIndex => sm.check_payload_index_count(c.info().payload_indexes.len()),
    }
}

/// A search-like body (and its prefetches): limits, filter, parameters; returns its cost.
fn check_search_body(
    sm: &StrictMode,
    route: Route,
    o: &Map<String, Value>,
    depth: usize,
    index_of: &dyn Fn(&str) -> Option<quiver::strict_mode::IndexCaps>,
) -> quiver::Result<usize> {
    let num = |k: &str| o.get(k).and_then(Value::as_u64).map(|n| n as usize);
    let limit = match route {
        Route::Groups if depth == 0 => Some(num("limit").unwrap_or(10) * num("group_size").unwrap_or(1)),
        Route::Matrix => Some(num("sample").unwrap_or(10) * num("limit").unwrap_or(3)),
        Route::Listing => num("limit"),
        _ => num("limit").or(Some(10)),
    };
    let filter = o.get("filter").filter(|f| !f.is_null()).and_then(|f| Filter::from_json(f).ok());
    let params = o.get("params").and_then(Value::as_object);
    let shape = SearchShape {
        limit,
        filter: filter.as_ref(),
        exact: params.and_then(|p| p.get("exact")).and_then(Value::as_bool).unwrap_or(false),
        ef: params.and_then(|p| p.get("hnsw_ef")).and_then(Value::as_u64).map(|n| n as usize),
        oversampling: params
            .and_then(|p| p.get("quantization"))
            .and_then(|q| q.get("oversampling"))
            .and_then(Value::as_f64),
    };
    sm.check_search(&shape, index_of)?;
    if let Some(q) = o.get("query").and_then(|q| q.get("formula")) {
        if let Ok(f) = quiver::formula::Formula::from_json(q, None) {
            sm.check_formula(&f, index_of)?;
        }
    }
    let mut cost = read_cost(filter.as_ref()) - 1;
    cost += match route {
        Route::Listing => 1,
        _ => query_cost(o),
    };
    let prefetches: Vec<&Value> = match o.get("prefetch") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(p @ Value::Object(_)) => vec![p],
        _ => Vec::new(),
    };
    for p in prefetches.into_iter().filter_map(Value::as_object) {
        cost += check_search_body(sm, Route::Search, p, depth + 1, index_of)?;
    }
    Ok(cost)
}

/// What the vectors of a query cost: one per vector it scores with.
fn query_cost(o: &Map<String, Value>) -> usize {
    fn vector(v: &Value) -> usize {
        match v {
            Value::Array(items) if items.first().is_some_and(Value::is_array) => items.len(),
            Value::Object(q) if q.contains_key("nearest") => vector(&q["nearest"]),
            Value::Object(q) if q.contains_key("recommend") => examples(q["recommend"].as_object()),
            Value::Object(q) if q.contains_key("discover") || q.contains_key("context") => {
                let d = q.get("discover").unwrap_or(&Value::Null);
                let pairs = d
                    .get("context")
                    .or_else(|| q.get("context"))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                usize::from(d.get("target").is_some()) + 2 * pairs
            }
            Value::Object(q)
                if ["fusion", "rrf", "sample", "order_by", "formula"]
                    .iter()
                    .any(|k| q.contains_key(*k)) =>
            {
                0
            }
            Value::Null => 0,
            _ => 1,
        }
    }
    fn examples(r: Option<&Map<String, Value>>) -> usize {
        let Some(r) = r else { return 1 };
        let per_example = matches!(r.get("strategy").and_then(Value::as_str), Some("best_score" | "sum_scores"));
        if !per_example {
            return 1;
        }
        ["positive", "negative"]
            .iter()
            .map(|k| r.get(*k).and_then(Value::as_array).map_or(0, Vec::len))
            .sum()
    }
    if o.contains_key("positive") || o.contains_key("negative") {
        return examples(Some(o));
    }
    vector(o.get("query").or_else(|| o.get("vector")).unwrap_or(&Value::Null))
}

/// An upsert or a vector update: batch size, multivector and sparse sizes, the collection's
/// size, then one write token per point.
fn check_write_points(c: &Collection, sm: &StrictMode, route: Route, o: &Map<String, Value>) -> quiver::Result<()> {
    let what = if route == Route::Upsert { "upsert limit" } else { "update limit" };
    let mut named: Vec<(&str, &Value)> = Vec::new();
    let n = match (o.get("points"), o.get("batch")) {
        (Some(Value::Array(points)), _) => {
            for p in points {
                if let Some(Value::Object(v)) = p.get("vector") {
                    named.extend(v.iter().map(|(k, v)| (k.as_str(), v)));
                }
            }
            points.len()
        }
        (_, Some(Value::Object(b))) => {
            if let Some(Value::Object(v)) = b.get("vectors") {
                for (k, list) in v {
                    for item in list.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                        named.push((k.as_str(), item));
                    }
                }
            }
            b.get("ids").and_then(Value::as_array).map_or(0, Vec::len)
        }
        _ => 0,
    };
    quiver::strict_mode::check_limit(n, sm.upsert_max_batchsize, what)?;
    for (name, v) in named {
        match v {
            Value::Array(rows) if rows.first().is_some_and(Value::is_array) => sm.check_multivector(name, rows.len())?,
            Value::Object(s) => sm.check_sparse(name, s.get("indices").and_then(Value::as_array).map_or(0, Vec::len))?,
            _ => {}
        }
    }
    sm.check_size(|| c.size_stats())?;
    c.charge(RateKind::Write, n.max(1))
}

/// A write that names points by `points` (ids) or `filter`: the filter's keys (write
/// switch), the size limits for writes that add payload, then the cost.
fn check_selected(c: &Collection, sm: &StrictMode, o: &Map<String, Value>, grows: bool) -> quiver::Result<()> {
    let index_of = |k: &str| c.payload_index_caps(k);
    if grows {
        sm.check_size(|| c.size_stats())?;
    }
    let ids = o.get("points").and_then(Value::as_array).map(Vec::len);
    let filter = o
        .get("filter")
        .or_else(|| o.get("points").filter(|p| p.is_object()))
        .filter(|f| !f.is_null())
        .and_then(|f| Filter::from_json(f).ok());
    let cost = match (&filter, ids) {
        (Some(f), _) => {
            sm.check_filter(f, true, &index_of)?;
            let all_indexed = StrictMode {
                enabled: Some(true),
                unindexed_filtering_update: Some(false),
                ..StrictMode::default()
            }
            .check_filter(f, true, &index_of)
            .is_ok();
            if all_indexed {
                c.count(Some(f))
            } else {
                c.len() / 2
            }
        }
        (None, Some(n)) => n,
        (None, None) => 1,
    };
    c.charge(RateKind::Write, cost.max(1))
}
