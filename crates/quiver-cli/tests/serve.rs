//! `quiver serve` as a process: SIGKILL during a stream of acknowledged upserts loses nothing
//! acknowledged; SIGTERM stops it cleanly; limits and malformed requests get clear 4xx errors
//! and never a 5xx.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    url: String,
}

/// A test that fails midway leaves no server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(dir: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--port", &port.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The server prints this line once it is listening.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("quiver serving on"), "server said {line:?}");
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Sends a request; returns (status, body) for any status.
fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let req = ureq::request(method, url).set("content-type", "application/json");
    let resp = match body {
        Some(b) => req.send_string(&b.to_string()),
        None => req.call(),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn sigkill_during_acknowledged_upserts_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = start(tmp.path(), &[]);
    let (s, _) = call(
        "PUT",
        &format!("{}/collections/c", server.url),
        Some(json!({"vectors": {"size": 8, "distance": "Dot"}})),
    );
    assert_eq!(s, 200);
    let mut acked: Vec<u64> = Vec::new();
    let url = format!("{}/collections/c/points?wait=true", server.url);
    // Kill while a request is in flight: a second thread keeps upserting after the kill order.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u64>>();
    let writer = std::thread::spawn(move || {
        for b in 0u64..10_000 {
            let points: Vec<Value> = (0..50)
                .map(|i| {
                    let v = vec![b as f32; 8];
                    json!({"id": b * 100 + i, "vector": v, "payload": {"b": b}})
                })
                .collect();
            match ureq::put(&url)
                .set("content-type", "application/json")
                .send_string(&json!({"points": points}).to_string())
            {
                Ok(r) if r.status() == 200 => {
                    if tx.send((0..50).map(|i| b * 100 + i).collect()).is_err() {
                        return;
                    }
                }
                _ => return, // the server is gone
            }
        }
    });
    for _ in 0..40 {
        acked.extend(rx.recv().unwrap());
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    writer.join().unwrap();
    acked.extend(rx.try_iter().flatten());
    let mut server = start(tmp.path(), &[]);
    let (s, body) = call(
        "POST",
        &format!("{}/collections/c/points", server.url),
        Some(json!({"ids": acked, "with_payload": false})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        body["result"].as_array().unwrap().len(),
        acked.len(),
        "acknowledged points lost after SIGKILL"
    );
    let (_, count) = call("POST", &format!("{}/collections/c/points/count", server.url), Some(json!({})));
    let n = count["result"]["count"].as_u64().unwrap() as usize;
    assert!(n >= acked.len() && n.is_multiple_of(50), "count {n}: batches must be whole");
    // SIGTERM: a clean stop.
    sigterm_and_wait(&mut server.child);
}

/// Sends SIGTERM through the `kill` command and checks the exit is clean.
fn sigterm_and_wait(child: &mut Child) {
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "server exited with {status} after SIGTERM");
}

#[test]
fn bad_requests_get_clear_4xx_never_5xx() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = start(tmp.path(), &["--max-body-mb", "1"]);
    let u = |p: &str| format!("{}{p}", server.url);
    assert_eq!(
        call(
            "PUT",
            &u("/collections/c"),
            Some(json!({"vectors": {"size": 3, "distance": "Cosine"}}))
        )
        .0,
        200
    );
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        (
            "PUT",
            u("/collections/c"),
            Some(json!({"vectors": {"size": 3, "distance": "Cosine"}})),
            409,
            "already exists",
        ),
        (
            "PUT",
            u("/collections/big"),
            Some(json!({"vectors": {"size": 70000, "distance": "Cosine"}})),
            422,
            "vectors.size",
        ),
        (
            "PUT",
            u("/collections/bad%2Fname"),
            Some(json!({"vectors": {"size": 3, "distance": "Cosine"}})),
            422,
            "invalid collection name",
        ),
        (
            "PUT",
            u("/collections/x"),
            Some(json!({"vectors": {"a": {"size": 3, "distance": "Cosine"}}, "sparse_vectors": {"a": {}}})),
            400,
            "used by a dense and a sparse vector",
        ),
        (
            "PUT",
            u("/collections/x"),
            Some(json!({"vectors": {"size": 3, "distance": "Hamming"}})),
            400,
            "metric",
        ),
        (
            "PUT",
            u("/collections/c/points"),
            Some(json!({"points": [{"id": 1, "vector": [1, 2]}]})),
            400,
            "expected dim: 3, got 2",
        ),
        (
            "PUT",
            u("/collections/c/points"),
            Some(json!({"points": [{"id": -1, "vector": [1, 2, 3]}]})),
            400,
            "invalid point id",
        ),
        ("PUT", u("/collections/c/points"), Some(json!({"points": []})), 400, "empty batch"),
        (
            "PUT",
            u("/collections/c/points"),
            Some(json!({"points": [{"id": 1, "vector": {"text": "hi", "model": "m"}}]})),
            400,
            "documents",
        ),
        (
            "POST",
            u("/collections/c/points/query"),
            Some(json!({"query": [1, 0, 0], "limit": -1})),
            400,
            "limit",
        ),
        (
            "POST",
            u("/collections/c/points/query"),
            Some(
                json!({"query": [1, 0, 0], "filter": {"must": [{"key": "a", "geo_polygon": {"exterior": {"points": [{"lat": 0, "lon": 0}, {"lat": 1, "lon": 0}, {"lat": 1, "lon": 1}]}}}]}}),
            ),
            422,
            "polygon ring",
        ),
        (
            "POST",
            u("/collections/c/points/query"),
            Some(json!({"prefetch": [{"query": [1, 0, 0], "using": "nope"}], "query": {"fusion": "rrf"}})),
            400,
            "not existing vector name error: nope",
        ),
        (
            "POST",
            u("/collections/c/points/query"),
            Some(Value::String("not an object".into())),
            400,
            "expected an object",
        ),
        (
            "POST",
            u("/collections/nope/points/query"),
            Some(json!({"query": [1, 0, 0]})),
            404,
            "not found",
        ),
        ("GET", u("/collections/c/points/12345"), None, 404, "does not exist"),
        ("GET", u("/no/such/route"), None, 404, "no such endpoint"),
    ];
    for (method, url, body, want, needle) in cases {
        let (status, resp) = call(method, &url, body.clone());
        assert_eq!(status, want, "{method} {url} {body:?}: {resp}");
        let msg = resp["status"]["error"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            msg.contains(&needle.to_lowercase()),
            "{method} {url}: {msg:?} should mention {needle:?}"
        );
    }
    // Deeply nested filter.
    let mut f = json!({"must": []});
    for _ in 0..100 {
        f = json!({"must": [f]});
    }
    let (s, _) = call("POST", &u("/collections/c/points/count"), Some(json!({"filter": f})));
    assert_eq!(s, 400);
    // A body over the limit (1 MiB here) by one byte. Exactly one byte over, the server can only
    // notice once the client has sent everything, so its early answer cannot break the client's
    // write (with a larger excess the client got EPIPE instead of reading the 413).
    let big: Vec<Value> = (0..20_000).map(|i| json!({"id": i, "vector": [0.5, 0.5, 0.5]})).collect();
    let mut body = json!({ "points": big }).to_string();
    assert!(body.len() <= 1 << 20);
    body.push_str(&" ".repeat((1 << 20) + 1 - body.len()));
    let resp = ureq::request("PUT", &u("/collections/c/points"))
        .set("content-type", "application/json")
        .send_string(&body);
    let s = match resp {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("over-limit body: {e}"),
    };
    assert_eq!(s, 413);
    // Nothing stored was harmed, and metrics saw it all.
    assert_eq!(
        call(
            "PUT",
            &u("/collections/c/points?wait=true"),
            Some(json!({"points": [{"id": 1, "vector": [1, 0, 0]}]}))
        )
        .0,
        200
    );
    let (_, count) = call("POST", &u("/collections/c/points/count"), Some(json!({})));
    assert_eq!(count["result"]["count"], 1);
    let (s, metrics) = call("GET", &u("/metrics"), None);
    assert_eq!(s, 200);
    let text = metrics.as_str().unwrap().to_string();
    assert!(
        text.contains("quiver_http_requests_total{method=\"POST\",route=\"/collections/{name}/points/query\",status=\"400\"}"),
        "{text}"
    );
    assert!(text.contains("quiver_collection_points{collection=\"c\"} 1"), "{text}");
    sigterm_and_wait(&mut server.child);
}

