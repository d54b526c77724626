//! Full-text search and hybrid fusion: BM25 scores against values worked out by hand, text
//! filters with and without the index against the plain evaluator, the index kept in step with
//! upserts, deletes and reopen, reciprocal rank fusion against hand-made rankings, and a query
//! whose answer only the exact term finds.

use quiver::{rrf, tokens};
use quiver::{CollectionConfig, Database, Filter, Fusion, Metric, PayloadIndexType, Point, PointId, PointSelector, SearchRequest};
use serde_json::json;

fn doc(id: u64, v: Vec<f32>, text: &str) -> Point {
    Point::new(id, v).with_payload(json!({ "document": text }).as_object().unwrap().clone())
}

fn ids(hits: &[quiver::ScoredPoint]) -> Vec<u64> {
    hits.iter()
        .map(|h| match h.id {
            PointId::Num(n) => n,
            PointId::Uuid(_) => u64::MAX,
        })
        .collect()
}

#[test]
fn tokens_match_tantivys_default_analyser() {
    use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
    let mut analyser = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .build();
    for text in [
        "Hello, World! error-code E42: disk_full",
        "  CJK 東京タワー and emoji 🚀 rockets, naïve café ÉCOLE",
        "a-very-long-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa end",
        "tabs\tand\nnewlines; x=1.5e3 ΣΑΣ",
    ] {
        let mut stream = analyser.token_stream(text);
        let mut theirs = Vec::new();
        while let Some(t) = stream.next() {
            theirs.push(t.text.clone());
        }
        assert_eq!(tokens(text), theirs, "{text:?}");
    }
}

fn corpus(dir: &std::path::Path) -> (Database, quiver::Collection) {
    let db = Database::open(dir).unwrap();
    let c = db.create_collection("t", CollectionConfig::new(2, Metric::Dot)).unwrap();
    c.create_payload_index("document", PayloadIndexType::Text).unwrap();
    c.upsert(vec![
        doc(1, vec![1.0, 0.0], "apple banana apple"),
        doc(2, vec![0.0, 1.0], "banana cherry"),
        doc(3, vec![0.5, 0.5], "cherry date elder fig"),
    ])
    .unwrap();
    (db, c)
}

#[test]
fn bm25_scores_equal_the_hand_worked_values() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c) = corpus(dir.path());
    // N = 3 documents, average length (3 + 2 + 4) / 3 = 3, k1 = 1.2, b = 0.75,
    // idf = ln(1 + (N - n + 0.5) / (n + 0.5)), tf part = tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)).
    // "apple": n = 1, idf = ln(1 + 2.5 / 1.5) = 0.980829; doc 1: tf 2, dl 3 -> 4.4 / 3.2 = 1.375.
    let hits = c.search_text("apple", None, 10, None, quiver::With::NOTHING).unwrap();
    assert_eq!(ids(&hits), vec![1]);
    assert!((hits[0].score - 0.980_829 * 1.375).abs() < 1e-4, "{}", hits[0].score);
    // "banana": n = 2, idf = ln(1.6) = 0.470004; doc 2: tf 1, dl 2 -> 2.2 / 1.9; doc 1: tf 1, dl 3 -> 1.
    let hits = c.search_text("Banana!", None, 10, None, quiver::With::NOTHING).unwrap();
    assert_eq!(ids(&hits), vec![2, 1]);
    assert!((hits[0].score - 0.470_004 * 2.2 / 1.9).abs() < 1e-4, "{}", hits[0].score);
    assert!((hits[1].score - 0.470_004).abs() < 1e-4, "{}", hits[1].score);
    // Two terms add up: "apple cherry" scores doc 1 by apple alone, docs 2 and 3 by cherry.
    let hits = c.search_text("apple cherry", None, 10, None, quiver::With::NOTHING).unwrap();
    assert_eq!(hits.len(), 3);
    assert!(c.search_text("zebra", None, 10, None, quiver::With::NOTHING).unwrap().is_empty());
}

#[test]
fn the_text_index_follows_upserts_deletes_payload_edits_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, c) = corpus(dir.path());
        c.upsert(vec![doc(2, vec![0.0, 1.0], "grape")]).unwrap();
        assert!(ids(&c.search_text("cherry", None, 10, None, quiver::With::NOTHING).unwrap()) == vec![3]);
        c.delete(&PointSelector::Ids(vec![PointId::Num(3)])).unwrap();
        assert!(c.search_text("cherry", None, 10, None, quiver::With::NOTHING).unwrap().is_empty());
        c.set_payload(
            &PointSelector::Ids(vec![PointId::Num(1)]),
            json!({"document": "kiwi"}).as_object().unwrap().clone(),
        )
        .unwrap();
        assert!(c.search_text("apple", None, 10, None, quiver::With::NOTHING).unwrap().is_empty());
        assert_eq!(
            ids(&c.search_text("kiwi grape", None, 10, None, quiver::With::NOTHING).unwrap()).len(),
            2
        );
        c.compact().unwrap();
        assert_eq!(ids(&c.search_text("kiwi", None, 10, None, quiver::With::NOTHING).unwrap()), vec![1]);
    }
    // Recovery rebuilds the index from the same log and segments as the points.
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("t").unwrap();
    assert_eq!(ids(&c.search_text("kiwi", None, 10, None, quiver::With::NOTHING).unwrap()), vec![1]);
    assert_eq!(
        ids(&c.search_text("grape", None, 10, None, quiver::With::NOTHING).unwrap()),
        vec![2]
    );
    assert!(c
        .search_text("cherry apple", None, 10, None, quiver::With::NOTHING)
        .unwrap()
        .is_empty());
}

