//! Routes and handlers of the Qdrant-compatible API, and the wire format: request parsing from
//! JSON into library types and responses in Qdrant's envelope. A request field that names a
//! Qdrant feature Quiver lacks gets a 400 that names it, never a silently different answer.

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
use std::time::Instant;

/// The Qdrant REST API version whose subset Quiver implements (reported by `GET /`).
pub const QDRANT_API_VERSION: &str = "1.19.0";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/metrics", get(metrics))
        .route("/collections", get(list_collections))
        .route(
            "/collections/{name}",
            get(get_collection)
                .put(create_collection)
                .delete(delete_collection)
                .patch(update_collection),
        )
        .route("/collections/{name}/exists", get(collection_exists))
        .route("/collections/{name}/index", put(create_index))
        .route("/collections/{name}/index/{field}", delete(delete_index))
        .route("/collections/{name}/points", put(upsert_points).post(retrieve_points))
        .route("/collections/{name}/points/{id}", get(get_point))
        .route("/collections/{name}/points/delete", post(delete_points))
        .route("/collections/{name}/points/payload", post(set_payload).put(overwrite_payload))
        .route("/collections/{name}/points/payload/delete", post(delete_payload))
        .route("/collections/{name}/points/payload/clear", post(clear_payload))
        .route("/collections/{name}/points/scroll", post(scroll_points))
        .route("/collections/{name}/points/count", post(count_points))
        .route("/collections/{name}/points/query", post(query_points))
        .route("/collections/{name}/context", post(context))
        .route("/collections/{name}/points/query/batch", post(query_batch))
        .route("/collections/{name}/points/search", post(search_points))
        .route("/collections/{name}/points/search/batch", post(search_batch))
        .fallback(not_found)
}

/// An error in Qdrant's shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn unsupported(what: &str) -> ApiError {
        ApiError::bad(format!("Unsupported: {what} is not supported by Quiver yet"))
    }
}

/// The one place where library errors become HTTP statuses.
impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match e.kind() {
            ErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Locked => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Storage => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let prefix = match e.kind() {
            ErrorKind::BadInput => "Wrong input: ",
            ErrorKind::NotFound => "Not found: ",
            _ => "",
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "storage error");
        }
        ApiError::new(status, format!("{prefix}{e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"status": {"error": self.message}, "time": 0.0, "result": null})),
        )
            .into_response()
    }
}

type ApiResult = Result<Value, ApiError>;

/// Wraps a result in Qdrant's envelope.
fn respond(start: Instant, result: ApiResult) -> Response {
    match result {
        Ok(v) => axum::Json(json!({"result": v, "status": "ok", "time": start.elapsed().as_secs_f64()})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs library work on the blocking pool (fsync and scans must not stall the async workers).
async fn blocking<F>(f: F) -> ApiResult
where
    F: FnOnce() -> ApiResult + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}"))))
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad("Format error in JSON body: expected an object")),
        Err(e) => Err(ApiError::bad(format!("Format error in JSON body: {e}"))),
    }
}

fn collection(state: &AppState, name: &str) -> Result<Collection, ApiError> {
    state.db.collection(name).map_err(ApiError::from)
}

// ---- field helpers -------------------------------------------------------------------------

fn field_usize(body: &Map<String, Value>, key: &str, default: usize) -> Result<usize, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::bad(format!("{key} must be a non-negative integer, got {v}"))),
    }
}

fn field_filter(body: &Map<String, Value>) -> Result<Option<Filter>, ApiError> {
    match body.get("filter") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(Filter::from_json(v)?)),
    }
}

fn reject_present(body: &Map<String, Value>, keys: &[&str]) -> Result<(), ApiError> {
    for k in keys {
        if body.get(*k).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::unsupported(&format!("the {k:?} field")));
        }
    }
    Ok(())
}

fn parse_vector(v: &Value, what: &str) -> Result<Vec<f32>, ApiError> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|x| {
                x.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| ApiError::bad(format!("{what}: vector elements must be numbers, got {x}")))
            })
            .collect(),
        Value::Object(o) if o.contains_key("text") => Err(ApiError::unsupported(&format!(
            "{what}: documents here (they are taken in points, batch vectors and queries)"
        ))),
        Value::Object(o) if o.contains_key("indices") => Err(ApiError::unsupported(&format!("{what}: sparse vectors"))),
        Value::Object(_) => Err(ApiError::unsupported(&format!("{what}: named vectors"))),
        other => Err(ApiError::bad(format!("{what}: expected a list of numbers, got {other}"))),
    }
}

