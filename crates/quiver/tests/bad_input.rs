//! Bad input gets a clear, typed error, never a panic, and the data already stored stays intact
//! and searchable.

use quiver::*;
use serde_json::json;

#[track_caller]
fn check_bad<T: std::fmt::Debug>(r: Result<T>, kind: ErrorKind, needle: &str) {
    let e = r.expect_err("bad input must be refused");
    assert_eq!(e.kind(), kind, "{e}");
    assert!(e.to_string().contains(needle), "error {e:?} should mention {needle:?}");
}

#[test]
fn bad_input_is_refused_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    for name in ["", "a/b", "..", ".hidden", "tab\there", "nul\0", "x".repeat(200).as_str(), "sp ace"] {
        check_bad(
            db.create_collection(name, CollectionConfig::new(3, Metric::Cosine)),
            ErrorKind::BadInput,
            "invalid collection name",
        );
    }
    check_bad(
        db.create_collection("d0", CollectionConfig::new(0, Metric::Cosine)),
        ErrorKind::BadInput,
        "dimension",
    );
    check_bad(
        db.create_collection("d1", CollectionConfig::new(65_537, Metric::Cosine)),
        ErrorKind::BadInput,
        "dimension",
    );
    check_bad(db.collection("nope"), ErrorKind::NotFound, "not found");
    check_bad(db.drop_collection("nope"), ErrorKind::NotFound, "not found");

    let c = db.create_collection("c", CollectionConfig::new(3, Metric::Euclid)).unwrap();
    check_bad(
        db.create_collection("c", CollectionConfig::new(3, Metric::Euclid)),
        ErrorKind::Conflict,
        "already exists",
    );
    let good: Vec<Point> = (0..10u64)
        .map(|i| Point::new(i, vec![i as f32, 0.0, 1.0]).with_payload(json!({"i": i}).as_object().unwrap().clone()))
        .collect();
    c.upsert(good).unwrap();
    let before = c.search(&SearchRequest::new(vec![3.0, 0.0, 1.0], 4)).unwrap();

    check_bad(
        c.upsert(vec![Point::new(1u64, vec![1.0, 2.0])]),
        ErrorKind::BadInput,
        "expected dim: 3, got 2",
    );
    check_bad(
        c.upsert(vec![Point::new(2u64, vec![1.0, f32::NAN, 0.0])]),
        ErrorKind::BadInput,
        "NaN",
    );
    check_bad(
        c.upsert(vec![Point::new(3u64, vec![f32::INFINITY, 1.0, 0.0])]),
        ErrorKind::BadInput,
        "infinity",
    );
    // One bad point spoils the whole batch: nothing of it is stored.
    check_bad(
        c.upsert(vec![Point::new(100u64, vec![1.0, 1.0, 1.0]), Point::new(101u64, vec![1.0, 1.0])]),
        ErrorKind::BadInput,
        "point 101",
    );
    check_bad(c.upsert(vec![]), ErrorKind::BadInput, "empty batch");
    let big = vec![Point::new(0u64, vec![0.0; 3]); BATCH_POINTS_MAX + 1];
    check_bad(c.upsert(big), ErrorKind::BadInput, "exceeds the limit");
    let huge = json!({"s": "x".repeat(PAYLOAD_BYTES_MAX)}).as_object().unwrap().clone();
    check_bad(
        c.upsert(vec![Point::new(5u64, vec![0.0; 3]).with_payload(huge.clone())]),
        ErrorKind::BadInput,
        "payload",
    );
    check_bad(
        c.set_payload(&PointSelector::Ids(vec![PointId::Num(1)]), huge),
        ErrorKind::BadInput,
        "payload",
    );
    check_bad(
        c.search(&SearchRequest::new(vec![1.0], 3)),
        ErrorKind::BadInput,
        "expected dim: 3, got 1",
    );
    check_bad(
        c.search(&SearchRequest::new(vec![1.0, 0.0, f32::NAN], 3)),
        ErrorKind::BadInput,
        "NaN",
    );
    check_bad(c.search(&SearchRequest::new(vec![1.0, 0.0, 0.0], 0)), ErrorKind::BadInput, "limit");
    check_bad(
        c.search(&SearchRequest::new(vec![1.0, 0.0, 0.0], SEARCH_LIMIT_MAX + 1)),
        ErrorKind::BadInput,
        "limit",
    );
    check_bad(Filter::parse("{not json"), ErrorKind::BadInput, "invalid filter");
    check_bad("-5".parse::<PointId>(), ErrorKind::BadInput, "invalid point id");
    check_bad(PointId::from_json(&json!(1.5)), ErrorKind::BadInput, "invalid point id");
    check_bad(PointId::from_json(&json!("not-a-uuid")), ErrorKind::BadInput, "invalid point id");
    check_bad(
        c.create_payload_index("a..b", PayloadIndexType::Keyword),
        ErrorKind::BadInput,
        "key",
    );
    check_bad(c.drop_payload_index("nothing"), ErrorKind::NotFound, "not found");

    assert_eq!(c.count(None), 10);
    assert_eq!(c.search(&SearchRequest::new(vec![3.0, 0.0, 1.0], 4)).unwrap(), before);
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(None), 10);
    assert_eq!(c.search(&SearchRequest::new(vec![3.0, 0.0, 1.0], 4)).unwrap(), before);
}

