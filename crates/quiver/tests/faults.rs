//! Disk errors at every step of a flush, a compaction and an index save, injected without a
//! full disk (quiver-storage's `fault-injection` feature: the n-th file-system step of this
//! thread fails). For each step in turn: the operation reports the error (never a panic),
//! writes go on, no segment file is left that the manifest does not name, the failure is
//! reported by `info` also from a new process until a flush succeeds, and after reopening every
//! acknowledged point is there with its vector and payload (compared with a model).

use quiver::{CollectionConfig, Database, IndexConfig, Metric, Point, PointId, PointSelector, Quantization, SearchRequest};
use quiver_storage::fault;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

const DIM: usize = 4;

type Model = BTreeMap<u64, (Vec<f32>, i64)>;

fn config() -> CollectionConfig {
    let mut c = CollectionConfig::new(DIM, Metric::Euclid);
    c.index = IndexConfig {
        full_scan_threshold: 1_000_000,
        quantization: Quantization::Int8,
        m: 8,
        ef_construct: 32,
        ..IndexConfig::default()
    };
    c
}

fn point(id: u64, round: i64) -> Point {
    let v: Vec<f32> = (0..DIM).map(|d| ((id * 7 + d as u64) % 13) as f32 + round as f32 * 0.5).collect();
    Point::new(id, v).with_payload(json!({"round": round}).as_object().unwrap().clone())
}

/// Writes `points` and records them in the model when acknowledged.
fn write(c: &quiver::Collection, model: &mut Model, ids: impl Iterator<Item = u64>, round: i64) {
    let points: Vec<Point> = ids.map(|id| point(id, round)).collect();
    let acked: Vec<(u64, Vec<f32>)> = points
        .iter()
        .map(|p| match p.id {
            PointId::Num(n) => (n, p.vector.clone()),
            _ => unreachable!(),
        })
        .collect();
    if c.upsert(points).is_ok() {
        for (id, v) in acked {
            model.insert(id, (v, round));
        }
    }
}

fn check_against_model(c: &quiver::Collection, model: &Model, what: &str) {
    assert_eq!(c.len(), model.len(), "{what}: point count");
    let ids: Vec<PointId> = model.keys().map(|&id| PointId::Num(id)).collect();
    let got = c.get(&ids, quiver::With::ALL).unwrap();
    assert_eq!(got.len(), model.len(), "{what}");
    for r in got {
        let PointId::Num(id) = r.id else { unreachable!() };
        let (v, round) = &model[&id];
        assert_eq!(r.vector.as_ref(), Some(v), "{what}: vector of {id}");
        assert_eq!(r.payload.as_ref().unwrap()["round"], json!(round), "{what}: payload of {id}");
    }
    // Searches agree with the model too (exact, the index is a cache).
    let (&id, (v, _)) = model.iter().next().unwrap();
    let hits = c.search(&SearchRequest::new(v.clone(), 1)).unwrap();
    assert_eq!(hits[0].score, 0.0, "{what}: point {id} finds itself");
}

/// No segment file is left that is newer than what the manifest on disk names (a partial or
/// uncommitted new segment). Older ones may stay after a failed compaction: if the manifest's
/// rename is not durable yet they are still needed; the next open removes them.
fn no_stray_segments(dir: &Path, what: &str) {
    let mdir = dir.join("collections/f");
    let segments = quiver::inspect::manifest_segments(&mdir).unwrap();
    for e in std::fs::read_dir(mdir.join("segments")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let no: u64 = name.trim_end_matches(".seg").parse().unwrap_or(u64::MAX);
        let newest = segments.iter().copied().max().unwrap_or(0);
        assert!(
            segments.contains(&no) || no < newest,
            "{what}: segment file {name} is not in the manifest {:?}",
            segments
        );
    }
}