/// HTTPS with a certificate made here (openssl), checked by curl against that certificate;
/// plain HTTP to the same port is refused.
#[test]
fn tls_serves_https() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let data = tmp.path().join("data");
    let mut server = start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--api-key",
            "k",
        ],
    );
    let https = server.url.replace("http://", "https://");
    let out = Command::new("curl")
        .args(["-s", "-H", "api-key: k", "--cacert"])
        .arg(&cert)
        .arg(format!("{https}/collections"))
        .output()
        .unwrap();
    let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(body["status"], "ok", "HTTPS answer: {}", String::from_utf8_lossy(&out.stdout));
    let plain = Command::new("curl")
        .args(["-s", "-m", "5"])
        .arg(format!("{}/collections", server.url))
        .output()
        .unwrap();
    assert!(
        !plain.status.success() || !String::from_utf8_lossy(&plain.stdout).contains("\"ok\""),
        "plain HTTP must not be served"
    );
    sigterm_and_wait(&mut server.child);
}

/// Concurrent searches are batched by the server: each must still get exactly its own answer
/// (checked against brute force), whatever else shares its batch, including bad requests.
#[test]
fn concurrent_searches_get_their_own_exact_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = start(tmp.path(), &[]);
    let u = |p: &str| format!("{}{p}", server.url);
    assert_eq!(
        call(
            "PUT",
            &u("/collections/c"),
            Some(json!({"vectors": {"size": 4, "distance": "Euclid"}}))
        )
        .0,
        200
    );
    let vectors: Vec<[f32; 4]> = (0..500)
        .map(|i| {
            let x = i as f32;
            [x.sin(), (x * 0.7).cos(), (x * 0.3).sin(), (i % 7) as f32 * 0.1]
        })
        .collect();
    let points: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"id": i, "vector": v, "payload": {"odd": i % 2 == 1}}))
        .collect();
    assert_eq!(
        call("PUT", &u("/collections/c/points?wait=true"), Some(json!({"points": points}))).0,
        200
    );
    let vectors = std::sync::Arc::new(vectors);
    let threads: Vec<_> = (0..24)
        .map(|t| {
            let url = u("/collections/c/points/query");
            let vectors = vectors.clone();
            std::thread::spawn(move || {
                for round in 0..10 {
                    let q = [(t as f32 * 0.37 + round as f32).sin(), (t as f32).cos(), 0.2, round as f32 * 0.05];
                    let limit = 1 + (t + round) % 9;
                    let odd_only = t % 3 == 0;
                    if t % 5 == 4 && round == 3 {
                        // A bad request in the middle of everyone else's batch.
                        let (s, _) = call("POST", &url, Some(json!({"query": [1.0, 2.0], "limit": 3})));
                        assert_eq!(s, 400);
                        continue;
                    }
                    let mut body = json!({"query": q, "limit": limit});
                    if odd_only {
                        body["filter"] = json!({"must": [{"key": "odd", "match": {"value": true}}]});
                    }
                    let (s, resp) = call("POST", &url, Some(body));
                    assert_eq!(s, 200, "{resp}");
                    let got: Vec<u64> = resp["result"]["points"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["id"].as_u64().unwrap())
                        .collect();
                    let mut all: Vec<(f32, u64)> = vectors
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !odd_only || i % 2 == 1)
                        .map(|(i, v)| (v.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(), i as u64))
                        .collect();
                    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    let want: Vec<u64> = all.iter().take(limit).map(|x| x.1).collect();
                    assert_eq!(got, want, "thread {t} round {round}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    sigterm_and_wait(&mut server.child);
}

/// Hybrid search through Qdrant's Query API: a dense and a keyword (BM25) prefetch fused by
/// reciprocal rank fusion finds the point only its exact term matches.
#[test]
fn hybrid_query_api_fuses_dense_and_keyword_rankings() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = start(tmp.path(), &[]);
    let u = |p: &str| format!("{}{p}", server.url);
    let ok = |(s, b): (u16, Value)| {
        assert_eq!(s, 200, "{b}");
        b
    };
    ok(call(
        "PUT",
        &u("/collections/h"),
        Some(json!({"vectors": {"size": 3, "distance": "Cosine"}})),
    ));
    ok(call(
        "PUT",
        &u("/collections/h/index"),
        Some(json!({"field_name": "document", "field_schema": "text"})),
    ));
    let mut points: Vec<Value> = (0..10)
        .map(|i| json!({"id": i, "vector": [1.0, 0.1 * i as f32, 0.0], "payload": {"document": "the service fails when the disk is full"}}))
        .collect();
    points.push(json!({"id": 99, "vector": [0.0, 0.0, 1.0], "payload": {"document": "runbook for ERR_QUOTA_7731: raise the quota"}}));
    ok(call(
        "PUT",
        &u("/collections/h/points?wait=true"),
        Some(json!({ "points": points })),
    ));
    let query = |fusion: Value| {
        json!({
            "prefetch": [
                {"query": [1.0, 0.0, 0.0], "limit": 20},
                {"query": {"text": "ERR_QUOTA_7731 runbook", "model": "Qdrant/bm25"}, "using": "bm25", "limit": 20}
            ],
            "query": fusion,
            "limit": 5,
            "with_payload": true
        })
    };
    let dense = ok(call(
        "POST",
        &u("/collections/h/points/query"),
        Some(json!({"query": [1.0, 0.0, 0.0], "limit": 5})),
    ));
    assert!(!dense["result"]["points"].as_array().unwrap().iter().any(|p| p["id"] == 99));
    for fusion in [json!({"fusion": "rrf"}), json!({"rrf": {"k": 60, "weights": [1.0, 2.0]}})] {
        let r = ok(call("POST", &u("/collections/h/points/query"), Some(query(fusion))));
        let pts = r["result"]["points"].as_array().unwrap();
        assert_eq!(pts.len(), 5);
        assert!(
            pts.iter()
                .any(|p| p["id"] == 99 && p["payload"]["document"].as_str().unwrap().contains("7731")),
            "{r}"
        );
    }
    // A keyword-only query (BM25 alone), as a document, wrapped in `nearest` (as qdrant-client
    // sends it), or as a string; `offset` skips the best.
    for q in [
        json!({"query": {"text": "ERR_QUOTA_7731", "model": "Qdrant/bm25"}, "using": "bm25", "limit": 3}),
        json!({"query": {"nearest": {"text": "ERR_QUOTA_7731", "model": "Qdrant/bm25"}}, "using": "bm25", "limit": 3}),
        json!({"query": "ERR_QUOTA_7731", "using": "bm25", "limit": 3}),
    ] {
        let r = ok(call("POST", &u("/collections/h/points/query"), Some(q.clone())));
        let ids: Vec<&Value> = r["result"]["points"].as_array().unwrap().iter().map(|p| &p["id"]).collect();
        assert_eq!(ids, [&json!(99)], "{q}: {r}");
    }
    let all = ok(call(
        "POST",
        &u("/collections/h/points/query"),
        Some(json!({"query": "disk full", "using": "bm25", "limit": 4})),
    ));
    let skipped = ok(call(
        "POST",
        &u("/collections/h/points/query"),
        Some(json!({"query": "disk full", "using": "bm25", "limit": 2, "offset": 2})),
    ));
    assert_eq!(
        all["result"]["points"].as_array().unwrap()[2..],
        skipped["result"]["points"].as_array().unwrap()[..]
    );
    let (s, b) = call(
        "POST",
        &u("/collections/h/points/query"),
        Some(json!({"query": {"model": "Qdrant/bm25"}, "using": "bm25"})),
    );
    assert_eq!((s, b["status"]["error"].as_str()), (400, Some("a keyword query needs text")));
    // Unsupported shapes are a 400 that says so, never a 5xx.
    let (s, b) = call("POST", &u("/collections/h/points/query"), Some(query(json!({"fusion": "dbsf"}))));
    assert_eq!(s, 400, "{b}");
    // One dense prefetch fused alone keeps the dense order (the query stages).
    let fused = ok(call(
        "POST",
        &u("/collections/h/points/query"),
        Some(json!({"prefetch": [{"query": [1.0, 0.0, 0.0], "limit": 5}], "query": {"fusion": "rrf"}, "limit": 5})),
    ));
    let ids = |r: &Value| {
        r["result"]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&fused), ids(&dense));
    sigterm_and_wait(&mut server.child);
}

/// `POST /collections/{name}/context` answers from chunks `quiver ingest` stored.
#[test]
fn context_endpoint_returns_passages_with_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let doc = tmp.path().join("notes.md");
    std::fs::write(
        &doc,
        "# Backups\n\nNightly backups run at 02:00 and keep 14 days.\n\nRestores need the ops-restore key.\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["create", "kb", "--model", "all-minilm-l6-v2"]);
    run(&["ingest", "kb", doc.to_str().unwrap()]);
    let mut server = start(&data, &[]);
    let (s, b) = call(
        "POST",
        &format!("{}/collections/kb/context", server.url),
        Some(json!({"question": "when do backups run?", "limit": 3})),
    );
    assert_eq!(s, 200, "{b}");
    let p = &b["result"]["passages"][0];
    assert!(p["source"].as_str().unwrap().ends_with("notes.md"), "{b}");
    assert!(p["text"].as_str().unwrap().contains("02:00"), "{b}");
    let (s, _) = call(
        "POST",
        &format!("{}/collections/kb/context", server.url),
        Some(json!({"question": ""})),
    );
    assert_eq!(s, 400);
    sigterm_and_wait(&mut server.child);
}

/// Sends raw bytes on a new connection and returns what the server answered before closing
/// (or before `wait` passed).
fn raw(url: &str, request: &str, wait: std::time::Duration) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    // A connection the server refused may be reset before or while we write.
    if s.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && request.starts_with("OPTIONS") {
                    break;
                }
            }
            Err(e) => panic!("no answer within {wait:?}: {e} (got {:?})", String::from_utf8_lossy(&out)),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A local server that no web page can drive: bodies that are not declared JSON get 415 (a
/// browser sends text/plain and form posts cross-site without asking), CORS preflights grant
/// nothing unless --cors-origin names the origin, an empty API key is refused, headers that
/// never finish are cut off, and open connections are bounded.
#[test]
fn a_local_server_no_web_page_can_drive() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = start(
        tmp.path(),
        &[
            "--cors-origin",
            "https://app.example.com",
            "--header-timeout",
            "1",
            "--max-connections",
            "3",
        ],
    );
    let u = |p: &str| format!("{}{p}", server.url);
    let (s, _) = call(
        "PUT",
        &u("/collections/c"),
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
    );
    assert_eq!(s, 200);
    let (s, _) = call(
        "PUT",
        &u("/collections/c/points?wait=true"),
        Some(json!({"points": [{"id": 1, "vector": [1.0, 0.0]}]})),
    );
    assert_eq!(s, 200);
    // What a hostile page can send without a preflight: refused, nothing deleted.
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let r = ureq::post(&u("/collections/c/points/delete"))
            .set("content-type", ct)
            .send_string(r#"{"points": [1]}"#);
        match r {
            Err(ureq::Error::Status(415, _)) => {}
            other => panic!("{ct}: expected 415, got {other:?}"),
        }
    }
    let (s, b) = call("POST", &u("/collections/c/points/count"), Some(json!({})));
    assert_eq!((s, b["result"]["count"].as_u64()), (200, Some(1)), "{b}");
    // A bare string where a query goes: a 400 that says how to send text.
    let (s, b) = call("POST", &u("/collections/c/points/query"), Some(json!({"query": "how are you"})));
    assert_eq!(s, 400, "{b}");
    assert!(b["status"]["error"].as_str().unwrap().contains("send a document"), "{b}");
    // Preflights: another origin gets no permission, the allowed one does.
    let preflight = |origin: &str| {
        raw(
            &server.url,
            &format!(
                "OPTIONS /collections/c/points/delete HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\n\
                 Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n"
            ),
            std::time::Duration::from_secs(10),
        )
        .to_ascii_lowercase()
    };
    let evil = preflight("https://evil.example");
    assert!(!evil.contains("access-control-allow-origin"), "{evil}");
    let good = preflight("https://app.example.com");
    assert!(good.contains("access-control-allow-origin: https://app.example.com"), "{good}");
    // Headers that never finish are cut off after the header timeout (1 s here).
    let started = std::time::Instant::now();
    let partial = raw(
        &server.url,
        "GET /collections HTTP/1.1\r\nHost: x\r\n",
        std::time::Duration::from_secs(30),
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the server waited {:?}: {partial:?}",
        started.elapsed()
    );
    sigterm_and_wait(&mut server.child);

    // Three connections at most: with three open (each has been answered, so each holds its
    // slot), a fourth is closed at once; one closing frees a slot.
    let mut server = start(tmp.path(), &["--max-connections", "3"]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let open_one = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        s.write_all(health.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("passed") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before answering: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        s
    };
    let mut idle: Vec<std::net::TcpStream> = (0..3).map(|_| open_one()).collect();
    let refused = raw(
        &server.url,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(10),
    );
    assert!(!refused.contains("200"), "a fourth connection was served: {refused:?}");
    drop(idle.pop());
    // The server frees the slot when it reads the end of that connection: poll, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let served = loop {
        let r = raw(
            &server.url,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            std::time::Duration::from_secs(10),
        );
        if r.contains("200") || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(served.contains("200"), "{served:?}");
    drop(idle);
    sigterm_and_wait(&mut server.child);

    // An empty API key would turn authentication off: refused at start.
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--data-dir")
        .arg(tmp.path())
        .args(["serve", "--port", &free_port().to_string(), "--api-key", ""])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--api-key is empty"), "{err}");
}

/// A text collection's precision: recorded by `create --precision int8` (the manifest keeps it
/// over a restart) or by `"embedder_precision"` over REST, and used for its documents and text
/// queries: the same text gets a vector close to, but not equal to, the float one.
#[test]
fn int8_text_collections_embed_with_int8() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--data-dir")
        .arg(&data)
        .args(["create", "cli8", "--model", "all-minilm-l6-v2", "--precision", "int8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut server = start(&data, &[]);
    let url = |p: &str| format!("{}{p}", server.url);
    let (s, b) = call("GET", &url("/collections/cli8"), None);
    assert_eq!((s, b["result"]["quiver_embedder_precision"].as_str()), (200, Some("int8")), "{b}");
    for (name, precision) in [("f", json!(null)), ("q", json!("int8"))] {
        let (s, b) = call(
            "PUT",
            &url(&format!("/collections/{name}")),
            Some(json!({"vectors": {"size": 384, "distance": "Cosine"}, "embedder": "all-minilm-l6-v2", "embedder_precision": precision})),
        );
        assert_eq!(s, 200, "{b}");
        let points: Vec<Value> = ["backups run nightly at two", "the cafeteria opens at noon", "restores need a key"]
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"id": i + 1, "vector": {"text": t, "model": "sentence-transformers/all-MiniLM-L6-v2"}}))
            .collect();
        let (s, b) = call(
            "PUT",
            &url(&format!("/collections/{name}/points?wait=true")),
            Some(json!({"points": points})),
        );
        assert_eq!(s, 200, "{b}");
        let (s, b) = call(
            "POST",
            &url(&format!("/collections/{name}/points/query")),
            Some(json!({"query": {"text": "when do the backups happen?", "model": "sentence-transformers/all-MiniLM-L6-v2"}, "limit": 1})),
        );
        assert_eq!((s, &b["result"]["points"][0]["id"]), (200, &json!(1)), "{b}");
    }
    let (_, b) = call("GET", &url("/collections/q"), None);
    assert_eq!(b["result"]["quiver_embedder_precision"], json!("int8"), "{b}");
    let vector = |name: &str| -> Vec<f32> {
        let (s, b) = call("GET", &url(&format!("/collections/{name}/points/1")), None);
        assert_eq!(s, 200, "{b}");
        b["result"]["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let (f, q) = (vector("f"), vector("q"));
    let cos: f32 = f.iter().zip(&q).map(|(a, b)| a * b).sum();
    assert!(cos > 0.98 && cos < 0.99999, "float vs int8 cosine {cos}");
    for (body, what) in [
        (
            json!({"vectors": {"size": 384, "distance": "Cosine"}, "embedder": "all-minilm-l6-v2", "embedder_precision": "int4"}),
            "int4",
        ),
        (
            json!({"vectors": {"size": 384, "distance": "Cosine"}, "embedder_precision": "int8"}),
            "needs an embedder",
        ),
    ] {
        let (s, b) = call("PUT", &url("/collections/bad"), Some(body));
        assert_eq!(s, 400, "{b}");
        assert!(b["status"]["error"].as_str().unwrap().contains(what), "{b}");
    }
    sigterm_and_wait(&mut server.child);
    // The precision survives a restart.
    let mut server = start(&data, &[]);
    let (_, b) = call("GET", &format!("{}/collections/q", server.url), None);
    assert_eq!(b["result"]["quiver_embedder_precision"], json!("int8"), "{b}");
    sigterm_and_wait(&mut server.child);
}