fn parse_ids(v: &Value) -> Result<Vec<PointId>, ApiError> {
    let list = v.as_array().ok_or_else(|| ApiError::bad("ids must be a list"))?;
    list.iter().map(|x| PointId::from_json(x).map_err(ApiError::from)).collect()
}

/// `{"points": [ids]}` or `{"filter": {...}}` (Qdrant's PointsSelector).
fn parse_selector(body: &Map<String, Value>) -> Result<PointSelector, ApiError> {
    match (
        body.get("points").filter(|v| !v.is_null()),
        body.get("filter").filter(|v| !v.is_null()),
    ) {
        (Some(ids), None) => Ok(PointSelector::Ids(parse_ids(ids)?)),
        (None, Some(f)) => Ok(PointSelector::Filter(Filter::from_json(f)?)),
        (Some(_), Some(_)) => Err(ApiError::bad("give either points or filter, not both")),
        (None, None) => Err(ApiError::bad("a points list or a filter is required")),
    }
}

/// What `with_payload` asks for: everything, nothing, or some keys.
#[derive(Clone)]
enum PayloadSelect {
    All,
    None,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

fn parse_with_payload(body: &Map<String, Value>, default: bool) -> Result<PayloadSelect, ApiError> {
    let strings = |v: &Value| -> Result<Vec<String>, ApiError> {
        v.as_array()
            .ok_or_else(|| ApiError::bad("with_payload keys must be a list"))?
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad("with_payload keys must be strings"))
            })
            .collect()
    };
    Ok(match body.get("with_payload") {
        None | Some(Value::Null) => {
            if default {
                PayloadSelect::All
            } else {
                PayloadSelect::None
            }
        }
        Some(Value::Bool(true)) => PayloadSelect::All,
        Some(Value::Bool(false)) => PayloadSelect::None,
        Some(v @ Value::Array(_)) => PayloadSelect::Include(strings(v)?),
        Some(Value::Object(o)) if o.contains_key("include") => PayloadSelect::Include(strings(&o["include"])?),
        Some(Value::Object(o)) if o.contains_key("exclude") => PayloadSelect::Exclude(strings(&o["exclude"])?),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "with_payload must be a bool, a list of keys, or include/exclude, got {other}"
            )))
        }
    })
}

fn parse_with_vector(body: &Map<String, Value>) -> Result<bool, ApiError> {
    match body.get("with_vector").or_else(|| body.get("with_vectors")) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Array(a)) if a.is_empty() => Ok(false),
        Some(Value::Array(_)) => Err(ApiError::unsupported("with_vector: named vectors")),
        Some(other) => Err(ApiError::bad(format!("with_vector must be a boolean, got {other}"))),
    }
}

fn select_payload(p: Option<Payload>, sel: &PayloadSelect) -> Option<Value> {
    let p = p?;
    match sel {
        PayloadSelect::All => Some(Value::Object(p)),
        PayloadSelect::None => None,
        PayloadSelect::Include(keys) => Some(Value::Object(p.into_iter().filter(|(k, _)| keys.contains(k)).collect())),
        PayloadSelect::Exclude(keys) => Some(Value::Object(p.into_iter().filter(|(k, _)| !keys.contains(k)).collect())),
    }
}

fn record_json(r: Record, sel: &PayloadSelect) -> Value {
    json!({"id": r.id.to_json(), "payload": select_payload(r.payload, sel), "vector": r.vector})
}

fn scored_json(h: ScoredPoint, sel: &PayloadSelect) -> Value {
    json!({"id": h.id.to_json(), "version": 0, "score": h.score, "payload": select_payload(h.payload, sel), "vector": h.vector})
}

fn update_json(ack: WriteAck) -> Value {
    json!({"operation_id": ack.seq, "status": "completed"})
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Cosine => "Cosine",
        Metric::Dot => "Dot",
        Metric::Euclid => "Euclid",
        Metric::Manhattan => "Manhattan",
    }
}