/// Runs `op` with the n-th file-system step failing, for n = 0, 1, ... until it runs clean.
fn every_step(name: &str, reports_flush_error: bool, op: impl Fn(&quiver::Collection) -> quiver::Result<()>) {
    for n in 0u64.. {
        let tmp = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        let failed = {
            let db = Database::open(tmp.path()).unwrap();
            let c = db.create_collection("f", config()).unwrap();
            write(&c, &mut model, 0..300, 0);
            c.flush().unwrap();
            write(&c, &mut model, 200..400, 1);
            c.delete(&PointSelector::Ids(vec![PointId::Num(5), PointId::Num(250)])).unwrap();
            model.remove(&5);
            model.remove(&250);
            fault::fail_after(n);
            let r = op(&c);
            let (_, failed) = fault::disarm();
            let what = format!("{name}, step {n} failing ({failed:?})");
            match failed {
                None => {
                    r.unwrap_or_else(|e| panic!("{name} without a fault: {e}"));
                }
                Some(_) => {
                    let e = r.expect_err(&what);
                    assert!(e.to_string().contains("injected"), "{what}: {e}");
                    if reports_flush_error {
                        assert!(c.info().flush_error.is_some(), "{what}: info reports the failure");
                    }
                }
            }
            no_stray_segments(tmp.path(), &what);
            // Writing goes on after the failure.
            write(&c, &mut model, 390..420, 2);
            check_against_model(&c, &model, &what);
            failed
        };
        let what = format!("{name}, step {n} failing ({failed:?}), reopened");
        let db = Database::open(tmp.path()).unwrap();
        let c = db.collection("f").unwrap();
        check_against_model(&c, &model, &what);
        if failed.is_some() && reports_flush_error {
            assert!(c.info().flush_error.is_some(), "{what}: a new process reports the failure too");
        }
        c.flush().unwrap();
        assert_eq!(c.info().flush_error, None, "{what}: a good flush clears the report");
        assert!(!tmp.path().join("collections/f/FLUSH_ERROR").exists(), "{what}");
        drop(c);
        drop(db);
        let c = Database::open(tmp.path()).unwrap().collection("f").unwrap();
        check_against_model(&c, &model, &what);
        // After a good flush and an open, every segment file is named.
        let segments = quiver::inspect::manifest_segments(&tmp.path().join("collections/f")).unwrap();
        assert_eq!(
            std::fs::read_dir(tmp.path().join("collections/f/segments")).unwrap().count(),
            segments.len(),
            "{what}"
        );
        if failed.is_none() {
            eprintln!("{name}: {n} steps, each failing in turn");
            return;
        }
    }
}

#[test]
fn disk_errors_at_every_step_of_a_flush() {
    every_step("flush", true, |c| c.flush());
}

#[test]
fn disk_errors_at_every_step_of_a_compaction() {
    every_step("compact", true, |c| c.compact());
}

#[test]
fn disk_errors_at_every_step_of_an_index_save() {
    every_step("index save", false, |c| c.build_index());
}

/// A disk that stays full: flushes keep failing, the log grows to `WAL_BYTES_MAX`, then writes
/// are refused with a clear error instead of growing it further; once the disk has room again
/// the next write flushes and succeeds, and nothing acknowledged is lost.
#[test]
fn a_wal_that_cannot_flush_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let dim = 256;
    let mut config = CollectionConfig::new(dim, Metric::Dot);
    config.index.enabled = false;
    config.durability = quiver::Durability::Periodic { interval_ms: 1000 };
    let db = Database::open(tmp.path()).unwrap();
    let c = db.create_collection("f", config).unwrap();
    // Batches under the direct-to-segment size, so they go through the log.
    let batch = |b: u64| -> Vec<Point> { (0..10_000u64).map(|i| Point::new(b * 10_000 + i, vec![b as f32; dim])).collect() };
    fault::fail_always();
    let mut acked = 0u64;
    let refused = loop {
        match c.upsert(batch(acked)) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 40, "the log was never bounded");
    };
    fault::disarm();
    assert!(matches!(refused, quiver::Error::WalFull { .. }), "{refused}");
    assert!(refused.to_string().contains("free disk space"), "{refused}");
    let info = c.info();
    assert!(info.wal_bytes >= quiver::collection::WAL_BYTES_MAX, "{}", info.wal_bytes);
    assert!(
        info.wal_bytes < quiver::collection::WAL_BYTES_MAX + (16 << 20),
        "{}",
        info.wal_bytes
    );
    assert!(info.flush_error.is_some());
    // Room again: the next write flushes first, then succeeds.
    c.upsert(batch(acked)).unwrap();
    acked += 1;
    assert_eq!(c.info().flush_error, None);
    assert!(c.info().wal_bytes < quiver::collection::WAL_FLUSH_BYTES);
    drop(c);
    drop(db);
    let c = Database::open(tmp.path()).unwrap().collection("f").unwrap();
    assert_eq!(c.len() as u64, acked * 10_000);
}
