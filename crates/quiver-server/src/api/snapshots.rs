//! Snapshot routes (Qdrant's API over the library's `quiver::snapshot`): a collection's
//! snapshots (create, list, download, delete, recover from a location or an upload) and full
//! snapshots (`/snapshots`). Recovery reads `file://` locations only inside the data folder's
//! snapshots folder, and `http://` locations by downloading them there first.

use super::*;
use axum::body::Body;
use axum::extract::{Multipart, Query};
use quiver::snapshot::SnapshotInfo;
use std::collections::HashMap;
use std::path::PathBuf;

fn info_json(s: SnapshotInfo) -> Value {
    json!({"name": s.name, "creation_time": s.creation_time, "size": s.size, "checksum": s.checksum})
}

/// `?wait=false`: the work runs in the background and the answer is 202 at once (Qdrant's
/// way); a failure then is only logged.
fn no_wait(q: &HashMap<String, String>) -> bool {
    q.get("wait").is_some_and(|w| w == "false")
}

/// Runs `f` in the background and answers 202.
fn accepted(start: Instant, f: impl FnOnce() -> ApiResult + Send + 'static) -> Response {
    tokio::task::spawn_blocking(move || {
        if let Err(e) = f() {
            tracing::error!(error = %e.message, "background snapshot operation failed");
        }
    });
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"result": null, "status": "accepted", "time": start.elapsed().as_secs_f64()})),
    )
        .into_response()
}

fn not_found(snapshot: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Not found: Snapshot {snapshot} not found"))
}

/// A snapshot file as a download, streamed from disk.
async fn download(path: Option<PathBuf>, snapshot: &str) -> Response {
    let Some(path) = path else {
        return not_found(snapshot).into_response();
    };
    match tokio::fs::File::open(&path).await {
        Ok(f) => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            Body::from_stream(tokio_util::io::ReaderStream::new(f)),
        )
            .into_response(),
        Err(_) => not_found(snapshot).into_response(),
    }
}

pub(super) async fn list_snapshots(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || Ok(Value::Array(state.db.list_snapshots(&name)?.into_iter().map(info_json).collect()))).await,
    )
}

pub(super) async fn create_snapshot(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let start = Instant::now();
    let work = move || Ok(info_json(state.db.create_snapshot(&name)?));
    if no_wait(&q) {
        return accepted(start, work);
    }
    respond(start, blocking(work).await)
}

pub(super) async fn get_snapshot(State(state): State<AppState>, Path((name, snapshot)): Path<(String, String)>) -> Response {
    // On object storage the file may be downloaded from the store first: off the async threads.
    let s = snapshot.clone();
    let path = match tokio::task::spawn_blocking(move || state.db.snapshot_file(&name, &s)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(_) => return ApiError::from(quiver::Error::Unsupported("the snapshot lookup failed".into())).into_response(),
    };
    download(path, &snapshot).await
}

pub(super) async fn delete_snapshot(
    State(state): State<AppState>,
    Path((name, snapshot)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let start = Instant::now();
    let work = move || match state.db.delete_snapshot(&name, &snapshot)? {
        true => Ok(Value::Bool(true)),
        false => Err(not_found(&snapshot)),
    };
    if no_wait(&q) {
        return accepted(start, work);
    }
    respond(start, blocking(work).await)
}

/// A recovery `location` as a local file: `file:///abs/path` or `file://localhost/abs/path`,
/// which must exist and lie inside the snapshots folder; `http://` locations are downloaded
/// into that folder first (the second value says to remove the download afterwards).
fn locate(state: &AppState, location: &str) -> Result<(PathBuf, bool), ApiError> {
    let bad = |m: String| ApiError::bad(format!("Bad request: {m}"));
    if let Some(rest) = location.strip_prefix("file://") {
        let path = if rest.starts_with('/') {
            rest.to_string()
        } else if let Some(p) = rest.strip_prefix("localhost/") {
            format!("/{p}")
        } else {
            return Err(bad("Invalid snapshot URI, file path must be absolute or on localhost".into()));
        };
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(bad(format!("Snapshot file {:?} does not exist", path.display().to_string())));
        }
        let root = state.db.snapshots_root();
        std::fs::create_dir_all(&root).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let inside = match (path.canonicalize(), root.canonicalize()) {
            (Ok(p), Ok(r)) => p.starts_with(r),
            _ => false,
        };
        if !inside {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Forbidden: Snapshot file path must be inside the snapshots directory {}",
                    root.display()
                ),
            ));
        }
        return Ok((path, false));
    }
    if location.starts_with("http://") || location.starts_with("https://") {
        let dir = state.db.snapshots_root().join(".downloads");
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let path = dir.join(format!("{}.snapshot", uuid::Uuid::new_v4()));
        let resp = ureq::get(location)
            .call()
            .map_err(|e| bad(format!("could not download the snapshot from {location}: {e}")))?;
        let mut out = std::fs::File::create(&path).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if let Err(e) = std::io::copy(&mut resp.into_reader(), &mut out) {
            let _ = std::fs::remove_file(&path);
            return Err(bad(format!("could not download the snapshot from {location}: {e}")));
        }
        return Ok((path, true));
    }
    Err(bad(format!(
        "Invalid snapshot URI {location:?}: use file:// (inside the snapshots folder) or http://"
    )))
}

