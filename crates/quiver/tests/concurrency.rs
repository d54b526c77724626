//! Readers and a writer at once: searches running during upserts and deletes never fail, never
//! return a deleted point after its delete was acknowledged, and always see every point whose
//! upsert was acknowledged before the search began.

use quiver::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[test]
fn searches_during_writes_see_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", CollectionConfig::new(4, Metric::Dot)).unwrap();
    c.create_payload_index("even", PayloadIndexType::Bool).unwrap();
    // Batch b holds ids b*10..b*10+10; after it, batch b-5 is deleted.
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let c = c.clone();
        let acked = acked.clone();
        std::thread::spawn(move || {
            for b in 1..=200u64 {
                let points = (0..10)
                    .map(|i| {
                        Point::new(b * 10 + i, vec![1.0, b as f32, i as f32, 0.0])
                            .with_payload(serde_json::json!({"even": b % 2 == 0}).as_object().unwrap().clone())
                    })
                    .collect();
                c.upsert(points).unwrap();
                if b > 5 {
                    c.delete(&PointSelector::Ids(((b - 5) * 10..(b - 5) * 10 + 10).map(PointId::Num).collect()))
                        .unwrap();
                }
                acked.store(b, Ordering::SeqCst);
            }
        })
    };
    let mut checks = 0;
    while acked.load(Ordering::SeqCst) < 200 {
        let b = acked.load(Ordering::SeqCst);
        if b < 6 {
            std::thread::yield_now();
            continue;
        }
        // Everything of batches b-4..=b was acknowledged and not yet deleted when we read `b`;
        // batches up to b-5 were deleted. Later writes may add or remove more, but only
        // batches after b-5 can be deleted next, and those hold ids above (b-4)*10.
        let ids: Vec<PointId> = ((b - 4) * 10..(b + 1) * 10).map(PointId::Num).collect();
        let got = c.get(&ids, quiver::With::NOTHING).unwrap();
        let present: std::collections::BTreeSet<PointId> = got.iter().map(|r| r.id).collect();
        let hits = c.search(&SearchRequest::new(vec![0.0, -1.0, 0.0, 0.0], 10)).unwrap();
        for h in &hits {
            if let PointId::Num(n) = h.id {
                assert!(n >= (b - 4) * 10, "search returned {n}, deleted before batch {b} was acknowledged");
            }
        }
        let mut req = SearchRequest::new(vec![1.0, 0.0, 0.0, 0.0], 100);
        req.filter = Some(Filter::parse(r#"{"must": [{"key": "even", "match": {"value": true}}]}"#).unwrap());
        for h in c.search(&req).unwrap() {
            let n = match h.id {
                PointId::Num(n) => n,
                PointId::Uuid(_) => unreachable!(),
            };
            assert_eq!((n / 10) % 2, 0, "filter returned a point of an odd batch");
        }
        // Points of the newest acknowledged batch cannot have been deleted while `get` ran,
        // unless the writer got as far as deleting them (its iteration b + 5, which begins only
        // after b + 4 is acknowledged): a reader that was descheduled for that long checks
        // nothing here (reading `acked` after `get` tells).
        let after = acked.load(Ordering::SeqCst);
        if after <= b + 3 {
            for id in (b * 10..b * 10 + 10).map(PointId::Num) {
                assert!(present.contains(&id), "acknowledged point {id} missing");
            }
            checks += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(c.count(None), 50);
    eprintln!("{checks} concurrent checks");
    assert!(checks > 0, "the reader never overlapped the writer closely enough to check");
}

/// Dropping a collection while a handle is still held and its index builds in the background:
/// the old handle's writes fail with `CollectionNotFound`, and nothing of the old collection (no
/// point, no index file) turns up in a new collection of the same name.
#[test]
fn a_dropped_collection_cannot_write_into_its_successor() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut config = CollectionConfig::new(16, Metric::Dot);
    config.index.full_scan_threshold = 1000;
    let old = db.create_collection("c", config.clone()).unwrap();
    let points: Vec<Point> = (0..20_000u64)
        .map(|i| Point::new(i, (0..16).map(|j| ((i * 31 + j * 7) % 97) as f32 / 97.0).collect()))
        .collect();
    // This upsert starts a background build; the drop lands during it or after it.
    old.upsert(points).unwrap();
    db.drop_collection("c").unwrap();
    let new = db.create_collection("c", config).unwrap();
    let err = old.upsert(vec![Point::new(1u64, vec![0.5; 16])]).unwrap_err();
    assert!(matches!(err, Error::CollectionNotFound(_)), "{err:?}");
    assert!(old.flush().is_err() && old.compact().is_err());
    old.wait_for_index();
    assert_eq!(new.len(), 0);
    assert!(
        !dir.path().join("collections/c/index.hnsw").exists(),
        "the old build wrote into the new folder"
    );
    drop(old);
    drop(new);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 0);
}