#[test]
fn text_and_phrase_filters_agree_with_and_without_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let texts = [
        "the disk is full: error E42",
        "Error E42 happened twice",
        "full disk, no error",
        "nothing to see here",
        "E42 error on the disk",
    ];
    let mut with = None;
    for indexed in [false, true] {
        let name = if indexed { "with" } else { "without" };
        let c = db.create_collection(name, CollectionConfig::new(2, Metric::Dot)).unwrap();
        if indexed {
            c.create_payload_index("document", PayloadIndexType::Text).unwrap();
        }
        c.upsert(
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| doc(i as u64, vec![1.0, i as f32], t))
                .collect(),
        )
        .unwrap();
        let mut answers = Vec::new();
        for f in [
            json!({"must": [{"key": "document", "match": {"text": "error e42"}}]}),
            json!({"must": [{"key": "document", "match": {"phrase": "error e42"}}]}),
            json!({"must": [{"key": "document", "match": {"phrase": "disk full"}}]}),
            json!({"must_not": [{"key": "document", "match": {"text": "disk"}}]}),
        ] {
            let f = Filter::from_json(&f).unwrap();
            let mut req = SearchRequest::new(vec![1.0, 0.0], 10);
            req.filter = Some(f.clone());
            let mut got = ids(&c.search(&req).unwrap());
            got.sort();
            assert_eq!(c.count(Some(&f)), got.len());
            answers.push(got);
        }
        assert_eq!(answers[0], vec![0, 1, 4]);
        assert_eq!(answers[1], vec![0, 1]);
        assert_eq!(answers[2], Vec::<u64>::new());
        assert_eq!(answers[3], vec![1, 3]);
        match &with {
            None => with = Some(answers),
            Some(a) => assert_eq!(a, &answers),
        }
    }
}

#[test]
fn reciprocal_rank_fusion_matches_hand_made_rankings() {
    let p = |n| PointId::Num(n);
    // Dense: 1, 2, 3; text: 3, 4, 1. With k = 60:
    // 1: 1/61 + 1/63, 3: 1/63 + 1/61, 2: 1/62, 4: 1/62. Ties keep first appearance.
    let fused = rrf(&[(1.0, vec![p(1), p(2), p(3)]), (1.0, vec![p(3), p(4), p(1)])], 60.0, 10);
    let order: Vec<PointId> = fused.iter().map(|(id, _)| *id).collect();
    assert_eq!(order, vec![p(1), p(3), p(2), p(4)]);
    assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-7);
    assert!((fused[2].1 - 1.0 / 62.0).abs() < 1e-7);
    // Weighted: text counts three times as much, so its first (3) and second (4) lead.
    let fused = rrf(&[(1.0, vec![p(1), p(2), p(3)]), (3.0, vec![p(3), p(4), p(1)])], 60.0, 2);
    assert_eq!(fused.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![p(3), p(1)]);
    let w = rrf(&[(1.0, vec![p(1), p(2)]), (3.0, vec![p(4)])], 60.0, 3);
    assert_eq!(w[0].0, p(4));
}

#[test]
fn hybrid_finds_the_exact_term_that_dense_search_misses() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("h", CollectionConfig::new(3, Metric::Cosine)).unwrap();
    c.create_payload_index("document", PayloadIndexType::Text).unwrap();
    // Ten documents near the query in vector space talk around the problem; the one that names
    // the error code is far away in vector space.
    let mut points: Vec<Point> = (0..10)
        .map(|i| doc(i, vec![1.0, 0.1 * i as f32, 0.0], "the service fails when the disk is full"))
        .collect();
    points.push(doc(99, vec![0.0, 0.0, 1.0], "runbook for ERR_QUOTA_7731: raise the quota"));
    c.upsert(points).unwrap();
    let mut req = SearchRequest::new(vec![1.0, 0.0, 0.0], 5);
    req.with_payload = false;
    let dense = ids(&c.search(&req).unwrap());
    assert!(!dense.contains(&99), "dense alone: {dense:?}");
    let hybrid = ids(&c.hybrid(&req, "what does ERR_QUOTA_7731 mean", &Fusion::default(), 20).unwrap());
    assert_eq!(hybrid.len(), 5);
    assert!(hybrid.contains(&99), "hybrid: {hybrid:?}");
    // A filter applies to both rankings.
    req.filter = Some(Filter::from_json(&json!({"must_not": [{"has_id": [99]}]})).unwrap());
    assert!(!ids(&c.hybrid(&req, "ERR_QUOTA_7731", &Fusion::default(), 20).unwrap()).contains(&99));
}