#[test]
fn scores_threshold_offset_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let e = db.create_collection("e", CollectionConfig::new(2, Metric::Euclid)).unwrap();
    e.upsert((0..5u64).map(|i| Point::new(i, vec![i as f32, 0.0])).collect()).unwrap();
    let mut req = SearchRequest::new(vec![0.0, 0.0], 3);
    let hits = e.search(&req).unwrap();
    assert_eq!(
        hits.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
        vec![(PointId::Num(0), 0.0), (PointId::Num(1), 1.0), (PointId::Num(2), 2.0)]
    );
    req.offset = 1;
    req.score_threshold = Some(1.5);
    let hits = e.search(&req).unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![PointId::Num(1)]);

    let c = db.create_collection("cos", CollectionConfig::new(2, Metric::Cosine)).unwrap();
    c.upsert(vec![Point::new(1u64, vec![3.0, 4.0]), Point::new(2u64, vec![0.0, -2.0])])
        .unwrap();
    let mut req = SearchRequest::new(vec![6.0, 8.0], 2);
    req.with_vector = true;
    let hits = c.search(&req).unwrap();
    assert!((hits[0].score - 1.0).abs() < 1e-6);
    assert_eq!(hits[0].vector.as_deref(), Some(&[0.6f32, 0.8][..]));
    assert!((hits[1].score + 0.8).abs() < 1e-6);

    let m = db.create_collection("man", CollectionConfig::new(2, Metric::Manhattan)).unwrap();
    m.upsert(vec![Point::new(1u64, vec![1.0, 1.0]), Point::new(2u64, vec![-3.0, 0.5])])
        .unwrap();
    let hits = m.search(&SearchRequest::new(vec![0.0, 0.0], 2)).unwrap();
    assert_eq!(
        hits.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
        vec![(PointId::Num(1), 2.0), (PointId::Num(2), 3.5)]
    );

    // Batched search equals one-at-a-time search.
    let reqs: Vec<SearchRequest> = (0..5).map(|i| SearchRequest::new(vec![i as f32 * 0.7, 0.3], 3)).collect();
    let batch = e.search_batch(&reqs).unwrap();
    for (r, b) in reqs.iter().zip(&batch) {
        let one = e.search(r).unwrap();
        assert_eq!(
            one.iter().map(|h| h.id).collect::<Vec<_>>(),
            b.iter().map(|h| h.id).collect::<Vec<_>>()
        );
    }
    assert_eq!(db.list_collections().unwrap(), vec!["cos", "e", "man"]);
    db.drop_collection("man").unwrap();
    assert_eq!(db.list_collections().unwrap(), vec!["cos", "e"]);
}