// ---- service ---------------------------------------------------------------------------------

async fn root() -> Response {
    axum::Json(
        json!({"title": "quiver - vector search engine", "version": QDRANT_API_VERSION, "quiver_version": env!("CARGO_PKG_VERSION")}),
    )
    .into_response()
}

async fn health() -> &'static str {
    "healthz check passed"
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = tokio::task::spawn_blocking(move || state.metrics.render(&state))
        .await
        .unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "Not found: no such endpoint in Quiver's API").into_response()
}

// ---- collections -----------------------------------------------------------------------------

async fn list_collections(State(state): State<AppState>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || {
            let names = state.db.list_collections()?;
            Ok(json!({"collections": names.into_iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}))
        })
        .await,
    )
}

async fn collection_exists(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let start = Instant::now();
    respond(start, Ok(json!({"exists": state.db.has_collection(&name)})))
}

fn collection_info_json(c: &Collection) -> Value {
    let info = c.info();
    let index = c.index_status();
    let ix = &info.config.index;
    // Qdrant gives the full-scan threshold in kilobytes of vectors; Quiver keeps points.
    let threshold_kb = ix.full_scan_threshold * info.config.dim * 4 / 1024;
    let quantization = match ix.quantization {
        quiver::Quantization::None => Value::Null,
        quiver::Quantization::Int8 => json!({"scalar": {"type": "int8", "always_ram": true}}),
        quiver::Quantization::Binary => json!({"binary": {"always_ram": true}}),
    };
    let schema: Map<String, Value> = info
        .payload_indexes
        .iter()
        .map(|(k, t, n, _)| (k.clone(), json!({"data_type": t.name(), "params": null, "points": n})))
        .collect();
    json!({
        "status": if index.building { "yellow" } else { "green" },
        "optimizer_status": "ok",
        "indexed_vectors_count": index.nodes,
        "points_count": info.points,
        "segments_count": info.segments.max(1),
        "config": {
            "params": {
                "vectors": {"size": info.config.dim, "distance": metric_name(info.config.metric)},
                "shard_number": 1, "replication_factor": 1, "write_consistency_factor": 1, "on_disk_payload": false
            },
            "hnsw_config": {"m": if ix.enabled { ix.m } else { 0 }, "ef_construct": ix.ef_construct, "full_scan_threshold": threshold_kb, "max_indexing_threads": 0, "on_disk": false},
            "optimizer_config": {"deleted_threshold": 0.5, "vacuum_min_vector_number": 1000, "default_segment_number": 1,
                                 "max_segment_size": null, "memmap_threshold": null, "indexing_threshold": null,
                                 "flush_interval_sec": 5, "max_optimization_threads": null},
            "wal_config": {"wal_capacity_mb": 64, "wal_segments_ahead": 0},
            "quantization_config": quantization
        },
        "payload_schema": schema,
        // Quiver's own: what the recall monitor measured (see docs/api.md).
        "quiver_index": {
            "nodes": index.nodes,
            "unindexed_points": index.tail,
            "ef": index.ef,
            "target_recall": ix.target_recall,
            "estimated_recall": index.recall.map(|r| r.recall),
            "recall_samples": index.recall.map_or(0, |r| r.samples),
        }
    })
}

async fn get_collection(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let start = Instant::now();
    respond(start, blocking(move || Ok(collection_info_json(&collection(&state, &name)?))).await)
}

