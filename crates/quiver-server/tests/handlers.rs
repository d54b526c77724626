//! The API in process: requests go through the whole router (CORS, body limit, JSON guard,
//! metrics, auth, handler) with tower's `oneshot`, no socket. Fast checks of shapes and status
//! codes beside the process-level tests of `quiver serve`.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use quiver::Database;
use quiver_server::{router, ServerConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

fn app(dir: &std::path::Path, config: ServerConfig) -> axum::Router {
    router(Arc::new(Database::open(dir).unwrap()), &config).unwrap()
}

fn config() -> ServerConfig {
    ServerConfig::new("127.0.0.1:0".parse().unwrap())
}

async fn send(app: &axum::Router, method: Method, uri: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.map_or(Body::empty(), |b| Body::from(b.to_string()))).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())),
    )
}

#[tokio::test]
async fn create_upsert_query_in_qdrant_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let (s, b) = send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    assert_eq!((s, &b["result"]), (StatusCode::OK, &json!(true)), "{b}");
    let points = json!({"points": [{"id": 1, "vector": [1.0, 0.0], "payload": {"a": 1}}, {"id": 2, "vector": [0.0, 1.0]}]});
    let (s, b) = send(&app, Method::PUT, "/collections/c/points?wait=true", Some(points), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["status"], "completed");
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/query",
        Some(json!({"query": [0.9, 0.1], "limit": 1, "with_payload": true})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["points"][0]["id"], 1);
    assert_eq!(b["result"]["points"][0]["payload"], json!({"a": 1}));
    assert_eq!(b["status"], "ok");
    // Collection info carries Quiver's index report.
    let (s, b) = send(&app, Method::GET, "/collections/c", None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["result"]["points_count"], 2);
    assert_eq!(
        b["result"]["quiver_index"]["target_recall"].as_f64().map(|t| (t * 100.0).round()),
        Some(95.0)
    );
}

#[tokio::test]
async fn errors_have_qdrant_shape_and_the_right_status() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let (s, b) = send(&app, Method::POST, "/collections/nope/points/count", Some(json!({})), &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b["status"]["error"].as_str().unwrap().contains("nope"), "{b}");
    let (s, b) = send(&app, Method::GET, "/no/such/route", None, &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b["status"]["error"].is_string(), "an unknown route answers JSON: {b}");
    send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/query",
        Some(json!({"query": "hello there"})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["status"]["error"].as_str().unwrap().contains("send a document"), "{b}");
    let (s, b) = send(
        &app,
        Method::PUT,
        "/collections/c/points",
        Some(json!({"points": [{"id": 1, "vector": [3e38, 3e38]}]})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["status"]["error"].as_str().unwrap().contains("too large"), "{b}");
}

#[tokio::test]
async fn bodies_must_be_json_and_cors_grants_nothing_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let req = Request::builder()
        .method(Method::PUT)
        .uri("/collections/c")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"vectors": {"size": 2, "distance": "Dot"}}"#))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/collections/c")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(preflight).await.unwrap();
    assert!(
        resp.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
        "{:?}",
        resp.headers()
    );
    // Nothing was created by the refused request.
    let (_, b) = send(&app, Method::GET, "/collections", None, &[]).await;
    assert_eq!(b["result"]["collections"], json!([]));
}

#[tokio::test]
async fn keys_full_read_only_and_none() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.api_key = Some("full".into());
    cfg.read_only_api_key = Some("ro".into());
    assert!(cfg.validate().is_ok());
    let app = app(tmp.path(), cfg);
    let create = Some(json!({"vectors": {"size": 2, "distance": "Dot"}}));
    assert_eq!(
        send(&app, Method::PUT, "/collections/c", create.clone(), &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, Method::PUT, "/collections/c", create.clone(), &[("api-key", "ro")])
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, Method::PUT, "/collections/c", create, &[("api-key", "full")]).await.0,
        StatusCode::OK
    );
    let (s, _) = send(
        &app,
        Method::POST,
        "/collections/c/points/count",
        Some(json!({})),
        &[("authorization", "Bearer ro")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(send(&app, Method::GET, "/healthz", None, &[]).await.0, StatusCode::OK);
    let mut empty = config();
    empty.api_key = Some(String::new());
    assert!(empty.validate().unwrap_err().contains("--api-key is empty"));
}

/// A configuration `validate` refuses is an error from `router`, not a panic.
#[test]
fn router_refuses_a_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad_origin = config();
    bad_origin.cors_origins = vec!["*".into()];
    let err = router(Arc::new(Database::open(dir.path()).unwrap()), &bad_origin).unwrap_err();
    assert!(err.contains('*'), "{err}");
    let mut empty_key = config();
    empty_key.api_key = Some(String::new());
    assert!(router(Arc::new(Database::open(dir.path().join("b")).unwrap()), &empty_key).is_err());
}
