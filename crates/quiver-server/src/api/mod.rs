//! The Qdrant-compatible API: the routes (here, with the service endpoints), one room per
//! resource (`collections`, `points`, `search`), the wire format (`wire`: Qdrant's JSON to
//! library types and back) and the error type with its status mapping (`error`). A request
//! field that names a Qdrant feature Quiver lacks gets a 400 that names it, never a silently
//! different answer.

mod batch;
mod collection_config;
mod collections;
mod error;
mod legacy;
mod matrix;
mod points;
mod search;
mod show;
mod snapshots;
mod stages;
mod wire;

use batch::*;
use collection_config::*;
use collections::*;
pub use error::ApiError;
use error::ApiResult;
use legacy::*;
use matrix::*;
use points::*;
use search::*;
use show::*;
use snapshots::*;
use stages::*;
pub use stages::{query_groups_json, query_json, query_json_explained};
use wire::*;

use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use quiver::{
    Collection, CollectionConfig, Error, ErrorKind, Filter, Metric, Payload, PayloadIndexType, Point, PointId, PointSelector, Record,
    ScoredPoint, ScrollRequest, SearchRequest, WriteAck,
};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// The Qdrant REST API version whose subset Quiver implements (reported by `GET /`).
pub const QDRANT_API_VERSION: &str = "1.19.0";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(health))
        .route("/aliases", get(list_aliases))
        .route("/collections/aliases", post(update_aliases))
        .route("/collections/{name}/aliases", get(collection_aliases))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/storage", get(storage))
        .route("/walkthrough", get(walkthrough))
        .route("/collections/{name}/explain", post(explain))
        .route("/collections/{name}/map", post(map))
        .route("/collections", get(list_collections))
        .route(
            "/collections/{name}",
            get(get_collection)
                .put(create_collection)
                .delete(delete_collection)
                .patch(update_collection),
        )
        .route("/collections/{name}/exists", get(collection_exists))
        .route("/collections/{name}/snapshots", get(list_snapshots).post(create_snapshot))
        .route("/collections/{name}/snapshots/recover", put(recover_snapshot))
        .route("/collections/{name}/snapshots/upload", post(upload_snapshot))
        .route(
            "/collections/{name}/snapshots/{snapshot}",
            get(get_snapshot).delete(delete_snapshot),
        )
        .route("/snapshots", get(list_full_snapshots).post(create_full_snapshot))
        .route("/snapshots/{snapshot}", get(get_full_snapshot).delete(delete_full_snapshot))
        .route("/collections/{name}/index", put(create_index))
        .route("/collections/{name}/index/{field}", delete(delete_index))
        .route("/collections/{name}/points", put(upsert_points).post(retrieve_points))
        .route("/collections/{name}/points/{id}", get(get_point))
        .route("/collections/{name}/points/delete", post(delete_points))
        .route("/collections/{name}/points/batch", post(points_batch))
        .route("/collections/{name}/points/payload", post(set_payload).put(overwrite_payload))
        .route("/collections/{name}/points/payload/delete", post(delete_payload))
        .route("/collections/{name}/points/payload/clear", post(clear_payload))
        .route("/collections/{name}/points/scroll", post(scroll_points))
        .route("/collections/{name}/points/vectors", put(update_vectors))
        .route("/collections/{name}/points/vectors/delete", post(delete_vectors))
        .route("/collections/{name}/points/count", post(count_points))
        .route("/collections/{name}/facet", post(facet))
        .route("/collections/{name}/points/query", post(query_points))
        .route("/collections/{name}/context", post(context))
        .route("/collections/{name}/points/query/batch", post(query_batch))
        .route("/collections/{name}/points/query/groups", post(query_groups))
        .route("/collections/{name}/points/search/groups", post(search_groups))
        .route("/collections/{name}/points/search", post(search_points))
        .route("/collections/{name}/points/search/batch", post(search_batch))
        .route("/collections/{name}/points/search/matrix/pairs", post(matrix_pairs))
        .route("/collections/{name}/points/search/matrix/offsets", post(matrix_offsets))
        .route("/collections/{name}/points/recommend", post(recommend_points))
        .route("/collections/{name}/points/recommend/batch", post(recommend_batch))
        .route("/collections/{name}/points/recommend/groups", post(recommend_groups))
        .route("/collections/{name}/points/discover", post(discover_points))
        .route("/collections/{name}/points/discover/batch", post(discover_batch))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
}

/// Wraps a result in Qdrant's envelope.
pub(super) fn respond(start: Instant, result: ApiResult) -> Response {
    match result {
        Ok(v) => axum::Json(json!({"result": v, "status": "ok", "time": start.elapsed().as_secs_f64()})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs library work on the blocking pool (fsync and scans must not stall the async workers).
pub(super) async fn blocking<F>(f: F) -> ApiResult
where
    F: FnOnce() -> ApiResult + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}"))))
}

pub(super) fn collection(state: &AppState, name: &str) -> Result<Collection, ApiError> {
    state.db.collection(name).map_err(ApiError::from)
}

async fn root() -> Response {
    axum::Json(json!({"title": "quiver - vector search engine", "version": QDRANT_API_VERSION,
               "commit": option_env!("QUIVER_GIT_COMMIT").unwrap_or(concat!("quiver-", env!("CARGO_PKG_VERSION")))}))
    .into_response()
}

async fn health() -> &'static str {
    "healthz check passed"
}

/// Readiness, in Qdrant's words: a single-node Quiver is ready once it listens.
async fn ready() -> &'static str {
    "all shards are ready"
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = tokio::task::spawn_blocking(move || state.metrics.render(&state))
        .await
        .unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Where the collections live: the data folder, or object storage with each open collection's
/// role, log position, staleness (replicas) and acknowledgement latency (writers).
async fn storage(State(state): State<AppState>) -> Response {
    let db = state.db.clone();
    let body = tokio::task::spawn_blocking(move || {
        let Some((url, read_only)) = db.storage_url() else {
            return json!({"storage": "local", "data_dir": db.root().display().to_string()});
        };
        let mut collections = serde_json::Map::new();
        for name in db.list_collections().unwrap_or_default() {
            if let Some(r) = db.collection(&name).ok().and_then(|c| c.remote_status()) {
                collections.insert(
                    name,
                    json!({"role": r.role, "log_entry": r.entry, "staleness_ms": r.staleness_ms, "ack_p50_ms": r.ack_p50_ms,
                           "ack_p99_ms": r.ack_p99_ms, "acked_writes": r.acked_writes, "error": r.error,
                           "base_bytes": r.base_bytes, "base_present_bytes": r.base_present_bytes,
                           "base_fetched_bytes": r.base_fetched_bytes}),
                );
            }
        }
        let (cache_bytes, cache_max_bytes) = db.cache_usage().unwrap_or_default();
        json!({"storage": url, "read_only": read_only, "cache_dir": db.root().display().to_string(), "cache_bytes": cache_bytes,
               "cache_max_bytes": cache_max_bytes, "collections": collections})
    })
    .await
    .unwrap_or_default();
    axum::Json(body).into_response()
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "Not found: no such endpoint in Quiver's API").into_response()
}
