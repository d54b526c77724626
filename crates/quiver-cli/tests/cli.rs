//! The `quiver` binary end to end on a temporary data folder: every command, human and JSON
//! output, exit statuses, and one-line errors.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn quiver(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

#[track_caller]
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = quiver(dir, args);
    assert!(
        out.status.success(),
        "quiver {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(ok(dir, &all).trim()).unwrap()
}

#[track_caller]
fn fails(dir: &Path, args: &[&str], needle: &str) {
    let out = quiver(dir, args);
    assert_eq!(out.status.code(), Some(1), "quiver {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error expected, got {err:?}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "{err:?} should mention {needle:?}"
    );
}

fn npy_f32(rows: usize, cols: usize, data: &[f32]) -> Vec<u8> {
    quiver::npy::encode_f32(rows, cols, data)
}

#[test]
fn every_command_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("data");
    assert!(ok(dir, &["list"]).contains("no collections"));
    ok(dir, &["create", "docs", "--dim", "3", "--metric", "euclid"]);
    fails(dir, &["create", "docs", "--dim", "3"], "already exists");
    fails(dir, &["create", "a/b", "--dim", "3"], "invalid collection name");
    fails(dir, &["create", "x", "--dim", "0"], "dimension");
    fails(dir, &["create", "x", "--dim", "3", "--metric", "hamming"], "unknown metric");

    let jsonl = tmp.path().join("points.jsonl");
    std::fs::write(
        &jsonl,
        r#"{"id": 1, "vector": [0, 0, 0], "payload": {"color": "red", "n": 1}}
{"id": 2, "vector": [1, 0, 0], "payload": {"color": "blue", "n": 2}}

{"id": "550e8400-e29b-41d4-a716-446655440000", "vector": [2, 0, 0], "payload": {"color": "red", "n": 3}}
"#,
    )
    .unwrap();
    assert_eq!(json(dir, &["upsert", "docs", "--file", jsonl.to_str().unwrap()])["upserted"], 3);
    let npy = tmp.path().join("base.npy");
    std::fs::write(&npy, npy_f32(2, 3, &[10.0, 0.0, 0.0, 11.0, 0.0, 0.0])).unwrap();
    assert_eq!(
        json(dir, &["upsert", "docs", "--file", npy.to_str().unwrap(), "--start-id", "100"])["upserted"],
        2
    );
    assert_eq!(json(dir, &["count", "docs"])["count"], 5);

    let hits = json(dir, &["search", "docs", "--vector", "[1.9, 0, 0]", "-k", "2"]);
    let ids: Vec<Value> = hits.as_array().unwrap().iter().map(|h| h["id"].clone()).collect();
    assert_eq!(ids, vec![Value::from("550e8400-e29b-41d4-a716-446655440000"), Value::from(2)]);
    assert!((hits[0]["score"].as_f64().unwrap() - 0.1).abs() < 1e-5);
    let filtered = json(
        dir,
        &[
            "search",
            "docs",
            "--vector",
            "[1.9, 0, 0]",
            "--filter",
            r#"{"must":[{"key":"color","match":{"value":"red"}}]}"#,
        ],
    );
    assert_eq!(filtered.as_array().unwrap().len(), 2);
    let human = ok(dir, &["search", "docs", "--vector", "[1.9, 0, 0]", "-k", "1"]);
    assert!(human.contains("rank") && human.contains("550e8400"), "{human}");

    let queries = tmp.path().join("q.npy");
    std::fs::write(&queries, npy_f32(2, 3, &[0.1, 0.0, 0.0, 10.4, 0.0, 0.0])).unwrap();
    let out = ok(dir, &["--json", "search", "docs", "--file", queries.to_str().unwrap(), "-k", "1"]);
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0][0]["id"], 1);
    assert_eq!(lines[1][0]["id"], 100);

    let got = json(dir, &["get", "docs", "2", "100", "--with-vector"]);
    assert_eq!(got[0]["payload"]["color"], "blue");
    assert_eq!(got[1]["vector"], serde_json::json!([10.0, 0.0, 0.0]));

    let page = json(dir, &["scroll", "docs", "--limit", "2"]);
    assert_eq!(page["points"].as_array().unwrap().len(), 2);
    let next = page["next_offset"].to_string();
    let page2 = json(dir, &["scroll", "docs", "--limit", "10", "--offset", next.trim_matches('"')]);
    assert_eq!(page2["points"].as_array().unwrap().len(), 3);
    assert!(page2["next_offset"].is_null());

    assert_eq!(
        json(dir, &["set-payload", "docs", "100", "--payload", r#"{"color":"green"}"#])["updated"],
        1
    );
    assert_eq!(
        json(
            dir,
            &[
                "count",
                "docs",
                "--filter",
                r#"{"must":[{"key":"color","match":{"value":"green"}}]}"#
            ]
        )["count"],
        1
    );
    ok(dir, &["index", "docs", "color", "--type", "keyword"]);
    let info = json(dir, &["info", "docs"]);
    assert_eq!(info["points"], 5);
    assert_eq!(info["vector_index"]["build_threads"], 0);
    ok(dir, &["create", "one", "--dim", "3", "--build-threads", "1"]);
    assert_eq!(json(dir, &["info", "one"])["vector_index"]["build_threads"], 1);
    ok(dir, &["drop", "one"]);
    fails(
        dir,
        &["create", "many", "--dim", "3", "--build-threads", "100000"],
        "build threads must be at most",
    );
    assert_eq!(info["payload_indexes"][0]["key"], "color");
    assert_eq!(
        json(dir, &["delete", "docs", "--filter", r#"{"must":[{"key":"n","range":{"gte":2}}]}"#])["deleted"],
        2
    );
    assert_eq!(json(dir, &["delete", "docs", "101"])["deleted"], 1);
    assert_eq!(json(dir, &["count", "docs"])["count"], 2);
    ok(dir, &["compact", "docs"]);
    assert_eq!(json(dir, &["count", "docs"])["count"], 2);

    // Bad input: one-line errors, exit status 1, nothing lost.
    fails(dir, &["search", "docs", "--vector", "[1, 2]"], "expected dim: 3, got 2");
    fails(dir, &["search", "docs", "--vector", "not json"], "JSON array");
    fails(dir, &["search", "nope", "--vector", "[1, 2, 3]"], "not found");
    fails(dir, &["count", "docs", "--filter", "{\"must\": 5}"], "invalid filter");
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": 7, \"vector\": [1, 2, 3]}\n{\"id\": -1, \"vector\": [1, 2, 3]}\n").unwrap();
    fails(dir, &["upsert", "docs", "--file", bad.to_str().unwrap()], "invalid point id");
    std::fs::write(&bad, "{\"id\": 7, \"vector\": [1, 2, 3]}\n{\"id\": 8, \"vector\": [1, 2]}\n").unwrap();
    fails(dir, &["upsert", "docs", "--file", bad.to_str().unwrap()], "point 8");
    std::fs::write(&bad, "").unwrap();
    fails(dir, &["upsert", "docs", "--file", bad.to_str().unwrap()], "empty batch");
    let badnpy = tmp.path().join("bad.npy");
    std::fs::write(&badnpy, &npy_f32(1, 3, &[1.0, 2.0, 3.0])[..70]).unwrap();
    fails(dir, &["upsert", "docs", "--file", badnpy.to_str().unwrap()], ".npy");
    std::fs::write(&badnpy, npy_f32(1, 3, &[1.0, f32::NAN, 3.0])).unwrap();
    fails(dir, &["upsert", "docs", "--file", badnpy.to_str().unwrap()], "NaN");
    assert_eq!(json(dir, &["count", "docs"])["count"], 2, "failed upserts stored nothing");

    assert_eq!(json(dir, &["list"]), serde_json::json!(["docs"]));
    ok(dir, &["drop", "docs"]);
    assert_eq!(json(dir, &["list"]), serde_json::json!([]));
    fails(dir, &["drop", "docs"], "not found");
}

/// `quiver walkthrough --json`: every step's numbers against values worked out by hand, and the
/// answer found by the engine's own search.
#[test]
fn walkthrough_numbers_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let v = json(tmp.path(), &["walkthrough"]);
    let close = |got: &Value, want: &[f64]| {
        let got: Vec<f64> = got.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        got.len() == want.len() && got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5)
    };
    assert_eq!(v["vocabulary"].as_array().unwrap().len(), 22);
    let s3 = &v["sentences"][2];
    assert_eq!(s3["tokens"], serde_json::json!(["who", "am", "I"]));
    assert_eq!(
        s3["H"],
        serde_json::json!([[1.0, 1.0, 0.0], [1.0, 1.0, 2.0], [1.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    );
    assert!(close(&s3["pooled"], &[2.0 / 3.0, 4.0 / 3.0, 1.0 / 3.0, 1.0]));
    assert!(close(&s3["index_vector"], &[1.0, 7.0 / 3.0]));
    assert!(close(&v["sentences"][0]["index_vector"], &[4.0 / 3.0, 5.0 / 3.0]));
    assert!(close(&v["query_trace"]["index_vector"], &[2.0 / 3.0, 8.0 / 3.0]));
    // V q: (4/3 * 2/3 + 5/3 * 8/3, same, 1 * 2/3 + 7/3 * 8/3) = (48/9, 48/9, 62/9).
    assert!(close(&v["dot_products"]["scores"], &[48.0 / 9.0, 48.0 / 9.0, 62.0 / 9.0]));
    assert_eq!(v["nearest"]["text"], "who am I");
    assert_eq!(v["nearest"]["point_id"], 3);
    let human = ok(tmp.path(), &["walkthrough"]);
    for step in [
        "[1] dataset",
        "[2] word embeddings",
        "[8] query",
        "[9] dot products",
        "[10] nearest neighbour",
        // The tie the sheet shows between two sentences is explained, and the throwaway
        // collection is not named as if `quiver list` would show it.
        "points 1 and 2 tie (\"how are you\" and \"who are you\")",
        "but the projection P maps both to [1.33, 1.67]",
    ] {
        assert!(human.contains(step), "missing {step}");
    }
    assert!(!human.contains("collection \"walkthrough\""));
    // The sheet fits an 80-column terminal, and the plot marks the query and its nearest.
    for line in human.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line:?}");
    }
    assert!(human.contains("[3]") && human.lines().any(|l| l.trim_start().starts_with("|") && l.contains('q')));
    let nine = ok(tmp.path(), &["walkthrough", "--step", "9"]);
    assert!(
        nine.contains("[9] dot products") && !nine.contains("[1] dataset") && !nine.contains("[10]"),
        "{nine}"
    );
    assert_eq!(
        quiver(tmp.path(), &["walkthrough", "--step", "11"]).status.code(),
        Some(2),
        "a step past 10 is bad usage"
    );
    assert!(!tmp.path().join("quiver-data").exists(), "the walkthrough leaves no data folder");
}

/// `quiver embed`: one normalised vector per input line, in order, as JSON lines or .npy, equal
/// to the reference embeddings; a missing model is a one-line error that says how to get it.
#[test]
fn embed_texts() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = tmp.path().join("texts.txt");
    std::fs::write(&texts, "how are you\nwho am I\n").unwrap();
    let out = ok(tmp.path(), &["embed", "--file", texts.to_str().unwrap()]);
    let rows: Vec<Vec<f32>> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/minilm/embeddings.npy");
    let reference = quiver::npy::read(&fixtures).unwrap();
    for (row, want_row) in [(0usize, 0usize), (1, 2)] {
        let want = &reference.data[want_row * 384..(want_row + 1) * 384];
        let cos: f32 = rows[row].iter().zip(want).map(|(a, b)| a * b).sum();
        assert!(cos >= 0.9999, "row {row}: cosine {cos}");
    }
    let npy = tmp.path().join("out.npy");
    ok(
        tmp.path(),
        &["embed", "--file", texts.to_str().unwrap(), "--out", npy.to_str().unwrap()],
    );
    let m = quiver::npy::read(&npy).unwrap();
    assert_eq!((m.rows, m.cols), (2, 384));
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["embed", "--file", texts.to_str().unwrap()])
        .env("QUIVER_MODEL_DIR", tmp.path())
        .env("QUIVER_CACHE_DIR", tmp.path())
        .env("HOME", tmp.path())
        .env_remove("HF_HOME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("quiver model pull") && err.lines().count() == 1, "{err}");
}