async fn create_collection(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let result = (|| {
        let body = parse_body(&body)?;
        reject_present(&body, &["sparse_vectors", "init_from", "sharding_method", "strict_mode_config"])?;
        let vectors = body
            .get("vectors")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::bad("vectors: {size, distance} is required"))?;
        if !vectors.contains_key("size") {
            return Err(ApiError::unsupported("named vectors (vectors must be {size, distance})"));
        }
        reject_present(vectors, &["quantization_config", "multivector_config", "hnsw_config"])?;
        if vectors.get("datatype").and_then(Value::as_str).is_some_and(|d| d != "float32") {
            return Err(ApiError::unsupported("vector datatypes other than float32"));
        }
        let dim = field_usize(vectors, "size", 0)?;
        let distance = vectors
            .get("distance")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("vectors.distance is required"))?;
        let metric: Metric = distance.parse()?;
        let embedder = match body.get("embedder") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => {
                let Some(m) = quiver_embed::registry::lookup(e) else {
                    return Err(ApiError::bad(format!(
                        "unknown embedder {e:?}; Quiver runs {}",
                        quiver_embed::registry::names()
                    )));
                };
                if dim != m.dim {
                    return Err(ApiError::bad(format!(
                        "embedder {} makes {}-d vectors; vectors.size is {dim}",
                        m.name, m.dim
                    )));
                }
                Some(m.name.to_string())
            }
            Some(other) => return Err(ApiError::bad(format!("embedder must be a model name, got {other}"))),
        };
        let index = parse_index_config(&body, dim, metric)?;
        Ok::<_, ApiError>((dim, metric, embedder, index))
    })();
    let (dim, metric, embedder, index) = match result {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            let mut config = CollectionConfig::new(dim, metric);
            config.embedder = embedder;
            config.index = index;
            state.db.create_collection(&name, config)?;
            Ok(Value::Bool(true))
        })
        .await,
    )
}

/// `hnsw_config` and `quantization_config` of a create request, in Qdrant's form. `m: 0`
/// disables the index, as in Qdrant; `full_scan_threshold` is in kilobytes of vectors.
fn parse_index_config(body: &Map<String, Value>, dim: usize, metric: quiver::Metric) -> Result<quiver::IndexConfig, ApiError> {
    let mut ix = quiver::IndexConfig::default_for(metric);
    if let Some(h) = body.get("hnsw_config").filter(|v| !v.is_null()) {
        let h = h.as_object().ok_or_else(|| ApiError::bad("hnsw_config must be an object"))?;
        for (k, v) in h {
            match k.as_str() {
                "m" | "ef_construct" | "full_scan_threshold" | "max_indexing_threads" | "payload_m" | "target_recall" => {}
                "on_disk" if v.is_null() || v == &Value::Bool(false) => {}
                other => return Err(ApiError::unsupported(&format!("hnsw_config.{other} = {v}"))),
            }
        }
        let m = field_usize(h, "m", ix.m)?;
        if m == 0 {
            ix.enabled = false;
        } else {
            ix.m = m;
        }
        ix.ef_construct = field_usize(h, "ef_construct", ix.ef_construct)?;
        ix.ef = ix.ef.max(ix.ef_construct.min(4096));
        if let Some(t) = h.get("target_recall").filter(|v| !v.is_null()) {
            ix.target_recall = t
                .as_f64()
                .filter(|t| (0.0..=1.0).contains(t))
                .ok_or_else(|| ApiError::bad(format!("hnsw_config.target_recall must be a number between 0 (off) and 1, got {t}")))?
                as f32;
        }
        if h.get("full_scan_threshold").is_some_and(|v| !v.is_null()) {
            let kb = field_usize(h, "full_scan_threshold", 0)?;
            ix.full_scan_threshold = kb.saturating_mul(1024) / (dim.max(1) * 4);
        }
    }
    if let Some(q) = body.get("quantization_config").filter(|v| !v.is_null()) {
        let q = q
            .as_object()
            .ok_or_else(|| ApiError::bad("quantization_config must be an object"))?;
        ix.quantization = match (q.get("scalar"), q.get("binary")) {
            (Some(sc), None) => {
                let t = sc.get("type").and_then(Value::as_str).unwrap_or("int8");
                if t != "int8" {
                    return Err(ApiError::unsupported(&format!("scalar quantization type {t:?}")));
                }
                quiver::Quantization::Int8
            }
            (None, Some(_)) => quiver::Quantization::Binary,
            _ => return Err(ApiError::unsupported("quantization other than scalar int8 or binary")),
        };
    }
    ix.validate()?;
    Ok(ix)
}

async fn update_collection(Path(_name): Path<String>) -> Response {
    ApiError::unsupported("updating collection parameters").into_response()
}

async fn delete_collection(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || match state.db.drop_collection(&name) {
            Ok(()) => Ok(Value::Bool(true)),
            // Qdrant answers `false` for a collection that does not exist.
            Err(Error::CollectionNotFound(_)) => Ok(Value::Bool(false)),
            Err(e) => Err(e.into()),
        })
        .await,
    )
}

