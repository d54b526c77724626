//! The library's search batcher: concurrent searches from many threads each get exactly their
//! own answer (the same as a direct search), a bad request or an unknown collection gets its own
//! error and spoils nothing else.

use quiver::{CollectionConfig, Database, Metric, Point, SearchBatcher, SearchRequest};
use std::sync::Arc;

#[test]
fn concurrent_searches_get_their_own_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(tmp.path()).unwrap());
    let c = db.create_collection("c", CollectionConfig::new(4, Metric::Euclid)).unwrap();
    c.upsert(
        (0..500u64)
            .map(|i| Point::new(i, vec![i as f32, (i % 7) as f32, 0.0, 1.0]))
            .collect(),
    )
    .unwrap();
    let batcher = Arc::new(SearchBatcher::start(db.clone()));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (batcher, c) = (batcher.clone(), c.clone());
            std::thread::spawn(move || {
                for q in 0..50u64 {
                    let v = vec![(t * 50 + q) as f32, 3.0, 0.0, 1.0];
                    let req = SearchRequest::new(v.clone(), 3);
                    let got = batcher.search("c", req.clone()).unwrap();
                    assert_eq!(got, c.search(&req).unwrap(), "thread {t} query {q}");
                    if q % 10 == 0 {
                        let bad = batcher.search("c", SearchRequest::new(vec![1.0], 3)).unwrap_err();
                        assert!(bad.to_string().contains("dimension"), "{bad}");
                        let missing = batcher.search("nope", SearchRequest::new(v, 3)).unwrap_err();
                        assert!(matches!(missing, quiver::Error::CollectionNotFound(_)), "{missing}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