/// Text collections: create with a model, add texts (file and single), search by text, explain.
#[test]
fn text_collections_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("data");
    ok(dir, &["create", "docs", "--model", "all-minilm-l6-v2"]);
    assert_eq!(json(dir, &["info", "docs"])["dim"], 384);
    let file = tmp.path().join("docs.jsonl");
    std::fs::write(
        &file,
        r#"{"id": 1, "text": "The cat sat on the warm windowsill all afternoon.", "payload": {"topic": "pets"}}
{"id": 2, "text": "Stock markets fell sharply after the interest rate announcement.", "payload": {"topic": "finance"}}
{"id": 3, "text": "A write-ahead log makes database writes durable across crashes."}
{"text": "Dogs love long walks in the park.", "payload": {"topic": "pets"}}
"#,
    )
    .unwrap();
    assert_eq!(json(dir, &["add", "docs", "--file", file.to_str().unwrap()])["added"], 4);
    assert_eq!(
        json(dir, &["add", "docs", "--text", "Vector databases store embeddings.", "--id", "9"])["added"],
        1
    );
    assert_eq!(json(dir, &["count", "docs"])["count"], 5);
    // Plain text: --file says what it takes and points at --lines, which takes it.
    let plain = tmp.path().join("notes.txt");
    std::fs::write(&plain, "Tea is brewed from dried leaves.\n\nCoffee is brewed from roasted beans.\n").unwrap();
    fails(dir, &["add", "docs", "--file", plain.to_str().unwrap()], "use --lines");
    assert_eq!(json(dir, &["add", "docs", "--lines", plain.to_str().unwrap()])["added"], 2);
    // No input names all three ways to give it.
    let out = quiver(dir, &["add", "docs"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--text <TEXT>|--file <FILE>|--lines <LINES>"));
    let tea = json(dir, &["search", "docs", "--text", "which drink comes from leaves?", "-k", "1"]);
    assert_eq!(tea[0]["payload"]["document"], "Tea is brewed from dried leaves.", "{tea}");
    ok(dir, &["delete", "docs", tea[0]["id"].as_str().unwrap()]);
    let coffee = json(dir, &["search", "docs", "--text", "roasted beans", "-k", "1"]);
    ok(dir, &["delete", "docs", coffee[0]["id"].as_str().unwrap()]);
    assert_eq!(json(dir, &["count", "docs"])["count"], 5);
    let hits = json(
        dir,
        &["search", "docs", "--text", "how do databases survive a power failure?", "-k", "2"],
    );
    assert_eq!(hits[0]["id"], 3, "{hits}");
    assert_eq!(
        hits[0]["payload"]["document"],
        "A write-ahead log makes database writes durable across crashes."
    );
    let pets = json(
        dir,
        &[
            "search",
            "docs",
            "--text",
            "my kitten sleeps in the sun",
            "-k",
            "1",
            "--filter",
            r#"{"must":[{"key":"topic","match":{"value":"pets"}}]}"#,
        ],
    );
    assert_eq!(pets[0]["id"], 1, "{pets}");
    let ex = json(dir, &["explain", "docs", "--text", "my kitten sleeps in the sun", "-k", "2"]);
    assert_eq!(ex["tokens"][0], "[CLS]");
    assert_eq!(ex["token_embeddings_shape"], serde_json::json!([8, 384]));
    assert_eq!(ex["distances_computed"], 5);
    assert_eq!(ex["precision"], "float");
    assert_eq!(ex["results"][0]["id"], 1);
    let int8 = json(dir, &["explain", "docs", "--text", "kitten", "--precision", "int8"]);
    assert_eq!(int8["precision"], "int8");
    assert!(ok(dir, &["explain", "docs", "--text", "kitten"]).contains("search path: exact scan"));
    // Exact terms: an error code the embedding does not capture. Keyword search (BM25) and
    // hybrid search find it; the text index came with the text collection.
    ok(
        dir,
        &[
            "add",
            "docs",
            "--text",
            "Runbook ERR_QUOTA_7731: raise the storage quota.",
            "--id",
            "20",
        ],
    );
    let kw = json(dir, &["search", "docs", "--text", "err_quota_7731", "--keyword", "-k", "1"]);
    assert_eq!(kw[0]["id"], 20, "{kw}");
    let hy = json(
        dir,
        &["search", "docs", "--text", "what does ERR_QUOTA_7731 mean?", "--hybrid", "-k", "2"],
    );
    assert!(hy.as_array().unwrap().iter().any(|h| h["id"] == 20), "{hy}");
    assert_eq!(json(dir, &["info", "docs"])["payload_indexes"][0]["type"], "text");
    // A vector collection refuses text with a clear error.
    ok(dir, &["create", "vecs", "--dim", "3"]);
    fails(dir, &["add", "vecs", "--text", "hello"], "has no embedder");
    fails(dir, &["create", "bad", "--model", "gpt-9"], "unknown model");
}

/// All points of a collection as (id, payload), by scrolling.
fn all_points(dir: &Path, collection: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut offset: Option<String> = None;
    loop {
        let mut args = vec!["scroll", collection, "--limit", "500"];
        let off;
        if let Some(o) = &offset {
            off = o.clone();
            args.extend(["--offset", off.as_str()]);
        }
        let page = json(dir, &args);
        for p in page["points"].as_array().unwrap() {
            out.push((p["id"].to_string(), p["payload"].clone()));
        }
        match page["next_offset"]
            .as_str()
            .map(str::to_string)
            .or_else(|| page["next_offset"].as_u64().map(|n| n.to_string()))
        {
            Some(n) => offset = Some(n),
            None => return out,
        }
    }
}

/// Ingestion of a folder, re-ingestion after an edit (only that file's chunks change), pruning
/// of a removed file, and context assembled from the chunks.
#[test]
fn ingest_is_idempotent_and_context_cites_its_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("data");
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    let para = |topic: &str, n: usize| -> String {
        (0..n)
            .map(|i| format!("Fact {i} about {topic}: the {topic} handbook explains step {i} in plain words."))
            .collect::<Vec<_>>()
            .join(" ")
    };
    std::fs::write(
        docs.join("a.md"),
        format!("# Volcanoes\n\n{}\n\n{}\n", para("volcano", 12), para("lava", 12)),
    )
    .unwrap();
    std::fs::write(docs.join("sub/b.txt"), format!("{}\n\n{}", para("glacier", 10), para("ice", 10))).unwrap();
    std::fs::write(
        docs.join("sub/c.html"),
        format!(
            "<html><body><h1>Tides</h1><p>{}</p><script>skip()</script></body></html>",
            para("tide", 8)
        ),
    )
    .unwrap();
    std::fs::write(docs.join("ignored.bin"), "binary").unwrap();
    ok(dir, &["create", "kb", "--model", "all-minilm-l6-v2"]);
    let docs_s = docs.to_str().unwrap();
    let r = json(dir, &["ingest", "kb", docs_s, "--max-tokens", "80", "--overlap", "20"]);
    assert_eq!((r["files"].as_u64(), r["updated"].as_u64()), (Some(3), Some(3)), "{r}");
    let before = all_points(dir, "kb");
    assert_eq!(before.len() as u64, r["chunks_written"].as_u64().unwrap());
    assert!(before
        .iter()
        .all(|(_, p)| p["source"].is_string() && p["chunk"].is_u64() && p["end"].as_u64() > p["start"].as_u64()));
    assert!(
        !before.iter().any(|(_, p)| p["document"].as_str().unwrap().contains("skip()")),
        "script text is not content"
    );

    // Nothing changed: nothing written.
    let again = json(dir, &["ingest", "kb", docs_s, "--max-tokens", "80", "--overlap", "20"]);
    assert_eq!(
        (again["unchanged"].as_u64(), again["chunks_written"].as_u64()),
        (Some(3), Some(0)),
        "{again}"
    );

    // Edit one file (shorter): only its chunks change, its surplus chunks go.
    std::fs::write(docs.join("sub/b.txt"), para("glacier", 4)).unwrap();
    let edit = json(dir, &["ingest", "kb", docs_s, "--max-tokens", "80", "--overlap", "20"]);
    assert_eq!((edit["updated"].as_u64(), edit["unchanged"].as_u64()), (Some(1), Some(2)), "{edit}");
    assert!(edit["chunks_deleted"].as_u64().unwrap() > 0);
    let after = all_points(dir, "kb");
    let of = |pts: &[(String, Value)], needle: &str| -> Vec<(String, Value)> {
        pts.iter()
            .filter(|(_, p)| p["source"].as_str().unwrap().ends_with(needle))
            .cloned()
            .collect()
    };
    assert_eq!(
        of(&before, "a.md"),
        of(&after, "a.md"),
        "an unchanged file keeps its chunks exactly"
    );
    assert_eq!(of(&before, "c.html"), of(&after, "c.html"));
    assert!(of(&after, "b.txt")
        .iter()
        .all(|(_, p)| !p["document"].as_str().unwrap().contains("ice")));

    // Context: the best passages with their sources, adjacent chunks merged.
    let ctx = json(
        dir,
        &[
            "context",
            "kb",
            "what does the lava handbook say about step 5?",
            "--limit",
            "4",
            "--max-tokens",
            "400",
        ],
    );
    let passages = ctx["passages"].as_array().unwrap();
    assert!(!passages.is_empty());
    assert!(passages[0]["source"].as_str().unwrap().ends_with("a.md"), "{ctx}");
    assert!(passages.iter().any(|p| p["text"].as_str().unwrap().contains("lava")));

    // A removed file is pruned on request.
    std::fs::remove_file(docs.join("sub/c.html")).unwrap();
    let pruned = json(dir, &["ingest", "kb", docs_s, "--prune", "--max-tokens", "80", "--overlap", "20"]);
    assert_eq!(pruned["pruned_files"].as_u64(), Some(1), "{pruned}");
    assert!(of(&all_points(dir, "kb"), "c.html").is_empty());
}