async fn create_index(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let parsed = (|| {
        let body = parse_body(&body)?;
        let field = body
            .get("field_name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("field_name is required"))?
            .to_string();
        let schema = match body.get("field_schema") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) => o
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad("field_schema.type is required"))?
                .to_string(),
            _ => return Err(ApiError::bad("field_schema is required")),
        };
        let kind: PayloadIndexType = schema.parse()?;
        Ok::<_, ApiError>((field, kind))
    })();
    let (field, kind) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            collection(&state, &name)?.create_payload_index(&field, kind)?;
            Ok(json!({"operation_id": 0, "status": "completed"}))
        })
        .await,
    )
}

async fn delete_index(State(state): State<AppState>, Path((name, field)): Path<(String, String)>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || {
            collection(&state, &name)?.drop_payload_index(&field)?;
            Ok(json!({"operation_id": 0, "status": "completed"}))
        })
        .await,
    )
}

// ---- points ----------------------------------------------------------------------------------

fn parse_points(body: &Map<String, Value>) -> Result<Vec<Point>, ApiError> {
    reject_present(body, &["shard_key", "update_filter"])?;
    let payload_of = |v: Option<&Value>| -> Result<Option<Payload>, ApiError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(p)) => Ok(Some(p.clone())),
            Some(other) => Err(ApiError::bad(format!("payload must be an object, got {other}"))),
        }
    };
    if let Some(points) = body.get("points") {
        let list = points.as_array().ok_or_else(|| ApiError::bad("points must be a list"))?;
        return list
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let o = p
                    .as_object()
                    .ok_or_else(|| ApiError::bad(format!("points[{i}] must be an object")))?;
                let id = PointId::from_json(o.get("id").ok_or_else(|| ApiError::bad(format!("points[{i}].id is required")))?)?;
                let vector = parse_vector(
                    o.get("vector")
                        .ok_or_else(|| ApiError::bad(format!("points[{i}].vector is required")))?,
                    &format!("points[{i}]"),
                )?;
                Ok(Point {
                    id,
                    vector,
                    payload: payload_of(o.get("payload"))?,
                })
            })
            .collect();
    }
    if let Some(batch) = body.get("batch") {
        let b = batch.as_object().ok_or_else(|| ApiError::bad("batch must be an object"))?;
        let ids = parse_ids(b.get("ids").ok_or_else(|| ApiError::bad("batch.ids is required"))?)?;
        let vectors = b
            .get("vectors")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad("batch.vectors must be a list of vectors"))?;
        if vectors.len() != ids.len() {
            return Err(ApiError::bad(format!("batch has {} ids but {} vectors", ids.len(), vectors.len())));
        }
        let payloads: Vec<Option<&Value>> = match b.get("payloads") {
            None | Some(Value::Null) => vec![None; ids.len()],
            Some(Value::Array(p)) if p.len() == ids.len() => p.iter().map(Some).collect(),
            Some(_) => return Err(ApiError::bad("batch.payloads must be a list as long as ids")),
        };
        return ids
            .into_iter()
            .zip(vectors)
            .zip(payloads)
            .enumerate()
            .map(|(i, ((id, v), p))| {
                Ok(Point {
                    id,
                    vector: parse_vector(v, &format!("batch.vectors[{i}]"))?,
                    payload: payload_of(p)?,
                })
            })
            .collect();
    }
    Err(ApiError::bad("points or batch is required"))
}

