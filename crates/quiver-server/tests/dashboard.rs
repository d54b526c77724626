//! The dashboard's server side in process (the pages themselves are tested in a real browser by
//! `tests/browser/test_dashboard.py`): its files served with a strict policy and no key, what a
//! key may do, the walkthrough, explain and map endpoints, and the metrics summary.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use quiver::Database;
use quiver_server::{router, ServerConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

fn app(dir: &std::path::Path, keys: Option<(&str, &str)>) -> axum::Router {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    if let Some((full, ro)) = keys {
        config.api_key = Some(full.into());
        config.read_only_api_key = Some(ro.into());
    }
    router(Arc::new(Database::open(dir).unwrap()), &config).unwrap()
}

async fn send_raw(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    if let Some(k) = key {
        req = req.header("api-key", k);
    }
    let req = req.body(body.map_or(Body::empty(), |b| Body::from(b.to_string()))).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, headers, bytes.to_vec())
}

async fn send(app: &axum::Router, method: Method, uri: &str, body: Option<Value>, key: Option<&str>) -> (StatusCode, Value) {
    let (s, _, b) = send_raw(app, method, uri, body, key).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[tokio::test]
async fn files_are_served_without_a_key_under_a_strict_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), Some(("full", "ro")));
    let (s, h, body) = send_raw(&app, Method::GET, "/dashboard/", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8(body).unwrap().contains("<script type=\"module\" src=\"app.js\">"));
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let (s, h, _) = send_raw(&app, Method::GET, "/dashboard/app.js", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
    let (s, h, _) = send_raw(&app, Method::GET, "/dashboard", None, None).await;
    assert_eq!(
        (s, h[header::LOCATION].to_str().unwrap()),
        (StatusCode::PERMANENT_REDIRECT, "/dashboard/")
    );
    // Not a file of the page: the key is needed as anywhere else, and then it is a 404.
    assert_eq!(
        send(&app, Method::GET, "/dashboard/secret.js", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, Method::GET, "/dashboard/secret.js", None, Some("full")).await.0,
        StatusCode::NOT_FOUND
    );
    // The data still needs the key.
    assert_eq!(
        send(&app, Method::GET, "/collections", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, Method::GET, "/dashboard/api/metrics", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn access_says_what_a_key_may_do() {
    let tmp = tempfile::tempdir().unwrap();
    let keyed = app(tmp.path(), Some(("full", "ro")));
    for (key, want) in [
        (None, "none"),
        (Some("wrong"), "none"),
        (Some("ro"), "read_only"),
        (Some("full"), "full"),
    ] {
        let (s, b) = send(&keyed, Method::GET, "/dashboard/api/access", None, key).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["result"], json!({"auth": true, "access": want}), "{key:?}");
    }
    let tmp2 = tempfile::tempdir().unwrap();
    let open = app(tmp2.path(), None);
    let (_, b) = send(&open, Method::GET, "/dashboard/api/access", None, None).await;
    assert_eq!(b["result"], json!({"auth": false, "access": "full"}));
    // The read-only key may call the pictures' endpoints (they change nothing), not write.
    send(
        &keyed,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        Some("full"),
    )
    .await;
    send(
        &keyed,
        Method::PUT,
        "/collections/c/points",
        Some(json!({"points": [{"id": 1, "vector": [1.0, 2.0]}]})),
        Some("full"),
    )
    .await;
    let (s, b) = send(&keyed, Method::POST, "/collections/c/map", Some(json!({"sample": 5})), Some("ro")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = send(
        &keyed,
        Method::POST,
        "/collections/c/explain",
        Some(json!({"vector": [1.0, 0.0]})),
        Some("ro"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(send(&keyed, Method::GET, "/walkthrough", None, Some("ro")).await.0, StatusCode::OK);
    assert_eq!(
        send(&keyed, Method::DELETE, "/collections/c", None, Some("ro")).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn walkthrough_for_any_query_of_the_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), None);
    let (s, b) = send(&app, Method::GET, "/walkthrough", None, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let w = &b["result"];
    assert_eq!(w["query"], "am I you");
    assert_eq!(w["nearest"]["text"], "who am I");
    assert_eq!(w["query_trace"]["token_ids"], json!([9, 14, 12]));
    // "you": H = ReLU(W x + b) = (1, 1, 0, 1), so the 2-d vector is (1, 2) and the scores are
    // (4/3 + 10/3, 4/3 + 10/3, 1 + 14/3).
    let (s, b) = send(&app, Method::GET, "/walkthrough?query=you", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let scores: Vec<f64> = b["result"]["dot_products"]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (got, want) in scores.iter().zip([14.0 / 3.0, 14.0 / 3.0, 17.0 / 3.0]) {
        assert!((got - want).abs() < 1e-5, "{scores:?}");
    }
    assert_eq!(b["result"]["nearest"]["point_id"], 3);
    // A word outside the vocabulary is the caller's mistake, named.
    let (s, b) = send(&app, Method::GET, "/walkthrough?query=hello%20you", None, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["status"]["error"].as_str().unwrap().contains("hello"), "{b}");
    assert_eq!(
        send(&app, Method::GET, "/walkthrough?query=%20", None, None).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn explain_and_map_of_a_vector_collection() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), None);
    send(
        &app,
        Method::PUT,
        "/collections/v",
        Some(json!({"vectors": {"size": 3, "distance": "Euclid"}})),
        None,
    )
    .await;
    let points: Vec<Value> = (0..300)
        .map(|i| json!({"id": i, "vector": [(i % 10) as f32, (i / 10) as f32 * 0.1, 1.0], "payload": {"row": i / 10}}))
        .collect();
    let (s, b) = send(
        &app,
        Method::PUT,
        "/collections/v/points?wait=true",
        Some(json!({"points": points})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Explain: the plan, the winners equal to a plain query, no embedding steps for a vector.
    let q = json!([3.0, 1.0, 1.0]);
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/v/explain",
        Some(json!({"vector": q, "limit": 4})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ex = &b["result"];
    assert_eq!(ex["plan"]["kind"], "exact");
    assert_eq!(ex["plan"]["scored"], 300);
    assert!(ex.get("tokens").is_none());
    assert_eq!(ex["query_vector"], q);
    let (_, plain) = send(
        &app,
        Method::POST,
        "/collections/v/points/query",
        Some(json!({"query": q, "limit": 4})),
        None,
    )
    .await;
    let ids = |v: &Value| v.as_array().unwrap().iter().map(|h| h["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&ex["results"]), ids(&plain["result"]["points"]));
    // A text on a collection without an embedder, a wrong length, both at once: 400s that say so.
    let (s, b) = send(&app, Method::POST, "/collections/v/explain", Some(json!({"text": "hi"})), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["status"]["error"].as_str().unwrap().contains("no embedder"), "{b}");
    let (s, b) = send(&app, Method::POST, "/collections/v/explain", Some(json!({"vector": [1.0]})), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = send(
        &app,
        Method::POST,
        "/collections/v/explain",
        Some(json!({"vector": q, "text": "x"})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Map: the sample asked for, the query and its neighbours, filters obeyed.
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/v/map",
        Some(json!({"sample": 100, "vector": q, "limit": 3})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let m = &b["result"];
    assert_eq!(m["points"].as_array().unwrap().len(), 100);
    assert_eq!(m["population"], 300);
    assert_eq!(m["neighbours"].as_array().unwrap().len(), 3);
    assert_eq!(ids(&m["neighbours"]), ids(&plain["result"]["points"])[..3].to_vec());
    assert!(m["query"]["x"].is_number() && m["points"][0]["payload"]["row"].is_number());
    let filter = json!({"must": [{"key": "row", "range": {"lt": 5}}]});
    let (_, b) = send(
        &app,
        Method::POST,
        "/collections/v/map",
        Some(json!({"sample": 1000, "filter": filter, "with_payload": false})),
        None,
    )
    .await;
    assert_eq!(b["result"]["population"], 50);
    assert_eq!(b["result"]["points"].as_array().unwrap().len(), 50);
    assert!(b["result"]["points"][0].get("payload").is_none());
    let (s, b) = send(&app, Method::POST, "/collections/v/map", Some(json!({"sample": 5001})), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = send(
        &app,
        Method::POST,
        "/collections/v/map",
        Some(json!({"sample": 10, "colour": "x"})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        send(&app, Method::POST, "/collections/nope/map", Some(json!({})), None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn explain_of_a_sparse_query() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), None);
    let (s, b) = send(
        &app,
        Method::PUT,
        "/collections/s",
        Some(json!({"sparse_vectors": {"kw": {"modifier": "idf"}}})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let points: Vec<Value> = (0..40u32)
        .map(|i| json!({"id": i, "vector": {"kw": {"indices": [i % 4, 10 + i % 7], "values": [1.0, 0.5 + (i % 3) as f32]}}}))
        .collect();
    send(
        &app,
        Method::PUT,
        "/collections/s/points?wait=true",
        Some(json!({"points": points})),
        None,
    )
    .await;
    let q = json!({"indices": [1, 12, 99], "values": [1.0, 2.0, 3.0]});
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/s/explain",
        Some(json!({"using": "kw", "sparse": q, "limit": 5})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ex = &b["result"];
    assert_eq!(ex["kind"], "sparse");
    assert_eq!(ex["points_with_vector"], 40);
    let terms = ex["terms"].as_array().unwrap();
    assert_eq!(terms.len(), 3);
    // Index 1 is held by 10 points, 12 by 6 (i % 7 == 2), 99 by none.
    assert_eq!(
        (terms[0]["points"].clone(), terms[1]["points"].clone(), terms[2]["points"].clone()),
        (json!(10), json!(6), json!(0))
    );
    assert!(
        terms[0]["idf"].as_f64().unwrap() < terms[1]["idf"].as_f64().unwrap(),
        "rarer, higher IDF"
    );
    let (_, plain) = send(
        &app,
        Method::POST,
        "/collections/s/points/query",
        Some(json!({"query": q, "using": "kw", "limit": 5})),
        None,
    )
    .await;
    let ids = |v: &Value| v.as_array().unwrap().iter().map(|h| h["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&ex["results"]), ids(&plain["result"]["points"]));
    // Without the space's name, or with a dense vector: 400s.
    assert_eq!(
        send(&app, Method::POST, "/collections/s/explain", Some(json!({"sparse": q})), None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let (s, _) = send(
        &app,
        Method::POST,
        "/collections/s/explain",
        Some(json!({"using": "kw", "sparse": [1.0, 2.0]})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn metrics_summary_counts_requests_and_points() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), None);
    send(
        &app,
        Method::PUT,
        "/collections/m",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        None,
    )
    .await;
    send(
        &app,
        Method::PUT,
        "/collections/m/points",
        Some(json!({"points": [{"id": 1, "vector": [1.0, 2.0]}, {"id": 2, "vector": [2.0, 1.0]}]})),
        None,
    )
    .await;
    for _ in 0..5 {
        send(
            &app,
            Method::POST,
            "/collections/m/points/query",
            Some(json!({"query": [1.0, 0.0]})),
            None,
        )
        .await;
    }
    send(&app, Method::GET, "/collections/absent", None, None).await;
    let (s, b) = send(&app, Method::GET, "/dashboard/api/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let m = &b["result"];
    assert_eq!(m["requests"], 8);
    assert_eq!(m["errors"], 1);
    let query = m["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "/collections/{name}/points/query")
        .unwrap();
    assert_eq!(query["requests"], 5);
    assert_eq!(query["latency"]["samples"], 5);
    let p = &query["latency"];
    assert!(
        p["p50_ms"].as_f64().unwrap() <= p["p99_ms"].as_f64().unwrap() && p["p99_ms"].as_f64().unwrap() <= p["max_ms"].as_f64().unwrap()
    );
    // The summary takes a sample of its own: the latest holds the points stored now.
    assert_eq!(m["history"].as_array().unwrap().last().unwrap()["points"], 2);
}