/// A crash (SIGKILL) in the middle of an ingestion leaves the collection consistent: after a
/// rerun every file has exactly its current chunks, all with its current hash, and the full-text
/// index agrees with the points. Wherever the kill lands, these hold.
#[test]
fn a_killed_ingestion_is_repaired_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("data");
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for f in 0..24 {
        let body: String = (0..30)
            .map(|i| format!("File {f} sentence {i} talks about topic{f} in detail. "))
            .collect();
        std::fs::write(docs.join(format!("f{f:02}.txt")), body).unwrap();
    }
    ok(dir, &["create", "kb", "--model", "all-minilm-l6-v2"]);
    for delay_ms in [150u64, 400] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg("--data-dir")
            .arg(dir)
            .args(["--json", "ingest", "kb", docs.to_str().unwrap(), "--max-tokens", "60"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Fault injection, not synchronisation: the checks below hold wherever the kill lands.
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Change a file between runs, as a user might.
        std::fs::write(docs.join("f03.txt"), format!("Rewritten after crash {delay_ms}. Short now.")).unwrap();
        let r = json(dir, &["ingest", "kb", docs.to_str().unwrap(), "--max-tokens", "60"]);
        assert_eq!(r["files"], 24, "{r}");
        let pts = all_points(dir, "kb");
        let mut per_file: std::collections::BTreeMap<String, Vec<(u64, String, u64)>> = Default::default();
        for (_, p) in &pts {
            per_file.entry(p["source"].as_str().unwrap().to_string()).or_default().push((
                p["chunk"].as_u64().unwrap(),
                p["file_hash"].as_str().unwrap().to_string(),
                p["chunks"].as_u64().unwrap(),
            ));
        }
        assert_eq!(per_file.len(), 24);
        for (src, chunks) in &per_file {
            let n = chunks[0].2;
            let mut numbers: Vec<u64> = chunks.iter().map(|c| c.0).collect();
            numbers.sort();
            assert_eq!(numbers, (0..n).collect::<Vec<_>>(), "{src}: chunks 0..{n}");
            assert!(chunks.iter().all(|c| c.1 == chunks[0].1 && c.2 == n), "{src}: one hash, one count");
        }
        let again = json(dir, &["ingest", "kb", docs.to_str().unwrap(), "--max-tokens", "60"]);
        assert_eq!(again["unchanged"], 24, "{again}");
        let hits = json(
            dir,
            &[
                "search",
                "kb",
                "--text",
                &format!("rewritten after crash {delay_ms}"),
                "--keyword",
                "-k",
                "1",
            ],
        );
        assert!(hits[0]["payload"]["source"].as_str().unwrap().ends_with("f03.txt"), "{hits}");
    }
}