/// The full-text and sparse indexes over a compacted base are kept in its sidecar
/// (`<segment>.pidx`): the next open loads them instead of rebuilding (the file is left as it
/// is), and a damaged or missing sidecar is rebuilt from the payloads and vectors and written
/// again. BM25 and sparse answers are the live process's every time, the rows written after
/// the compaction included.
#[test]
fn text_and_sparse_indexes_are_kept_beside_the_base_and_rebuilt_when_damaged() {
    use quiver::vector_model::SparseParams;
    use quiver::{QueryVector, SparseVector, VectorData};
    let words = [
        "river", "stone", "maple", "harbor", "lantern", "quartz", "meadow", "falcon", "ember", "willow",
    ];
    let point = |i: u64| {
        let text: Vec<&str> = (0..5).map(|k| words[((i * 7 + k * k * 3 + i / 13) % 10) as usize]).collect();
        let indices: Vec<u32> = (0..4)
            .map(|k| ((i * 5 + k * 11) % 97) as u32)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let values = indices.iter().map(|&x| 0.5 + (x % 7) as f32 * 0.25).collect();
        doc(i, vec![(i % 10) as f32, 1.0], &text.join(" ")).with_named("s", VectorData::Sparse(SparseVector { indices, values }))
    };
    let text_queries = ["river stone", "lantern", "falcon ember willow", "nothing"];
    let sparse_queries: Vec<SparseVector> = (0..5u32)
        .map(|q| SparseVector {
            indices: vec![q * 3, q * 3 + 11, 50 + q],
            values: vec![1.0, 0.5, 2.0],
        })
        .collect();
    let answers = |c: &quiver::Collection| -> Vec<Vec<(u64, i64)>> {
        // Scores rounded: the same index gives the same floats; ids and order must agree.
        let round = |hits: Vec<quiver::ScoredPoint>| -> Vec<(u64, i64)> {
            ids(&hits)
                .into_iter()
                .zip(hits.iter().map(|h| (h.score * 1e4).round() as i64))
                .collect()
        };
        let mut out: Vec<_> = text_queries
            .iter()
            .map(|q| round(c.search_text(q, None, 20, None, quiver::With::NOTHING).unwrap()))
            .collect();
        for q in &sparse_queries {
            let mut req = SearchRequest::new(Vec::new(), 20);
            req.with_payload = false;
            out.push(round(c.search_named("s", &QueryVector::Sparse(q.clone()), &req).unwrap()));
        }
        out
    };
    let dir = tempfile::tempdir().unwrap();
    let live;
    {
        let db = Database::open(dir.path()).unwrap();
        let mut config = CollectionConfig::new(2, Metric::Dot);
        config.vectors.sparse = [("s".to_string(), SparseParams { idf: true })].into();
        let c = db.create_collection("t", config).unwrap();
        c.create_payload_index("document", PayloadIndexType::Text).unwrap();
        c.upsert((0..2000).map(point).collect()).unwrap();
        c.compact().unwrap();
        // Written after the compaction: the tail, over the kept indexes.
        c.upsert((0..200).map(|i| point(i * 9 + 5000)).collect()).unwrap();
        c.delete(&PointSelector::Ids((0..100).map(|i| PointId::Num(i * 3)).collect()))
            .unwrap();
        live = answers(&c);
        assert!(live.iter().filter(|a| !a.is_empty()).count() >= 7, "{live:?}");
    }
    let sidecar = std::fs::read_dir(dir.path().join("collections/t/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pidx"))
        .expect("compaction keeps the indexes beside its segment");
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&sidecar).unwrap());
    let reopen = || {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("t").unwrap();
        answers(&c)
    };
    let before = inode();
    assert_eq!(reopen(), live, "the kept indexes and the tail answer as the live process did");
    assert_eq!(inode(), before, "a whole sidecar is used as it is, not rebuilt");
    let mut bad = std::fs::read(&sidecar).unwrap();
    let at = bad.len() * 3 / 4;
    bad[at] ^= 0x10;
    std::fs::write(&sidecar, &bad).unwrap();
    assert_eq!(reopen(), live, "rebuilt from the payloads and vectors, the same answers");
    assert_ne!(std::fs::read(&sidecar).unwrap(), bad, "a damaged sidecar is rebuilt and rewritten");
    let rewritten = inode();
    assert_eq!(reopen(), live);
    assert_eq!(inode(), rewritten, "the rewritten sidecar is used as it is");
    std::fs::remove_file(&sidecar).unwrap();
    assert_eq!(reopen(), live);
    assert!(sidecar.exists(), "a missing sidecar is written again");
}
