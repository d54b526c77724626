//! A data folder written before named vectors existed (format 1, `tests/fixtures/format1`)
//! opens with today's library and answers exactly as the Quiver that wrote it did; writes of
//! the new kinds then land beside the old data and survive a reopen.

use quiver::vector_model::SparseParams;
use quiver::{Database, Filter, Point, PointId, QueryVector, SearchRequest, SparseVector, VectorData, With};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1")
}

fn expected(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join(name)).unwrap()).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn a_format_1_folder_answers_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("data"), tmp.path());
    let db = Database::open(tmp.path()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.len() as u64, num(&expected("exp_count.json")["count"]));
    assert!(c.config().vectors.is_plain());
    // Points read back bit for bit (the old binary printed each f32 widened to f64).
    let want = expected("exp_get.json");
    let ids: Vec<PointId> = [1u64, 2, 36, 44].into_iter().map(PointId::Num).collect();
    let got = c.get(&ids, With::ALL).unwrap();
    assert_eq!(got.len(), want.as_array().unwrap().len());
    for (g, w) in got.iter().zip(want.as_array().unwrap()) {
        assert_eq!(g.id, PointId::Num(num(&w["id"])));
        let wv: Vec<f32> = w["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert_eq!(g.vector.as_ref().unwrap(), &wv);
        assert_eq!(Value::Object(g.payload.clone().unwrap()), w["payload"]);
    }
    let q = vec![0.5, -0.2, 0.1, 0.9];
    for (file, filter) in [
        ("exp_search.json", None),
        (
            "exp_filtered.json",
            Some(Filter::from_json(&serde_json::json!({"must": [{"key": "color", "match": {"value": "red"}}]})).unwrap()),
        ),
    ] {
        let mut req = SearchRequest::new(q.clone(), 5);
        req.filter = filter;
        let hits = c.search(&req).unwrap();
        let want = expected(file);
        let want = want.as_array().unwrap();
        assert_eq!(hits.len(), want.len(), "{file}");
        for (h, w) in hits.iter().zip(want) {
            assert_eq!(h.id, PointId::Num(num(&w["id"])), "{file}");
            // The same ids in the same order; scores to the last few bits only: the distance
            // kernels sum in a different order on AVX2 and AVX-512 (each is checked against its
            // scalar twin), so the fixture's last digit depends on the CPU that wrote it.
            let want = w["score"].as_f64().unwrap() as f32;
            assert!(
                (h.score - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{file}: score {} against {want}",
                h.score
            );
        }
    }
}

/// The old collection keeps refusing vectors it does not declare and takes plain writes (and a
/// flush) as before; a collection of the new kinds lives beside it; both survive a reopen.
#[test]
fn a_format_1_folder_keeps_working_after_new_writes() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("data"), tmp.path());
    {
        let db = Database::open(tmp.path()).unwrap();
        let c = db.collection("docs").unwrap();
        let sparse_only = Point::new(100u64, vec![]).with_named(
            "s",
            VectorData::Sparse(SparseVector {
                indices: vec![1],
                values: vec![1.0],
            }),
        );
        assert!(c.upsert(vec![sparse_only]).is_err(), "the old collection declares no sparse vector");
        c.upsert(vec![Point::new(100u64, vec![1.0, 0.0, 0.0, 0.0])]).unwrap();
        c.flush().unwrap();
        // A new collection of the new kinds, beside the old one.
        let mut config = quiver::CollectionConfig::new(2, quiver::Metric::Dot);
        config.vectors.sparse.insert("s".into(), SparseParams { idf: false });
        let n = db.create_collection("named", config).unwrap();
        n.upsert(vec![Point::new(1u64, vec![]).with_named(
            "s",
            VectorData::Sparse(SparseVector {
                indices: vec![4],
                values: vec![2.0],
            }),
        )])
        .unwrap();
    }
    let db = Database::open(tmp.path()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.len(), 42);
    assert_eq!(
        quiver::inspect::manifest_segments(&tmp.path().join("collections/docs"))
            .unwrap()
            .len(),
        2
    );
    let n = db.collection("named").unwrap();
    let q = QueryVector::Sparse(SparseVector {
        indices: vec![4],
        values: vec![1.0],
    });
    let hits = n.search_named("s", &q, &SearchRequest::new(vec![], 3)).unwrap();
    assert_eq!((hits.len(), hits[0].score), (1, 2.0));
}
