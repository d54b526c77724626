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

/// The name `""` is the unnamed vector, as LangChain, LlamaIndex and Haystack use it: create,
/// upsert (points and batch), `using`, `with_vector` lists; other names are clear 400s.
#[tokio::test]
async fn the_empty_name_is_the_unnamed_vector() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let create = json!({"vectors": {"": {"size": 2, "distance": "Cosine"}}, "sparse_vectors": {}});
    let (s, b) = send(&app, Method::PUT, "/collections/c", Some(create), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let points = json!({"points": [{"id": 1, "vector": {"": [1.0, 0.0]}, "payload": {"t": "a"}}]});
    let (s, b) = send(&app, Method::PUT, "/collections/c/points", Some(points), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let batch = json!({"batch": {"ids": [2, 3], "vectors": {"": [[0.0, 1.0], [0.7, 0.7]]}}});
    let (s, b) = send(&app, Method::PUT, "/collections/c/points", Some(batch), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let query = json!({"query": [1.0, 0.1], "using": "", "limit": 2, "with_vector": [""]});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/query", Some(query), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ids: Vec<u64> = b["result"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 3]);
    assert_eq!(b["result"]["points"][0]["vector"], json!([1.0, 0.0]));
    let body = json!({"query": [1.0, 0.0], "using": "dense"});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/query", Some(body), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["status"]["error"], "Wrong input: Not existing vector name error: dense", "{b}");
}

/// `nearest` + `mmr` as LangChain's max_marginal_relevance_search sends it: with diversity the
/// near-duplicate of the best hit gives way to a different point; without, the plain ranking.
#[tokio::test]
async fn mmr_prefers_a_different_point_to_a_near_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let (s, _) = send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let points = json!({"points": [
        {"id": 1, "vector": [1.0, 0.0]}, {"id": 2, "vector": [0.99, 0.141]},
        {"id": 3, "vector": [0.98, 0.199]}, {"id": 4, "vector": [0.6, -0.8]}]});
    let (s, _) = send(&app, Method::PUT, "/collections/c/points", Some(points), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let ids = |b: &Value| -> Vec<u64> {
        b["result"]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_u64().unwrap())
            .collect()
    };
    let diverse =
        json!({"query": {"nearest": [1.0, 0.0], "mmr": {"diversity": 0.6, "candidates_limit": 4}}, "limit": 2, "with_vector": true});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/query", Some(diverse), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b), vec![1, 4]);
    // Scores stay the similarity to the query, and vectors come back when asked for.
    assert_eq!(b["result"]["points"][1]["score"], json!(0.6), "{b}");
    // Each f32 printed as its shortest decimal, as Qdrant prints it (not 0.6000000238418579).
    assert_eq!(b["result"]["points"][1]["vector"], json!([0.6, -0.8]));
    assert_eq!(b["result"]["points"][0]["score"], json!(1.0));
    let plain = json!({"query": {"nearest": [1.0, 0.0], "mmr": {"diversity": 0.0, "candidates_limit": 4}}, "limit": 2});
    let (_, b) = send(&app, Method::POST, "/collections/c/points/query", Some(plain), &[]).await;
    assert_eq!(ids(&b), vec![1, 2]);
    let bad = json!({"query": {"nearest": [1.0, 0.0], "mmr": {"diversity": 2.0}}});
    let (s, _) = send(&app, Method::POST, "/collections/c/points/query", Some(bad), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// Things Qdrant's own tests caught: update_mode, unknown fields, nested with_payload paths,
/// limits past the largest page, invalid deployment knobs, the readiness text, and JSON for
/// every unknown route or method.
#[tokio::test]
async fn qdrant_details_writes_payload_paths_limits_and_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let (s, _) = send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let p = |id: u64, tag: &str| json!({"id": id, "vector": [1.0, 0.0], "payload": {"tag": tag, "country": {"name": "FR", "code": 33}}});
    let (s, _) = send(
        &app,
        Method::PUT,
        "/collections/c/points",
        Some(json!({"points": [p(1, "old")]})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // insert_only leaves point 1 as it is and adds 2; update_only skips 3 and changes 2.
    let body = json!({"points": [p(1, "new"), p(2, "new")], "update_mode": "insert_only"});
    let (s, b) = send(&app, Method::PUT, "/collections/c/points", Some(body), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let body = json!({"points": [p(2, "newer"), p(3, "newer")], "update_mode": "update_only"});
    let (s, _) = send(&app, Method::PUT, "/collections/c/points", Some(body), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = send(
        &app,
        Method::POST,
        "/collections/c/points",
        Some(json!({"ids": [1, 2, 3], "with_payload": {"include": ["tag"]}})),
        &[],
    )
    .await;
    let tags: Vec<(u64, String)> = b["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_u64().unwrap(), r["payload"]["tag"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(tags, vec![(1, "old".into()), (2, "newer".into())]);
    // Unknown fields are refused, in a body and in a point.
    for body in [
        json!({"points": [p(4, "x")], "wait": true}),
        json!({"points": [{"id": 4, "vector": [1.0, 0.0], "payloads": {}}]}),
    ] {
        let (s, b) = send(&app, Method::PUT, "/collections/c/points", Some(body), &[]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b["status"]["error"].as_str().unwrap().contains("unknown field"), "{b}");
    }
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/delete",
        Some(json!({"points": [9], "filters": {}})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["status"]["error"].as_str().unwrap().contains("`filters`"), "{b}");
    // Nested include and exclude.
    let (_, b) = send(
        &app,
        Method::POST,
        "/collections/c/points",
        Some(json!({"ids": [1], "with_payload": {"include": ["country.name"]}})),
        &[],
    )
    .await;
    assert_eq!(b["result"][0]["payload"], json!({"country": {"name": "FR"}}));
    let (_, b) = send(
        &app,
        Method::POST,
        "/collections/c/points",
        Some(json!({"ids": [1], "with_payload": {"exclude": ["country.code", "tag"]}})),
        &[],
    )
    .await;
    assert_eq!(b["result"][0]["payload"], json!({"country": {"name": "FR"}}));
    // A limit past the largest page is clamped, not refused.
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/query",
        Some(json!({"query": [1.0, 0.0], "limit": 1_000_000})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["points"].as_array().unwrap().len(), 2);
    // Deployment knobs must hold values Qdrant accepts.
    let (s, b) = send(
        &app,
        Method::PUT,
        "/collections/d",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 0})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["status"]["error"].as_str().unwrap().contains("shard_number"), "{b}");
    let (s, _) = send(
        &app,
        Method::PUT,
        "/collections/d",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}, "replication_factor": -1})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b) = send(&app, Method::GET, "/readyz", None, &[]).await;
    assert_eq!((s, b), (StatusCode::OK, json!("all shards are ready")));
    // Unknown routes and methods answer JSON.
    for (m, uri) in [(Method::GET, "/nope"), (Method::GET, "/collections/c/points/query")] {
        let (s, b) = send(&app, m, uri, None, &[]).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
        assert!(b["status"]["error"].is_string(), "{uri}: {b}");
    }
    let (_, b) = send(&app, Method::GET, "/", None, &[]).await;
    assert!(b["commit"].is_string(), "{b}");
}

/// Index options are honoured or refused by name, and payload_schema reports what an index does.
#[tokio::test]
async fn index_options_are_honoured_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let (s, _) = send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let index = |schema: Value| json!({"field_name": "t", "field_schema": schema});
    for (schema, needle) in [
        (json!({"type": "text", "tokenizer": "prefix"}), "tokenizer"),
        (json!({"type": "text", "lowercase": false}), "lowercase"),
        (json!({"type": "text", "stopwords": "english"}), "stopwords"),
        (json!({"type": "keyword", "lookup": false}), "lookup"),
    ] {
        let (s, b) = send(&app, Method::PUT, "/collections/c/index", Some(index(schema)), &[]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b["status"]["error"].as_str().unwrap().contains(needle), "{b}");
    }
    let ok = json!({"type": "text", "tokenizer": "word", "lowercase": true, "phrase_matching": true});
    let (s, b) = send(&app, Method::PUT, "/collections/c/index", Some(index(ok)), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let tenant = json!({"field_name": "k", "field_schema": {"type": "keyword", "is_tenant": true}});
    let (s, b) = send(&app, Method::PUT, "/collections/c/index", Some(tenant), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Options that change what an index answers are kept and reported.
    let prefix = json!({"field_name": "u", "field_schema": {"type": "keyword", "prefix": true}});
    let (s, b) = send(&app, Method::PUT, "/collections/c/index", Some(prefix), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let neither = json!({"field_name": "n", "field_schema": {"type": "integer", "lookup": false, "range": false}});
    let (s, b) = send(&app, Method::PUT, "/collections/c/index", Some(neither), &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (_, b) = send(&app, Method::GET, "/collections/c", None, &[]).await;
    assert_eq!(b["result"]["payload_schema"]["t"]["params"]["tokenizer"], "word");
    assert_eq!(b["result"]["payload_schema"]["k"]["data_type"], "keyword");
    assert_eq!(b["result"]["payload_schema"]["k"]["params"]["is_tenant"], true);
    assert_eq!(b["result"]["payload_schema"]["u"]["params"]["prefix"], true);
    assert!(b["result"]["payload_schema"].get("n").is_none(), "{b}");
}

/// `hnsw_config.max_indexing_threads` sets the collection's build threads: kept on create,
/// reported back, kept by a patch that does not name it, changed by one that does.
#[tokio::test]
async fn max_indexing_threads_is_kept_and_patched() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let body = json!({"vectors": {"size": 2, "distance": "Dot"}, "hnsw_config": {"max_indexing_threads": 1}});
    let (s, b) = send(&app, Method::PUT, "/collections/c", Some(body), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let threads = |b: &Value| b["result"]["config"]["hnsw_config"]["max_indexing_threads"].clone();
    let (_, b) = send(&app, Method::GET, "/collections/c", None, &[]).await;
    assert_eq!(threads(&b), 1, "{b}");
    let patch = json!({"hnsw_config": {"ef_construct": 64}});
    let (s, b) = send(&app, Method::PATCH, "/collections/c", Some(patch), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = send(&app, Method::GET, "/collections/c", None, &[]).await;
    assert_eq!(threads(&b), 1, "{b}");
    assert_eq!(b["result"]["config"]["hnsw_config"]["ef_construct"], 64, "{b}");
    let patch = json!({"hnsw_config": {"max_indexing_threads": 0}});
    let (s, b) = send(&app, Method::PATCH, "/collections/c", Some(patch), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = send(&app, Method::GET, "/collections/c", None, &[]).await;
    assert_eq!(threads(&b), 0, "{b}");
    let bad = json!({"vectors": {"size": 2, "distance": "Dot"}, "hnsw_config": {"max_indexing_threads": -1}});
    let (s, b) = send(&app, Method::PUT, "/collections/d", Some(bad), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}

/// Aliases as Qdrant's API has them: create, query through, list, switch, and the status codes.
#[tokio::test]
async fn aliases_over_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    for (name, v) in [("v1", [1.0, 0.0]), ("v2", [0.0, 1.0])] {
        let uri = format!("/collections/{name}");
        let (s, _) = send(
            &app,
            Method::PUT,
            &uri,
            Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = send(
            &app,
            Method::PUT,
            &format!("{uri}/points"),
            Some(json!({"points": [{"id": 1, "vector": v}]})),
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let act = |a: Value| json!({"actions": a});
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/aliases",
        Some(act(json!([{"create_alias": {"alias_name": "prod", "collection_name": "v1"}}]))),
        &[],
    )
    .await;
    assert_eq!((s, &b["result"]), (StatusCode::OK, &json!(true)), "{b}");
    let score = |b: &Value| b["result"]["points"][0]["score"].as_f64().unwrap();
    let (_, b) = send(
        &app,
        Method::POST,
        "/collections/prod/points/query",
        Some(json!({"query": [1.0, 0.0]})),
        &[],
    )
    .await;
    assert_eq!(score(&b), 1.0);
    let switch = act(json!([{"delete_alias": {"alias_name": "prod"}}, {"create_alias": {"alias_name": "prod", "collection_name": "v2"}}]));
    let (s, _) = send(&app, Method::POST, "/collections/aliases", Some(switch), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = send(
        &app,
        Method::POST,
        "/collections/prod/points/query",
        Some(json!({"query": [1.0, 0.0]})),
        &[],
    )
    .await;
    assert_eq!(score(&b), 0.0);
    let (_, b) = send(&app, Method::GET, "/aliases", None, &[]).await;
    assert_eq!(b["result"]["aliases"], json!([{"alias_name": "prod", "collection_name": "v2"}]));
    let (_, b) = send(&app, Method::GET, "/collections/v1/aliases", None, &[]).await;
    assert_eq!(b["result"]["aliases"], json!([]));
    // An alias may not take a collection's name (409); a missing alias is a 404; a collection
    // may not take an alias's name (400).
    let (s, _) = send(
        &app,
        Method::POST,
        "/collections/aliases",
        Some(act(json!([{"create_alias": {"alias_name": "v1", "collection_name": "v2"}}]))),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = send(
        &app,
        Method::POST,
        "/collections/aliases",
        Some(act(json!([{"delete_alias": {"alias_name": "nope"}}]))),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = send(
        &app,
        Method::PUT,
        "/collections/prod",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// Queries by example: a point id (its vector; the point itself left out), `lookup_from`
/// another collection, and the three recommend strategies, against values worked out by hand.
#[tokio::test]
async fn query_by_id_lookup_and_recommend() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let create = json!({"vectors": {"size": 2, "distance": "Dot"}});
    for name in ["c", "other"] {
        let (s, _) = send(&app, Method::PUT, &format!("/collections/{name}"), Some(create.clone()), &[]).await;
        assert_eq!(s, StatusCode::OK);
    }
    let points = json!({"points": [{"id": 1, "vector": [1.0, 0.0]}, {"id": 2, "vector": [0.9, 0.1]},
                                   {"id": 3, "vector": [0.0, 1.0]}, {"id": 4, "vector": [-1.0, 0.0]}]});
    send(&app, Method::PUT, "/collections/c/points", Some(points), &[]).await;
    send(
        &app,
        Method::PUT,
        "/collections/other/points",
        Some(json!({"points": [{"id": 7, "vector": [0.0, 1.0]}]})),
        &[],
    )
    .await;
    let query = |body: Value| {
        let app = app.clone();
        async move {
            let (s, b) = send(&app, Method::POST, "/collections/c/points/query", Some(body), &[]).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b["result"]["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["id"].as_u64().unwrap(), p["score"].as_f64().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    let ids = |v: &[(u64, f64)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(ids(&query(json!({"query": 1})).await), vec![2, 3, 4]);
    assert_eq!(ids(&query(json!({"query": {"nearest": 1}, "limit": 1})).await), vec![2]);
    let got = query(json!({"query": 7, "lookup_from": {"collection": "other"}, "limit": 1})).await;
    assert_eq!(got, vec![(3, 1.0)]);
    // average_vector: [1,0] + ([1,0] - [0,1]) = [2,-1]; 2 scores 1.7, 4 scores -2.
    let got = query(json!({"query": {"recommend": {"positive": [1], "negative": [3]}}})).await;
    assert_eq!(ids(&got), vec![2, 4]);
    assert!((got[0].1 - 1.7).abs() < 1e-6, "{got:?}");
    // best_score: 2 is closer to the positive: 0.5 * (0.9 / 1.9 + 1); 3 ties at 0: -0.5.
    let got = query(json!({"query": {"recommend": {"positive": [1], "negative": [4], "strategy": "best_score"}}})).await;
    assert_eq!(ids(&got), vec![2, 3]);
    assert!(
        (got[0].1 - 0.5 * (0.9 / 1.9 + 1.0)).abs() < 1e-6 && (got[1].1 + 0.5).abs() < 1e-6,
        "{got:?}"
    );
    // sum_scores: 0.9 - (-0.9) and 0 - 0; examples may be vectors too.
    let got = query(json!({"query": {"recommend": {"positive": [1], "negative": [[-1.0, 0.0]], "strategy": "sum_scores"}}})).await;
    assert_eq!(ids(&got), vec![2, 3, 4]);
    assert!((got[0].1 - 1.8).abs() < 1e-6, "{got:?}");
    let (s, b) = send(&app, Method::POST, "/collections/c/points/query", Some(json!({"query": 99})), &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}

/// The older `/points/recommend` routes answer as the Query API's recommend does.
#[tokio::test]
async fn older_recommend_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    let points = json!({"points": [{"id": 1, "vector": [1.0, 0.0]}, {"id": 2, "vector": [0.9, 0.1]}, {"id": 3, "vector": [0.0, 1.0]}]});
    send(&app, Method::PUT, "/collections/c/points", Some(points), &[]).await;
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/recommend",
        Some(json!({"positive": [1], "limit": 1, "with_payload": true})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"][0]["id"], 2);
    let batch =
        json!({"searches": [{"positive": [1], "limit": 1}, {"positive": [3], "negative": [1], "limit": 1, "strategy": "best_score"}]});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/recommend/batch", Some(batch), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["result"][0][0]["id"].as_u64(), b["result"][1][0]["id"].as_u64()),
        (Some(2), Some(2))
    );
}

/// `PUT /points/vectors` keeps payloads and writes nothing when an id is missing;
/// `has_vector: ""` holds for every point; the one vector cannot be deleted.
#[tokio::test]
async fn vectors_update_has_vector_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    let points = json!({"points": [{"id": 1, "vector": [1.0, 0.0], "payload": {"k": "a"}}, {"id": 2, "vector": [0.0, 1.0]}]});
    send(&app, Method::PUT, "/collections/c/points", Some(points), &[]).await;
    let upd = json!({"points": [{"id": 1, "vector": {"": [0.5, 0.5]}}]});
    let (s, b) = send(&app, Method::PUT, "/collections/c/points/vectors", Some(upd), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = send(&app, Method::GET, "/collections/c/points/1", None, &[]).await;
    assert_eq!(
        (&b["result"]["vector"], &b["result"]["payload"]),
        (&json!([0.5, 0.5]), &json!({"k": "a"}))
    );
    let missing = json!({"points": [{"id": 2, "vector": [9.0, 9.0]}, {"id": 3, "vector": [1.0, 1.0]}]});
    let (s, _) = send(&app, Method::PUT, "/collections/c/points/vectors", Some(missing), &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, b) = send(&app, Method::GET, "/collections/c/points/2", None, &[]).await;
    assert_eq!(b["result"]["vector"], json!([0.0, 1.0]), "nothing written");
    let (_, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/count",
        Some(json!({"filter": {"must": [{"has_vector": ""}]}})),
        &[],
    )
    .await;
    assert_eq!(b["result"]["count"], 2);
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/count",
        Some(json!({"filter": {"must": [{"has_vector": "dense"}]}})),
        &[],
    )
    .await;
    assert_eq!(
        (s, &b["result"]["count"]),
        (StatusCode::OK, &json!(0)),
        "no point has a vector of that name"
    );
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/vectors/delete",
        Some(json!({"points": [1], "vector": ["dense"]})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // Deleting the unnamed vector leaves the point, without it: dense searches skip it.
    let (s, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/vectors/delete",
        Some(json!({"points": [1], "vector": [""]})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = send(&app, Method::GET, "/collections/c/points/1", None, &[]).await;
    assert_eq!(
        (&b["result"]["payload"], &b["result"]["vector"]),
        (&json!({"k": "a"}), &json!({})),
        "{b}"
    );
    let (_, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/query",
        Some(json!({"query": [1.0, 0.0]})),
        &[],
    )
    .await;
    assert_eq!(b["result"]["points"].as_array().unwrap().len(), 1, "{b}");
}

/// Qdrant's fixture shape: an unnamed dense vector beside a sparse one, points holding either;
/// sparse queries (with and without IDF), dense queries skipping sparse-only points, named
/// vectors by name, prefetch + fusion, and what `GET` shows.
#[tokio::test]
async fn sparse_and_named_vectors_over_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let create = json!({"vectors": {"size": 2, "distance": "Dot"}, "sparse_vectors": {"sparse-text": {}}});
    let (s, b) = send(&app, Method::PUT, "/collections/c", Some(create), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let points = json!({"points": [
        {"id": 1, "vector": [1.0, 0.0]},
        {"id": 2, "vector": [0.0, 1.0]},
        {"id": 9, "vector": {"sparse-text": {"indices": [66, 12], "values": [0.5, 0.5]}}},
        {"id": 10, "vector": {"sparse-text": {"indices": [3, 1, 2], "values": [0.3, 0.1, 0.2]}, "": [0.5, 0.5]}}
    ]});
    let (s, b) = send(&app, Method::PUT, "/collections/c/points", Some(points), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = send(&app, Method::GET, "/collections/c", None, &[]).await;
    assert_eq!(b["result"]["config"]["params"]["sparse_vectors"], json!({"sparse-text": {}}), "{b}");
    assert_eq!(b["result"]["config"]["params"]["vectors"]["size"], 2, "{b}");
    let (_, b) = send(&app, Method::GET, "/collections/c/points/9", None, &[]).await;
    assert_eq!(
        b["result"]["vector"],
        json!({"sparse-text": {"indices": [12, 66], "values": [0.5, 0.5]}}),
        "{b}"
    );
    let (_, b) = send(&app, Method::GET, "/collections/c/points/10", None, &[]).await;
    assert_eq!(b["result"]["vector"][""], json!([0.5, 0.5]), "{b}");
    let ids = |b: &Value| -> Vec<u64> {
        b["result"]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_u64().unwrap())
            .collect()
    };
    // Dense: point 9 has no dense vector and is never returned.
    let (_, b) = send(
        &app,
        Method::POST,
        "/collections/c/points/query",
        Some(json!({"query": [1.0, 0.9], "limit": 10})),
        &[],
    )
    .await;
    assert_eq!(ids(&b), vec![1, 10, 2], "{b}");
    // Sparse: only points sharing an index, by dot product.
    let q = json!({"query": {"indices": [2, 12], "values": [1.0, 1.0]}, "using": "sparse-text", "limit": 10});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/query", Some(q), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b), vec![9, 10], "{b}");
    assert_eq!(b["result"]["points"][0]["score"], 0.5);
    // The old search API names the vector in the body.
    let q = json!({"vector": {"name": "sparse-text", "vector": {"indices": [1], "values": [2.0]}}, "limit": 3});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/search", Some(q), &[]).await;
    assert_eq!((s, b["result"][0]["id"].as_u64()), (StatusCode::OK, Some(10)), "{b}");
    // Hybrid: a dense and a sparse prefetch fused by RRF.
    let q = json!({"prefetch": [
        {"query": [1.0, 0.0], "limit": 3},
        {"query": {"indices": [66], "values": [1.0]}, "using": "sparse-text", "limit": 3}
    ], "query": {"fusion": "rrf"}, "limit": 2});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/query", Some(q), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b), vec![1, 9], "the best of each ranking first: {b}");
    // IDF on, then off again, through PATCH.
    let patch = json!({"sparse_vectors": {"sparse-text": {"modifier": "idf"}}});
    let (s, b) = send(&app, Method::PATCH, "/collections/c", Some(patch), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = send(&app, Method::GET, "/collections/c", None, &[]).await;
    assert_eq!(
        b["result"]["config"]["params"]["sparse_vectors"]["sparse-text"]["modifier"], "idf",
        "{b}"
    );
    // Bad sparse vectors are 4xx that say why (lengths that differ: Qdrant's 422).
    for (v, needle, status) in [
        (json!({"indices": [1, 1], "values": [1.0, 2.0]}), "unique", StatusCode::BAD_REQUEST),
        (
            json!({"indices": [1, 2], "values": [1.0]}),
            "same length",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let body = json!({"points": [{"id": 11, "vector": {"sparse-text": v}}]});
        let (s, b) = send(&app, Method::PUT, "/collections/c/points", Some(body), &[]).await;
        assert_eq!(s, status, "{b}");
        assert!(b["status"]["error"].as_str().unwrap().contains(needle), "{b}");
    }
    // Named dense vectors: each searched by its own metric.
    let create = json!({"vectors": {"image": {"size": 2, "distance": "Dot"}, "text": {"size": 3, "distance": "Euclid"}}});
    let (s, b) = send(&app, Method::PUT, "/collections/n", Some(create), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let points = json!({"points": [
        {"id": 1, "vector": {"image": [1.0, 0.0], "text": [0.0, 0.0, 0.0]}},
        {"id": 2, "vector": {"image": [0.0, 1.0], "text": [1.0, 1.0, 1.0]}}
    ]});
    let (s, b) = send(&app, Method::PUT, "/collections/n/points", Some(points), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let q = json!({"query": [0.9, 0.9, 0.9], "using": "text", "limit": 1, "with_vector": true});
    let (_, b) = send(&app, Method::POST, "/collections/n/points/query", Some(q), &[]).await;
    assert_eq!(ids(&b), vec![2], "{b}");
    assert_eq!(b["result"]["points"][0]["vector"]["image"], json!([0.0, 1.0]), "{b}");
    let q = json!({"query": [0.0, 1.0], "using": "image", "limit": 1});
    let (_, b) = send(&app, Method::POST, "/collections/n/points/query", Some(q), &[]).await;
    assert_eq!(ids(&b), vec![2], "{b}");
    let (_, b) = send(&app, Method::GET, "/collections/n", None, &[]).await;
    assert_eq!(b["result"]["config"]["params"]["vectors"]["text"]["distance"], "Euclid", "{b}");
}

/// `POST /facet` counts values from the payload index, with a filter, most common first.
#[tokio::test]
async fn facet_counts_over_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    let p = |id: u64, c: &str, n: i64| json!({"id": id, "vector": [1.0, 0.0], "payload": {"color": c, "n": n}});
    let points = json!({"points": [p(1, "red", 1), p(2, "red", 2), p(3, "blue", 1), p(4, "red", 1)]});
    send(&app, Method::PUT, "/collections/c/points", Some(points), &[]).await;
    let (s, b) = send(&app, Method::POST, "/collections/c/facet", Some(json!({"key": "color"})), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no index yet: {b}");
    send(
        &app,
        Method::PUT,
        "/collections/c/index",
        Some(json!({"field_name": "color", "field_schema": "keyword"})),
        &[],
    )
    .await;
    let (s, b) = send(&app, Method::POST, "/collections/c/facet", Some(json!({"key": "color"})), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["result"]["hits"],
        json!([{"value": "red", "count": 3}, {"value": "blue", "count": 1}])
    );
    let filtered = json!({"key": "color", "filter": {"must": [{"key": "n", "match": {"value": 1}}]}, "limit": 1});
    let (_, b) = send(&app, Method::POST, "/collections/c/facet", Some(filtered), &[]).await;
    assert_eq!(b["result"]["hits"], json!([{"value": "red", "count": 2}]));
}

/// Scroll with `order_by`: value order, `start_from`, `order_value`, no offset with it.
#[tokio::test]
async fn scroll_order_by_over_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    let p = |id: u64, price: f64| json!({"id": id, "vector": [1.0, 0.0], "payload": {"price": price}});
    let points = json!({"points": [p(1, 3.5), p(2, 1.0), p(3, 2.25), p(4, 1.0)]});
    send(&app, Method::PUT, "/collections/c/points", Some(points), &[]).await;
    let (s, _) = send(
        &app,
        Method::POST,
        "/collections/c/points/scroll",
        Some(json!({"order_by": "price"})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no range index yet");
    send(
        &app,
        Method::PUT,
        "/collections/c/index",
        Some(json!({"field_name": "price", "field_schema": "float"})),
        &[],
    )
    .await;
    let scroll = |body: Value| {
        let app = app.clone();
        async move {
            let (s, b) = send(&app, Method::POST, "/collections/c/points/scroll", Some(body), &[]).await;
            (s, b)
        }
    };
    let (s, b) = scroll(json!({"order_by": "price"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ids: Vec<u64> = b["result"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![2, 4, 3, 1]);
    assert_eq!(b["result"]["points"][3]["order_value"], json!(3.5));
    assert_eq!(b["result"]["next_page_offset"], Value::Null);
    let (_, b) = scroll(json!({"order_by": {"key": "price", "direction": "desc", "start_from": 2.25}, "limit": 2})).await;
    let ids: Vec<u64> = b["result"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![3, 2]);
    let (s, _) = scroll(json!({"order_by": "price", "offset": 2})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// A Query API request without a query lists points in id order (score 0), under its filter,
/// offset and limit; a vector size out of range is Qdrant's 422.
#[tokio::test]
async fn query_without_query_and_size_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    let (s, b) = send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 65537, "distance": "Dot"}})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["status"]["error"].as_str().unwrap().contains("vectors.size: value 65537 invalid"),
        "{b}"
    );
    send(
        &app,
        Method::PUT,
        "/collections/c",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    let points: Vec<Value> = (1..=5u64)
        .map(|i| json!({"id": i, "vector": [1.0, 0.0], "payload": {"odd": i % 2 == 1}}))
        .collect();
    send(&app, Method::PUT, "/collections/c/points", Some(json!({"points": points})), &[]).await;
    let body = json!({"filter": {"must": [{"key": "odd", "match": {"value": true}}]}, "offset": 1, "limit": 5});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/query", Some(body), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ids: Vec<u64> = b["result"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![3, 5]);
    assert_eq!(b["result"]["points"][0]["score"], json!(0.0));
}

/// `query/groups` and `search/groups`: groups by a payload value, each full, best first, with
/// a point of the group's id looked up in another collection.
#[tokio::test]
async fn grouped_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    for c in ["c", "docs"] {
        let (s, b) = send(
            &app,
            Method::PUT,
            &format!("/collections/{c}"),
            Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // 6 documents of 4 chunks; chunk scores fall with the document number.
    let points: Vec<Value> = (0..24u64)
        .map(|i| json!({"id": i, "vector": [1.0 - (i / 4) as f32 * 0.1, 0.0], "payload": {"doc": i / 4}}))
        .collect();
    send(&app, Method::PUT, "/collections/c/points", Some(json!({"points": points})), &[]).await;
    send(
        &app,
        Method::PUT,
        "/collections/docs/points",
        Some(json!({"points": [{"id": 0, "vector": [0.0, 1.0], "payload": {"title": "zero"}}]})),
        &[],
    )
    .await;
    let q = json!({"query": [1.0, 0.0], "group_by": "doc", "group_size": 2, "limit": 3, "with_payload": true, "with_lookup": "docs"});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/query/groups", Some(q), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let groups = b["result"]["groups"].as_array().unwrap();
    assert_eq!(
        groups.iter().map(|g| g["id"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "{b}"
    );
    for g in groups {
        assert_eq!(g["hits"].as_array().unwrap().len(), 2);
        assert!(g["hits"].as_array().unwrap().iter().all(|h| h["payload"]["doc"] == g["id"]));
    }
    assert_eq!(groups[0]["lookup"]["payload"]["title"], "zero");
    assert_eq!(groups[1]["lookup"], Value::Null);
    let q = json!({"vector": [1.0, 0.0], "group_by": "doc", "group_size": 4, "limit": 10});
    let (s, b) = send(&app, Method::POST, "/collections/c/points/search/groups", Some(q), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let groups = b["result"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 6);
    assert!(groups.iter().all(|g| g["hits"].as_array().unwrap().len() == 4));
}

/// The older discover and recommend-groups APIs answer as the Query API does.
#[tokio::test]
async fn older_discover_and_recommend_groups_apis() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), config());
    send(
        &app,
        Method::PUT,
        "/collections/d",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
        &[],
    )
    .await;
    let points = json!({"points": [
        {"id": 1, "vector": [1, 0], "payload": {"g": "a"}}, {"id": 2, "vector": [0.9, 0.1], "payload": {"g": "b"}},
        {"id": 3, "vector": [0, 1], "payload": {"g": "a"}}, {"id": 4, "vector": [0.5, 0.5], "payload": {"g": "b"}}]});
    let (s, _) = send(&app, Method::PUT, "/collections/d/points", Some(points), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let old = json!({"target": [1, 0], "context": [{"positive": 2, "negative": 3}], "limit": 2});
    let new = json!({"query": {"discover": {"target": [1, 0], "context": [{"positive": 2, "negative": 3}]}}, "limit": 2});
    let (s, a) = send(&app, Method::POST, "/collections/d/points/discover", Some(old.clone()), &[]).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (_, b) = send(&app, Method::POST, "/collections/d/points/query", Some(new), &[]).await;
    let ids = |v: &Value| v.as_array().unwrap().iter().map(|p| p["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a["result"]), ids(&b["result"]["points"]), "{a} {b}");
    let (s, batch) = send(
        &app,
        Method::POST,
        "/collections/d/points/discover/batch",
        Some(json!({"searches": [old]})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&batch["result"][0]), ids(&a["result"]));
    let body = json!({"positive": [1], "group_by": "g", "group_size": 1, "limit": 2});
    let (s, g) = send(&app, Method::POST, "/collections/d/points/recommend/groups", Some(body), &[]).await;
    assert_eq!(s, StatusCode::OK, "{g}");
    let groups = g["result"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{g}");
    // The example (point 1) is left out; the best other point is 2, in group b.
    assert_eq!(
        (groups[0]["id"].clone(), groups[0]["hits"][0]["id"].clone()),
        (json!("b"), json!(2)),
        "{g}"
    );
}