/// `PUT /collections/{name}/snapshots/recover`: `{"location", "checksum", "priority"}`.
pub(super) async fn recover_snapshot(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let parsed = parse_body(&body).and_then(|b| {
        only_fields(&b, &["location", "checksum", "priority", "api_key", "wait"], "recover")?;
        let location = b
            .get("location")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("location is required"))?
            .to_string();
        let checksum = b.get("checksum").and_then(Value::as_str).map(str::to_string);
        match b.get("priority").and_then(Value::as_str) {
            None | Some("snapshot" | "replica" | "no_sync") => {}
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "priority must be snapshot, replica or no_sync, got {other:?}"
                )))
            }
        }
        Ok((location, checksum))
    });
    let (location, checksum) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            let (path, downloaded) = locate(&state, &location)?;
            let result = state.db.recover_snapshot(&name, &path, checksum.as_deref());
            if downloaded {
                let _ = std::fs::remove_file(&path);
            }
            result.map_err(recover_error)?;
            Ok(Value::Bool(true))
        })
        .await,
    )
}

/// Recovery errors are the client's (a bad file) unless the disk failed.
fn recover_error(e: Error) -> ApiError {
    match e {
        Error::InvalidRequest(m) => ApiError::bad(format!("Bad request: {m}")),
        other => ApiError::from(other),
    }
}

/// `POST /collections/{name}/snapshots/upload?checksum=..`: the snapshot as the multipart
/// field `snapshot`.
pub(super) async fn upload_snapshot(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    mut form: Multipart,
) -> Response {
    let start = Instant::now();
    let dir = state.db.snapshots_root().join(".downloads");
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    let path = dir.join(format!("{}.snapshot", uuid::Uuid::new_v4()));
    let mut got = false;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return ApiError::bad(format!("Bad request: could not read the upload: {e}")).into_response(),
        };
        if field.name() != Some("snapshot") {
            continue;
        }
        let mut field = field;
        let mut out = match tokio::fs::File::create(&path).await {
            Ok(f) => f,
            Err(e) => return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        loop {
            match field.chunk().await {
                Ok(Some(bytes)) => {
                    if let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut out, &bytes).await {
                        let _ = tokio::fs::remove_file(&path).await;
                        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&path).await;
                    return ApiError::bad(format!("Bad request: could not read the upload: {e}")).into_response();
                }
            }
        }
        // tokio's File hands writes to a background task: `write_all` can return before the
        // last chunk reached the file. Without this flush the recovery below could read a
        // file still missing its tail (a checksum mismatch seen once in CI).
        if let Err(e) = tokio::io::AsyncWriteExt::flush(&mut out).await {
            let _ = tokio::fs::remove_file(&path).await;
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
        drop(out);
        got = true;
        break;
    }
    if !got {
        return ApiError::bad("Bad request: the upload needs a multipart field named \"snapshot\"").into_response();
    }
    let checksum = q.get("checksum").cloned();
    respond(
        start,
        blocking(move || {
            let result = state.db.recover_snapshot(&name, &path, checksum.as_deref());
            let _ = std::fs::remove_file(&path);
            result.map_err(recover_error)?;
            Ok(Value::Bool(true))
        })
        .await,
    )
}

pub(super) async fn list_full_snapshots(State(state): State<AppState>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || Ok(Value::Array(state.db.list_full_snapshots()?.into_iter().map(info_json).collect()))).await,
    )
}

pub(super) async fn create_full_snapshot(State(state): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let start = Instant::now();
    let work = move || Ok(info_json(state.db.create_full_snapshot()?));
    if no_wait(&q) {
        return accepted(start, work);
    }
    respond(start, blocking(work).await)
}

pub(super) async fn get_full_snapshot(State(state): State<AppState>, Path(snapshot): Path<String>) -> Response {
    let s = snapshot.clone();
    let path = match tokio::task::spawn_blocking(move || state.db.full_snapshot_file(&s)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(_) => return ApiError::from(quiver::Error::Unsupported("the snapshot lookup failed".into())).into_response(),
    };
    download(path, &snapshot).await
}

pub(super) async fn delete_full_snapshot(
    State(state): State<AppState>,
    Path(snapshot): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let start = Instant::now();
    let work = move || match state.db.delete_full_snapshot(&snapshot)? {
        true => Ok(Value::Bool(true)),
        false => Err(not_found(&snapshot)),
    };
    if no_wait(&q) {
        return accepted(start, work);
    }
    respond(start, blocking(work).await)
}