/// Parses a body and embeds the documents in it (see [`crate::documents`]).
async fn body_with_vectors(state: &AppState, name: &str, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let mut map = parse_body(body)?;
    if !crate::documents::has_documents(&map) {
        return Ok(map);
    }
    let (state, name) = (state.clone(), name.to_string());
    tokio::task::spawn_blocking(move || {
        crate::documents::resolve(&state, &name, &mut map)?;
        Ok(map)
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}"))))
}

async fn upsert_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let points = match body_with_vectors(&state, &name, &body).await.and_then(|b| parse_points(&b)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // wait=false is answered after the write is durable too: Quiver has no update queue.
    respond(
        start,
        blocking(move || Ok(update_json(collection(&state, &name)?.upsert(points)?))).await,
    )
}

async fn retrieve_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let parsed = (|| {
        let body = parse_body(&body)?;
        reject_present(&body, &["shard_key"])?;
        let ids = parse_ids(body.get("ids").ok_or_else(|| ApiError::bad("ids is required"))?)?;
        Ok::<_, ApiError>((ids, parse_with_payload(&body, true)?, parse_with_vector(&body)?))
    })();
    let (ids, sel, with_vector) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            let records = collection(&state, &name)?.get(&ids, !matches!(sel, PayloadSelect::None), with_vector)?;
            Ok(Value::Array(records.into_iter().map(|r| record_json(r, &sel)).collect()))
        })
        .await,
    )
}

async fn get_point(State(state): State<AppState>, Path((name, id)): Path<(String, String)>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || {
            let id: PointId = id.parse()?;
            let mut records = collection(&state, &name)?.get(&[id], true, true)?;
            match records.pop() {
                Some(r) => Ok(record_json(r, &PayloadSelect::All)),
                None => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("Not found: Point with id {id} does not exist"),
                )),
            }
        })
        .await,
    )
}

/// Runs a selector-based update.
async fn selected_update(
    state: AppState,
    name: String,
    body: Bytes,
    f: impl FnOnce(&Collection, PointSelector, &Map<String, Value>) -> Result<WriteAck, ApiError> + Send + 'static,
) -> Response {
    let start = Instant::now();
    let parsed = parse_body(&body).and_then(|b| {
        reject_present(&b, &["shard_key"])?;
        Ok((parse_selector(&b)?, b))
    });
    let (selector, body) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || Ok(update_json(f(&collection(&state, &name)?, selector, &body)?))).await,
    )
}

async fn delete_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, |c, sel, _| Ok(c.delete(&sel)?)).await
}

fn payload_field(body: &Map<String, Value>) -> Result<Payload, ApiError> {
    reject_present(body, &["key"])?;
    match body.get("payload") {
        Some(Value::Object(p)) => Ok(p.clone()),
        _ => Err(ApiError::bad("payload must be an object")),
    }
}

async fn set_payload(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, |c, sel, b| Ok(c.set_payload(&sel, payload_field(b)?)?)).await
}

async fn overwrite_payload(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, |c, sel, b| Ok(c.overwrite_payload(&sel, payload_field(b)?)?)).await
}

async fn delete_payload(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, |c, sel, b| {
        let keys = b
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad("keys must be a list"))?
            .iter()
            .map(|k| k.as_str().map(str::to_string).ok_or_else(|| ApiError::bad("keys must be strings")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(c.delete_payload_keys(&sel, keys)?)
    })
    .await
}

async fn clear_payload(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, |c, sel, _| Ok(c.clear_payload(&sel)?)).await
}

async fn scroll_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let parsed = (|| {
        let body = parse_body(&body)?;
        reject_present(&body, &["order_by", "shard_key"])?;
        let offset = match body.get("offset") {
            None | Some(Value::Null) => None,
            Some(v) => Some(PointId::from_json(v)?),
        };
        let req = ScrollRequest {
            offset,
            limit: field_usize(&body, "limit", 10)?,
            filter: field_filter(&body)?,
            with_payload: true,
            with_vector: parse_with_vector(&body)?,
        };
        Ok::<_, ApiError>((req, parse_with_payload(&body, true)?))
    })();
    let (mut req, sel) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    req.with_payload = !matches!(sel, PayloadSelect::None);
    respond(
        start,
        blocking(move || {
            let page = collection(&state, &name)?.scroll(&req)?;
            Ok(
                json!({"points": page.points.into_iter().map(|r| record_json(r, &sel)).collect::<Vec<_>>(),
                      "next_page_offset": page.next_offset.map(|o| o.to_json())}),
            )
        })
        .await,
    )
}

async fn count_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let filter = match parse_body(&body).and_then(|b| {
        reject_present(&b, &["shard_key"])?;
        field_filter(&b)
    }) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || Ok(json!({"count": collection(&state, &name)?.count(filter.as_ref())}))).await,
    )
}