/// Questions that name an identifier: over 100 files, 40 of them holding one made-up error code
/// each, "how do I fix CODE?" must return the file with that code first, in hybrid search and in
/// context, although the generic files match "how do I fix" better by meaning.
#[test]
fn hybrid_and_context_put_the_rare_identifier_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("data");
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let parts = [
        "sync agent",
        "print spooler",
        "backup job",
        "mail relay",
        "license server",
        "VPN client",
        "disk monitor",
        "search crawler",
    ];
    let things = [
        "the token store",
        "the upstream mirror",
        "the quota table",
        "the audit log",
        "the key vault",
    ];
    let code = |i: usize| {
        format!(
            "ERR_{}{}{:04}{}",
            (b'A' + (i % 26) as u8) as char,
            i % 9 + 1,
            1000 + i * 37,
            (b'B' + (i % 7) as u8) as char
        )
    };
    for i in 0..100 {
        let text = if i < 40 {
            format!(
                "Error {} is reported when the {} cannot reach {}. Resolution: restart the {}, then check the permissions of {}.",
                code(i),
                parts[i % parts.len()],
                things[i % things.len()],
                parts[i % parts.len()],
                things[i % things.len()]
            )
        } else {
            format!(
                "How do I fix problems with the {}? To fix most problems, first read the logs, then restart the {} and try again. \
                 If the problem comes back, fix the configuration and ask support how to fix it for good.",
                parts[i % parts.len()],
                parts[i % parts.len()]
            )
        };
        std::fs::write(docs.join(format!("note-{i:03}.txt")), text).unwrap();
    }
    ok(dir, &["create", "kb", "--model", "all-minilm-l6-v2"]);
    ok(dir, &["ingest", "kb", docs.to_str().unwrap()]);
    for i in (0..40).step_by(4) {
        let question = format!("how do I fix {}?", code(i));
        let want = format!("note-{i:03}.txt");
        let hits = json(dir, &["search", "kb", "--text", &question, "--hybrid", "-k", "5"]);
        let first = hits[0]["payload"]["source"].as_str().unwrap();
        assert!(first.ends_with(&want), "{question}: hybrid ranks {first} first, not {want}");
        let ctx = json(dir, &["context", "kb", &question]);
        let first = ctx["passages"][0]["source"].as_str().unwrap();
        assert!(first.ends_with(&want), "{question}: context starts with {first}, not {want}");
    }
}

