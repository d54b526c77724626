//! Torn and corrupted files at the collection level: opening either recovers the acknowledged
//! state or returns a typed storage error naming the file; never a panic, never wrong results.

use quiver::*;
use serde_json::json;
use std::path::{Path, PathBuf};

const DIM: usize = 4;

fn batch(b: u64) -> Vec<Point> {
    (0..5)
        .map(|i| Point::new(b * 100 + i, vec![b as f32, i as f32, 1.0, -1.0]).with_payload(json!({"b": b}).as_object().unwrap().clone()))
        .collect()
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == ext)).collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The batches present, each checked to be whole.
fn batches_present(db: &Database) -> Vec<u64> {
    let c = db.collection("c").unwrap();
    let page = c
        .scroll(&ScrollRequest {
            offset: None,
            limit: 10_000,
            filter: None,
            with_payload: true,
            with_vector: true,
        })
        .unwrap();
    let mut by_batch = std::collections::BTreeMap::<u64, usize>::new();
    for r in &page.points {
        let b = r.payload.as_ref().unwrap()["b"].as_u64().unwrap();
        let want = batch(b).into_iter().find(|p| p.id == r.id).unwrap();
        assert_eq!(r.vector.as_ref().unwrap(), &want.vector);
        *by_batch.entry(b).or_default() += 1;
    }
    assert!(by_batch.values().all(|&n| n == 5), "a batch is present in part: {by_batch:?}");
    by_batch.into_keys().collect()
}

/// Writes batches 0..4 to the WAL (after flushing batches 0..1 into a segment), returning the
/// WAL size before the last batch.
fn build(dir: &Path) -> u64 {
    let db = Database::open(dir).unwrap();
    let c = db.create_collection("c", CollectionConfig::new(DIM, Metric::Euclid)).unwrap();
    c.upsert(batch(0)).unwrap();
    c.upsert(batch(1)).unwrap();
    c.flush().unwrap();
    c.upsert(batch(2)).unwrap();
    c.upsert(batch(3)).unwrap();
    let before = c.info().wal_bytes;
    c.upsert(batch(4)).unwrap();
    before
}

fn copy_dir(from: &Path, to: &Path) {
    for p in walk(from) {
        let rel = p.strip_prefix(from).unwrap();
        if rel == Path::new("LOCK") {
            continue;
        }
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&p, &dest).unwrap();
    }
    std::fs::create_dir_all(to.join("collections/c/segments")).unwrap();
    std::fs::create_dir_all(to.join("collections/c/wal")).unwrap();
}

#[test]
fn wal_truncated_at_every_offset_of_its_last_record() {
    let src = tempfile::tempdir().unwrap();
    let before = build(src.path());
    let wal = files_with_ext(src.path(), "wal").pop().unwrap();
    let full = std::fs::metadata(&wal).unwrap().len();
    for cut in before..full {
        let dst = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dst.path());
        let wal_copy = dst.path().join(wal.strip_prefix(src.path()).unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&wal_copy)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let db = Database::open(dst.path()).unwrap();
        assert_eq!(batches_present(&db), vec![0, 1, 2, 3], "cut at {cut}");
        // The recovered log takes new writes on a clean boundary.
        db.collection("c").unwrap().upsert(batch(9)).unwrap();
        drop(db);
        let db = Database::open(dst.path()).unwrap();
        assert_eq!(batches_present(&db), vec![0, 1, 2, 3, 9], "after cut at {cut} and a new write");
    }
}

#[test]
fn flipped_bytes_in_segment_and_manifest_are_reported_with_the_file() {
    let src = tempfile::tempdir().unwrap();
    build(src.path());
    let targets = [
        files_with_ext(src.path(), "seg").pop().unwrap(),
        src.path().join("collections/c/MANIFEST"),
    ];
    for target in targets {
        let len = std::fs::metadata(&target).unwrap().len() as usize;
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        for i in (0..len).step_by(3) {
            let dst = tempfile::tempdir().unwrap();
            copy_dir(src.path(), dst.path());
            let copy = dst.path().join(target.strip_prefix(src.path()).unwrap());
            let mut bytes = std::fs::read(&copy).unwrap();
            bytes[i] ^= 0x01;
            std::fs::write(&copy, &bytes).unwrap();
            let db = Database::open(dst.path()).unwrap();
            match db.collection("c") {
                Ok(_) => panic!("flip at byte {i} of {name} went unnoticed"),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
                    assert!(e.to_string().contains(&name), "error does not name {name}: {e}");
                }
            }
        }
    }
}

#[test]
fn flipped_bytes_in_the_wal_never_give_wrong_results() {
    let src = tempfile::tempdir().unwrap();
    build(src.path());
    let wal = files_with_ext(src.path(), "wal").pop().unwrap();
    let len = std::fs::metadata(&wal).unwrap().len() as usize;
    let mut reported = 0;
    for i in 0..len {
        let dst = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dst.path());
        let copy = dst.path().join(wal.strip_prefix(src.path()).unwrap());
        let mut bytes = std::fs::read(&copy).unwrap();
        bytes[i] ^= 0x20;
        std::fs::write(&copy, &bytes).unwrap();
        let db = Database::open(dst.path()).unwrap();
        match db.collection("c") {
            // A flip in the last record reads as a torn write of that record: the state is the
            // one before it, never anything else.
            Ok(_) => assert_eq!(batches_present(&db), vec![0, 1, 2, 3], "flip at {i}"),
            Err(e) => {
                reported += 1;
                assert!(e.to_string().contains(".wal") || e.to_string().contains("wal"), "{e}");
            }
        }
    }
    assert!(reported > 0);
}

/// A collection with its vectors on disk reads its base segment's vectors in place and checks
/// them after opening, not before: a flipped vector byte lets the open succeed, is found by the
/// check (the one the background runs), named with the file, and reported by `info`; opened
/// with its vectors in memory, the same file is refused at once.
#[test]
fn damaged_vectors_read_in_place_are_found_by_the_check_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = CollectionSettings::default();
    settings.merge_hint("vectors.", &serde_json::Map::from_iter([("on_disk".to_string(), json!(true))]));
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection_with("c", CollectionConfig::new(DIM, Metric::Euclid), &settings)
            .unwrap();
        c.upsert(batch(7)).unwrap();
        c.compact().unwrap();
        c.verify_data().unwrap();
        assert_eq!(c.info().damage, None);
    }
    let seg = files_with_ext(dir.path(), "seg").pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // Point 702's vector is [7, 2, 1, -1]: flip a bit of its `2.0`.
    let row: Vec<u8> = [7.0f32, 2.0, 1.0, -1.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let at = bytes.windows(row.len()).position(|w| w == row).expect("the vector is in the file");
    bytes[at + 6] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    let err = c.verify_data().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.to_string().contains(&name), "{err}");
    assert!(c.info().damage.is_some_and(|d| d.contains(&name)));
    drop(c);
    c_in_memory_is_refused(&db, &name);
}

fn c_in_memory_is_refused(db: &Database, name: &str) {
    let c = db.collection("c").unwrap();
    c.update_settings(|s| {
        s.hints.remove("vectors.");
        Ok(())
    })
    .unwrap();
    drop(c);
    match db.reopen_collection("c") {
        Ok(_) => panic!("damaged vectors copied into memory went unnoticed"),
        Err(e) => assert!(e.to_string().contains(name), "{e}"),
    }
}