/// Search parameters: `hnsw_ef` (the list size), `exact` (score every point), and
/// `quantization` (accepted; quantized candidates are always rescored at full precision).
/// Returns `(exact, ef)`.
fn check_params(body: &Map<String, Value>) -> Result<(bool, Option<usize>), ApiError> {
    let (mut exact, mut ef) = (false, None);
    match body.get("params") {
        None | Some(Value::Null) => {}
        Some(Value::Object(p)) => {
            for (k, v) in p {
                match k.as_str() {
                    "hnsw_ef" if v.is_null() => {}
                    "hnsw_ef" => {
                        let n = v.as_u64().filter(|n| (1..=4096).contains(n));
                        ef = Some(
                            n.ok_or_else(|| ApiError::bad(format!("params.hnsw_ef must be an integer in 1..=4096, got {v}")))? as usize,
                        );
                    }
                    "exact" => exact = v.as_bool().unwrap_or(false),
                    "indexed_only" => {}
                    "quantization" if v.is_null() || v.is_object() => {}
                    other => return Err(ApiError::unsupported(&format!("search parameter {other:?}"))),
                }
            }
        }
        Some(other) => return Err(ApiError::bad(format!("params must be an object, got {other}"))),
    }
    Ok((exact, ef))
}

/// A search request from the Query API (`query`) or the old search API (`vector`).
fn parse_search(body: &Map<String, Value>, query_api: bool) -> Result<(SearchRequest, PayloadSelect), ApiError> {
    reject_present(body, &["prefetch", "using", "lookup_from", "shard_key"])?;
    let (exact, ef) = check_params(body)?;
    let vector = if query_api {
        match body.get("query") {
            None | Some(Value::Null) => return Err(ApiError::unsupported("a query without a vector (use scroll)")),
            Some(v @ Value::Array(_)) => parse_vector(v, "query")?,
            Some(Value::Object(o)) if o.contains_key("nearest") => {
                reject_present(o, &["mmr"])?;
                parse_vector(&o["nearest"], "query.nearest")?
            }
            Some(Value::Object(o)) => {
                let kind = o.keys().next().cloned().unwrap_or_default();
                return Err(ApiError::unsupported(&format!("query type {kind:?}")));
            }
            Some(Value::String(s)) if s.parse::<uuid::Uuid>().is_err() => {
                return Err(ApiError::bad(format!(
                    "query is a bare string ({s:?}); to search by text send a document, \
                     {{\"query\": {{\"text\": \"...\", \"model\": \"sentence-transformers/all-MiniLM-L6-v2\"}}}} \
                     (the collection needs an embedder), or {{\"query\": \"...\", \"using\": \"bm25\"}} for keyword search"
                )))
            }
            Some(Value::Number(_)) | Some(Value::String(_)) => return Err(ApiError::unsupported("query by point id")),
            Some(other) => return Err(ApiError::bad(format!("query must be a vector, got {other}"))),
        }
    } else {
        reject_present(body, &["query"])?;
        parse_vector(body.get("vector").ok_or_else(|| ApiError::bad("vector is required"))?, "vector")?
    };
    let sel = parse_with_payload(body, !query_api)?;
    let threshold = match body.get("score_threshold") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_f64().ok_or_else(|| ApiError::bad("score_threshold must be a number"))? as f32),
    };
    let req = SearchRequest {
        vector,
        limit: field_usize(body, "limit", 10)?,
        offset: field_usize(body, "offset", 0)?,
        filter: field_filter(body)?,
        score_threshold: threshold,
        with_payload: !matches!(sel, PayloadSelect::None),
        with_vector: parse_with_vector(body)?,
        exact,
        ef,
    };
    Ok((req, sel))
}