/// The data folder and numbers, as a hostile tester found them: a bare relative --data-dir
/// works, Quiver leaves alone what it did not make in collections/ (a user's dot-folder, a
/// .DS_Store), vectors whose distances would overflow are refused, --ef out of range is refused
/// in the flag's words, and an IO error says the OS's reason once.
#[test]
fn data_folder_hygiene_and_number_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let in_tmp = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quiver"))
            .current_dir(tmp.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = in_tmp(&["--data-dir", "mydata", "create", "c", "--dim", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = &tmp.path().join("mydata");
    let cdir = dir.join("collections");
    std::fs::create_dir_all(cdir.join(".backup-c")).unwrap();
    std::fs::write(cdir.join(".backup-c/keep.txt"), "mine").unwrap();
    std::fs::write(cdir.join(".DS_Store"), "finder").unwrap();
    std::fs::create_dir_all(cdir.join("not-a-collection")).unwrap();
    let names = json(dir, &["list"]);
    assert_eq!(names, serde_json::json!(["c"]));
    ok(dir, &["info", "c"]);
    assert!(
        cdir.join(".backup-c/keep.txt").exists(),
        "a folder Quiver did not make is left alone"
    );
    assert!(cdir.join(".DS_Store").exists());
    // Distances of these would overflow f32: refused, nothing stored.
    let huge = tmp.path().join("huge.jsonl");
    std::fs::write(&huge, "{\"id\": 1, \"vector\": [3e38, 3e38]}\n").unwrap();
    fails(dir, &["upsert", "c", "--file", huge.to_str().unwrap()], "too large");
    let fine = tmp.path().join("fine.jsonl");
    std::fs::write(&fine, "{\"id\": 2, \"vector\": [1, 2]}\n").unwrap();
    ok(dir, &["upsert", "c", "--file", fine.to_str().unwrap()]);
    fails(dir, &["search", "c", "--vector", "[3e38, 3e38]"], "too large");
    assert_eq!(json(dir, &["count", "c"])["count"], 1);
    // An empty text query is an error in the query's words, before anything is embedded.
    fails(dir, &["search", "c", "--text", "  "], "the text query is empty");
    // A search with no query names the three ways to give one.
    fails(dir, &["search", "c"], "--vector JSON, --text TEXT (text collections) or --file");
    // --model is a name everywhere, --model-dir a folder.
    fails(
        dir,
        &["embed", "--model", "gpt-9"],
        "unknown model \"gpt-9\"; Quiver runs: all-minilm-l6-v2",
    );
    for bad in ["0", "5000", "x"] {
        let out = quiver(dir, &["search", "c", "--vector", "[1, 2]", "--ef", bad]);
        assert_eq!(out.status.code(), Some(2), "--ef {bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--ef must be a whole number from 1 to 4096"));
    }
    // An IO error: the OS's reason once, not twice.
    std::fs::write(tmp.path().join("plain-file"), "").unwrap();
    let out = quiver(&tmp.path().join("plain-file/sub"), &["create", "c", "--dim", "2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

/// Reads never create a data folder, and "collection not found" says where it looked and what
/// is there.
#[test]
fn reads_create_nothing_and_not_found_says_where_it_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("typo-data");
    assert_eq!(json(dir, &["list"]), serde_json::json!([]));
    fails(dir, &["info", "c"], "no Quiver data folder at");
    fails(dir, &["search", "c", "--vector", "[1, 2]"], "no Quiver data folder at");
    assert!(!dir.exists(), "a read created {}", dir.display());
    ok(dir, &["create", "alpha", "--dim", "2"]);
    ok(dir, &["create", "beta", "--dim", "2"]);
    fails(dir, &["info", "gamma"], "collection \"gamma\" not found in");
    fails(dir, &["info", "gamma"], "collections there: alpha, beta");
}

/// `quiver ingest` keeps one canonical source per file: the same folder given as `docs`,
/// `./docs`, an absolute path or `.` from inside it never duplicates chunks.
#[test]
fn ingest_stores_one_source_per_file_whatever_the_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("a.md"),
        "# Tides\n\nTides rise and fall twice a day because of the moon.\n",
    )
    .unwrap();
    std::fs::write(docs.join("b.txt"), "Glaciers move slowly downhill under their own weight.\n").unwrap();
    ok(&data, &["create", "kb", "--model", "all-minilm-l6-v2"]);
    let ingest_from = |cwd: &Path, path: &str| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .current_dir(cwd)
            .arg("--data-dir")
            .arg(&data)
            .args(["--json", "ingest", "kb", path])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = ingest_from(tmp.path(), "docs");
    assert_eq!(first["updated"], 2, "{first}");
    let count = json(&data, &["count", "kb"])["count"].as_u64().unwrap();
    for (cwd, path) in [
        (tmp.path().to_path_buf(), "./docs".to_string()),
        (tmp.path().join("data"), docs.to_str().unwrap().to_string()),
        (docs.clone(), ".".to_string()),
    ] {
        let again = ingest_from(&cwd, &path);
        assert_eq!(
            (again["unchanged"].as_u64(), again["chunks_written"].as_u64()),
            (Some(2), Some(0)),
            "{path} from {}: {again}",
            cwd.display()
        );
        assert_eq!(json(&data, &["count", "kb"])["count"].as_u64().unwrap(), count, "{path}");
    }
}

/// Named dense, multi and sparse vectors from the command line: `create --vector/--sparse`,
/// JSON lines naming them, `search --using`, `info`, and clear errors.
#[test]
fn named_and_sparse_vectors_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("data");
    ok(
        dir,
        &[
            "create",
            "kb",
            "--dim",
            "2",
            "--metric",
            "dot",
            "--vector",
            "late:2:dot:multi",
            "--sparse",
            "bm25:idf",
        ],
    );
    let lines = [
        r#"{"id": 1, "vector": {"": [1, 0], "bm25": {"indices": [7, 3], "values": [2, 1]}, "late": [[1, 0], [0, 1]]}}"#,
        r#"{"id": 2, "vector": {"bm25": {"indices": [7], "values": [1]}}}"#,
        r#"{"id": 3, "vector": [0, 1]}"#,
    ];
    let file = tmp.path().join("p.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    ok(dir, &["upsert", "kb", "--file", file.to_str().unwrap()]);
    let ids = |v: &Value| -> Vec<u64> { v.as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect() };
    let hits = json(
        dir,
        &["search", "kb", "--using", "bm25", "--vector", r#"{"indices": [7], "values": [1]}"#],
    );
    assert_eq!(ids(&hits), vec![1, 2], "{hits}");
    let hits = json(dir, &["search", "kb", "--vector", "[1, 0]"]);
    assert_eq!(ids(&hits), vec![1, 3], "point 2 has no dense vector: {hits}");
    let hits = json(dir, &["search", "kb", "--using", "late", "--vector", "[[0, 1]]"]);
    assert_eq!(ids(&hits), vec![1], "{hits}");
    let info = json(dir, &["info", "kb"]);
    assert_eq!(info["named_vectors"].as_array().unwrap().len(), 2, "{info}");
    assert!(ok(dir, &["info", "kb"]).contains("\"bm25\" sparse idf"));
    fails(
        dir,
        &["search", "kb", "--using", "nope", "--vector", "[1]"],
        "Not existing vector name error: nope",
    );
    fails(dir, &["create", "x", "--vector", "a:two"], "NAME:DIM");
    ok(dir, &["create", "sparse-only", "--sparse", "s"]);
    // explain shows each index's weight and whether pruning skipped its posting list: 200
    // points share two indices, three hold a rare one; the rare one decides the top 3.
    let lines: Vec<String> = (0..200)
        .map(|i| {
            let rare = if i % 10 == 3 && i < 30 { ", 53" } else { "" };
            let n = if rare.is_empty() { 2 } else { 3 };
            format!(
                r#"{{"id": {i}, "vector": {{"s": {{"indices": [0, 1{rare}], "values": [{}]}}}}}}"#,
                vec!["1"; n].join(", ")
            )
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    ok(dir, &["create", "idf", "--sparse", "s:idf"]);
    ok(dir, &["upsert", "idf", "--file", file.to_str().unwrap()]);
    let ex = json(
        dir,
        &[
            "explain",
            "idf",
            "--using",
            "s",
            "--vector",
            r#"{"indices": [0, 1, 53], "values": [1, 1, 1]}"#,
            "-k",
            "3",
        ],
    );
    let full: Vec<bool> = ex["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["read_in_full"].as_bool().unwrap())
        .collect();
    assert_eq!(full, vec![false, false, true], "{ex}");
    assert_eq!(ex["candidates"], 3, "{ex}");
    let hit_ids: Vec<u64> = ex["hits"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect();
    assert_eq!(hit_ids, vec![3, 13, 23], "{ex}");
    assert!(ok(
        dir,
        &[
            "explain",
            "idf",
            "--using",
            "s",
            "--vector",
            r#"{"indices": [0, 53], "values": [1, 1]}"#,
            "-k",
            "2"
        ]
    )
    .contains("lookups only (pruned)"));
}

#[test]
fn snapshots_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("data");
    ok(dir, &["create", "kb", "--dim", "2"]);
    let file = tmp.path().join("p.jsonl");
    std::fs::write(
        &file,
        "{\"id\": 1, \"vector\": [1, 0], \"payload\": {\"k\": \"v\"}}\n{\"id\": 2, \"vector\": [0, 1]}\n",
    )
    .unwrap();
    ok(dir, &["upsert", "kb", "--file", file.to_str().unwrap()]);
    let made = json(dir, &["snapshot", "create", "kb"]);
    let name = made["name"].as_str().unwrap().to_string();
    let listed = json(dir, &["snapshot", "list", "kb"]);
    assert_eq!(listed[0]["name"], name.as_str(), "{listed}");
    let snap = dir.join("snapshots").join("kb").join(&name);
    // Restored under another name (the checksum file beside it is checked), then compared.
    let out = ok(dir, &["snapshot", "restore", "copy", snap.to_str().unwrap()]);
    assert!(out.contains("2 points (checksum verified)"), "{out}");
    assert_eq!(all_points(dir, "copy"), all_points(dir, "kb"));
    // A truncated file is refused and leaves no collection.
    let bad = tmp.path().join("bad.snapshot");
    std::fs::write(&bad, &std::fs::read(&snap).unwrap()[..300]).unwrap();
    fails(dir, &["snapshot", "restore", "bad", bad.to_str().unwrap()], "bad.snapshot");
    assert!(!ok(dir, &["list"]).contains("bad"));
}

#[test]
fn query_bodies_and_facets_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("data");
    ok(dir, &["create", "kb", "--dim", "2", "--metric", "dot"]);
    let file = tmp.path().join("p.jsonl");
    std::fs::write(
        &file,
        "{\"id\": 1, \"vector\": [1, 0], \"payload\": {\"c\": \"red\", \"p\": 3}}\n\
         {\"id\": 2, \"vector\": [0.9, 0.1], \"payload\": {\"c\": \"blue\", \"p\": 1}}\n\
         {\"id\": 3, \"vector\": [0, 1], \"payload\": {\"c\": \"red\", \"p\": 2}}\n",
    )
    .unwrap();
    ok(dir, &["upsert", "kb", "--file", file.to_str().unwrap()]);
    ok(dir, &["index", "kb", "c", "--type", "keyword"]);
    ok(dir, &["index", "kb", "p", "--type", "integer"]);
    // Recommend from point 1 away from point 3: point 2 (the examples are left out).
    let rec = json(
        dir,
        &[
            "query",
            "kb",
            "--body",
            r#"{"query": {"recommend": {"positive": [1], "negative": [3]}}, "limit": 1}"#,
        ],
    );
    assert_eq!(rec["points"][0]["id"], 2, "{rec}");
    // order_by as a query, from the integer index.
    let ord = json(
        dir,
        &[
            "query",
            "kb",
            "--body",
            r#"{"query": {"order_by": {"key": "p", "direction": "desc"}}}"#,
        ],
    );
    let ids: Vec<i64> = ord["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 3, 2], "{ord}");
    // Groups by colour, best group first.
    let g = json(
        dir,
        &[
            "query",
            "kb",
            "--body",
            r#"{"query": [1, 0], "limit": 2, "group_size": 1}"#,
            "--group-by",
            "c",
        ],
    );
    assert_eq!(g["groups"][0]["id"], "red", "{g}");
    assert_eq!(g["groups"][1]["id"], "blue", "{g}");
    // --explain: the fusion first, then its two prefetches with what each handed on.
    let x = json(
        dir,
        &[
            "query",
            "kb",
            "--explain",
            "--body",
            r#"{"prefetch": [{"query": [1, 0], "limit": 3}, {"query": [0, 1], "limit": 2}], "query": {"fusion": "rrf"}, "limit": 2}"#,
        ],
    );
    let stages = x["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3, "{x}");
    assert_eq!(
        (
            stages[0]["query"].as_str(),
            stages[0]["depth"].as_u64(),
            stages[0]["candidates"].as_u64()
        ),
        (Some("fusion (rrf)"), Some(0), Some(5)),
        "{x}"
    );
    assert_eq!((stages[1]["hits"].as_u64(), stages[2]["hits"].as_u64()), (Some(3), Some(2)), "{x}");
    assert_eq!(x["points"].as_array().unwrap().len(), 2);
    let f = json(dir, &["facet", "kb", "c"]);
    assert_eq!(f, serde_json::json!([{"value": "red", "count": 2}, {"value": "blue", "count": 1}]));
    fails(dir, &["query", "kb", "--body", "[1]"], "must be a JSON object");
    fails(
        dir,
        &["query", "kb", "--body", r#"{"prefetch": [{"query": [1, 0]}]}"#],
        "A query is needed to merge the prefetches",
    );
}