fn parse_batch(body: &Map<String, Value>, query_api: bool) -> Result<Vec<(SearchRequest, PayloadSelect)>, ApiError> {
    let list = body
        .get("searches")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("searches must be a list"))?;
    if list.len() > 1024 {
        return Err(ApiError::bad(format!(
            "{} searches in one batch exceeds the limit of 1024",
            list.len()
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            parse_search(
                s.as_object()
                    .ok_or_else(|| ApiError::bad(format!("searches[{i}] must be an object")))?,
                query_api,
            )
        })
        .collect()
}

async fn run_searches(state: AppState, name: String, reqs: Vec<(SearchRequest, PayloadSelect)>) -> Result<Vec<Vec<Value>>, ApiError> {
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
struct HybridQuery {
    dense: SearchRequest,
    text: String,
    fusion: quiver::Fusion,
    depth: usize,
    sel: PayloadSelect,
}

/// `prefetch: [dense, keyword]` with `query: {"fusion": "rrf"}` (or `{"rrf": {"k", "weights"}}`,
/// weights in prefetch order). The top-level `filter` applies to both rankings.
fn parse_hybrid(body: &Map<String, Value>) -> Result<HybridQuery, ApiError> {
    reject_present(body, &["using", "lookup_from", "shard_key", "score_threshold"])?;
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
        depth = depth.max(field_usize(o, "limit", 20)?);
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
        limit: field_usize(body, "limit", 10)?,
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
async fn context(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
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
        let m = crate::documents::model(&state)?;
        let q = m.embed(&[question.as_str()]).map_err(|e| ApiError::bad(e.to_string()))?.pop().unwrap_or_default();
        let count = |s: &str| m.tokenize(s).map(|(_, ids)| ids.len().saturating_sub(2)).unwrap_or(0);
        let passages: Vec<Value> = quiver::context::retrieve(&c, &question, q, limit, filter, max_tokens, &count)?
            .into_iter()
            .map(|p| json!({"source": p.source, "chunks": [p.first_chunk, p.last_chunk], "start": p.start, "end": p.end, "score": p.score, "text": p.text}))
            .collect();
        Ok(json!({"question": question, "passages": passages}))
    })
    .await;
    respond(start, result)
}

/// A keyword-only query of the Query API: `query` is a BM25 document (`{"text", "model":
/// "Qdrant/bm25"}`) or a string, with `using: "bm25"` (or `text` / `keyword`), and no prefetch.
struct KeywordQuery {
    text: String,
    limit: usize,
    offset: usize,
    filter: Option<Filter>,
    sel: PayloadSelect,
}

fn parse_keyword_query(body: &Map<String, Value>) -> Result<Option<KeywordQuery>, ApiError> {
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
        limit: field_usize(body, "limit", 10)?,
        offset: field_usize(body, "offset", 0)?,
        filter: field_filter(body)?,
        sel: parse_with_payload(body, false)?,
    }))
}

async fn query_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let keyword = match parse_body(&body).and_then(|b| parse_keyword_query(&b)) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    if let Some(kq) = keyword {
        let result = blocking(move || {
            let c = collection(&state, &name)?;
            let with_payload = !matches!(kq.sel, PayloadSelect::None);
            let hits = c.search_text(&kq.text, None, kq.limit.saturating_add(kq.offset), kq.filter.as_ref(), with_payload)?;
            let points: Vec<Value> = hits.into_iter().skip(kq.offset).map(|p| scored_json(p, &kq.sel)).collect();
            Ok(json!({ "points": points }))
        })
        .await;
        return respond(start, result);
    }
    let parsed = body_with_vectors(&state, &name, &body).await;
    if let Ok(b) = &parsed {
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
    let req = match parsed.and_then(|b| parse_search(&b, true)) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let result = run_searches(state, name, vec![req])
        .await
        .map(|mut r| json!({"points": r.pop().unwrap_or_default()}));
    respond(start, result)
}

async fn query_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let reqs = match body_with_vectors(&state, &name, &body).await.and_then(|b| parse_batch(&b, true)) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let result = run_searches(state, name, reqs)
        .await
        .map(|r| Value::Array(r.into_iter().map(|p| json!({"points": p})).collect()));
    respond(start, result)
}

async fn search_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let req = match parse_body(&body).and_then(|b| parse_search(&b, false)) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let result = run_searches(state, name, vec![req])
        .await
        .map(|mut r| Value::Array(r.pop().unwrap_or_default()));
    respond(start, result)
}

async fn search_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let reqs = match parse_body(&body).and_then(|b| parse_batch(&b, false)) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let result = run_searches(state, name, reqs)
        .await
        .map(|r| Value::Array(r.into_iter().map(Value::Array).collect()));
    respond(start, result)
}
