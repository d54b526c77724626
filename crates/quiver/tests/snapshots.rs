//! Snapshots: a recovered collection reads back exactly as the original did when the snapshot
//! was taken (points, payloads, named / sparse / multi vectors, payload indexes, settings),
//! writes after the snapshot are not in it, and a truncated, altered or foreign archive is
//! refused with an error naming the file, leaving no collection behind.

use quiver::vector_model::{DenseParams, SparseParams};
use quiver::{
    CollectionConfig, CollectionSettings, Database, Metric, PayloadIndexType, Point, PointId, SearchRequest, SparseVector, StrictMode,
    VectorData, VectorSchema, With,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::path::Path;

fn config() -> CollectionConfig {
    let mut c = CollectionConfig::new(4, Metric::Cosine);
    c.vectors = VectorSchema {
        main: String::new(),
        dense: [
            (
                "img".to_string(),
                DenseParams {
                    dim: 3,
                    metric: Metric::Euclid,
                    multivector: false,
                },
            ),
            (
                "cols".to_string(),
                DenseParams {
                    dim: 2,
                    metric: Metric::Dot,
                    multivector: true,
                },
            ),
        ]
        .into(),
        sparse: [("words".to_string(), SparseParams { idf: true })].into(),
    };
    c
}

fn random_point(rng: &mut StdRng, id: u64) -> Point {
    let v = |rng: &mut StdRng, n: usize| (0..n).map(|_| rng.gen_range(-1.0..1.0f32)).collect::<Vec<f32>>();
    let mut p = Point::new(PointId::Num(id), if rng.gen_bool(0.8) { v(rng, 4) } else { Vec::new() });
    if rng.gen_bool(0.7) {
        p.vectors.insert("img".into(), VectorData::Dense(v(rng, 3)));
    }
    if rng.gen_bool(0.5) {
        let rows = rng.gen_range(1..4);
        p.vectors
            .insert("cols".into(), VectorData::Multi((0..rows).map(|_| v(rng, 2)).collect()));
    }
    if rng.gen_bool(0.6) || p.vector.is_empty() && p.vectors.is_empty() {
        let mut idx: Vec<u32> = (0..rng.gen_range(1..5)).map(|_| rng.gen_range(0..30)).collect();
        idx.sort_unstable();
        idx.dedup();
        let values = idx.iter().map(|_| rng.gen_range(0.1..2.0f32)).collect();
        p.vectors
            .insert("words".into(), VectorData::Sparse(SparseVector { indices: idx, values }));
    }
    let city = ["Berlin", "Rome", "Oslo"][rng.gen_range(0..3)];
    p.payload = Some(
        json!({"city": city, "n": rng.gen_range(0..100), "tags": ["a", "b"]})
            .as_object()
            .unwrap()
            .clone(),
    );
    p
}

/// Every point of a collection, in id order, as it reads back.
fn dump(db: &Database, name: &str) -> Vec<quiver::Record> {
    let c = db.collection(name).unwrap();
    let ids: Vec<PointId> = (0..400).map(PointId::Num).collect();
    c.get(&ids, With::ALL).unwrap()
}

fn new_db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    (dir, db)
}

#[test]
fn a_recovered_collection_is_the_collection_at_snapshot_time() {
    let (_dir, db) = new_db();
    let settings = CollectionSettings {
        strict_mode: Some(StrictMode {
            enabled: Some(true),
            max_query_limit: Some(50),
            ..StrictMode::default()
        }),
        ..CollectionSettings::default()
    };
    let c = db.create_collection_with("src", config(), &settings).unwrap();
    c.create_payload_index("city", PayloadIndexType::Keyword).unwrap();
    c.create_payload_index("n", PayloadIndexType::Integer).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    for batch in 0..6u64 {
        let points = (0..50).map(|i| random_point(&mut rng, batch * 50 + i)).collect();
        c.upsert(points).unwrap();
        if batch == 2 {
            c.flush().unwrap();
        }
    }
    c.delete(&quiver::PointSelector::Ids((0..40).map(PointId::Num).collect())).unwrap();
    let before = dump(&db, "src");
    let query = SearchRequest::new(vec![0.3, -0.2, 0.5, 0.1], 10);
    let hits_before = c.search(&query).unwrap();

    let snap = db.create_snapshot("src").unwrap();
    // Writes after the snapshot are not in it.
    c.upsert((300..320).map(|i| random_point(&mut rng, i)).collect()).unwrap();
    c.delete(&quiver::PointSelector::Ids((40..60).map(PointId::Num).collect())).unwrap();

    let file = db.snapshot_file("src", &snap.name).unwrap().expect("listed file");
    assert_eq!(db.list_snapshots("src").unwrap().len(), 1);
    let restored = db.recover_snapshot("copy", &file, snap.checksum.as_deref()).unwrap();
    assert_eq!(dump(&db, "copy"), before);
    assert_eq!(restored.search(&query).unwrap(), hits_before);
    let kinds: Vec<_> = restored.info().payload_indexes.iter().map(|(k, t, ..)| (k.clone(), *t)).collect();
    assert!(kinds.contains(&("city".to_string(), PayloadIndexType::Keyword)), "{kinds:?}");
    assert!(kinds.contains(&("n".to_string(), PayloadIndexType::Integer)), "{kinds:?}");
    assert_eq!(restored.settings(), settings);

    // Recovering over the original replaces it; the data survives a reopen.
    db.recover_snapshot("src", &file, None).unwrap();
    assert_eq!(dump(&db, "src"), before);
    drop(db);
    let db = Database::open(_dir.path()).unwrap();
    assert_eq!(dump(&db, "src"), before);
    assert_eq!(dump(&db, "copy"), before);
}

/// No collection and no staging folder are left behind.
fn assert_nothing_left(root: &Path, db: &Database, name: &str) {
    assert!(!db.has_collection(name));
    let leftovers: Vec<_> = std::fs::read_dir(root.join("collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(name))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn damaged_or_foreign_snapshots_are_refused_and_leave_nothing() {
    let (dir, db) = new_db();
    let c = db.create_collection("src", config()).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    c.upsert((0..100).map(|i| random_point(&mut rng, i)).collect()).unwrap();
    let snap = db.create_snapshot("src").unwrap();
    let file = db.snapshot_file("src", &snap.name).unwrap().unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let scratch = dir.path().join("snapshots").join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();

    // Truncated.
    let cut = scratch.join("cut.snapshot");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = db.recover_snapshot("r1", &cut, None).unwrap_err().to_string();
    assert!(e.contains("cut.snapshot"), "{e}");
    assert_nothing_left(dir.path(), &db, "r1");

    // Altered: the checksum says so first; without one the segment checks do.
    let mut altered = bytes.clone();
    let at = altered.len() / 3;
    altered[at] ^= 0x5a;
    let alt = scratch.join("altered.snapshot");
    std::fs::write(&alt, &altered).unwrap();
    let e = db.recover_snapshot("r2", &alt, snap.checksum.as_deref()).unwrap_err().to_string();
    assert!(e.contains("altered.snapshot") && e.contains("checksum mismatch"), "{e}");
    assert!(db.recover_snapshot("r2", &alt, None).is_err());
    assert_nothing_left(dir.path(), &db, "r2");

    // Foreign: a tar of something else.
    let foreign = scratch.join("foreign.snapshot");
    {
        let mut t = tar::Builder::new(std::fs::File::create(&foreign).unwrap());
        let data = b"not a collection";
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, "etc/passwd", &data[..]).unwrap();
        t.finish().unwrap();
    }
    let e = db.recover_snapshot("r3", &foreign, None).unwrap_err().to_string();
    assert!(e.contains("foreign.snapshot") && e.contains("not a collection file"), "{e}");
    assert_nothing_left(dir.path(), &db, "r3");

    // A missing file.
    let e = db
        .recover_snapshot("r4", &scratch.join("none.snapshot"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");

    // The original is untouched by all of this, and names outside the folder are refused.
    assert_eq!(db.collection("src").unwrap().len(), 100);
    assert!(db.snapshot_file("src", "../../MANIFEST").unwrap().is_none());
    assert!(!db.delete_snapshot("src", "/etc/passwd").unwrap());
}

#[test]
fn full_snapshots_hold_every_collection() {
    let (_dir, db) = new_db();
    let mut rng = StdRng::seed_from_u64(9);
    for name in ["a", "b"] {
        let c = db.create_collection(name, config()).unwrap();
        c.upsert((0..30).map(|i| random_point(&mut rng, i)).collect()).unwrap();
    }
    let full = db.create_full_snapshot().unwrap();
    assert_eq!(
        db.list_full_snapshots().unwrap().iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        vec![full.name.clone()]
    );
    let path = db.full_snapshot_file(&full.name).unwrap().unwrap();
    let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&path).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snapshot"))
        .collect();
    names.sort();
    assert_eq!(names, vec!["full/collections/a.snapshot", "full/collections/b.snapshot"]);
    assert!(db.delete_full_snapshot(&full.name).unwrap());
    assert!(db.list_full_snapshots().unwrap().is_empty());
}

/// A crash in the middle of a recovery's folder swap: after the old folder was moved aside but
/// before the recovered one was moved in, the next open brings the old collection back; after
/// both renames, it keeps the new one. A staging folder left behind is removed.
#[test]
fn an_interrupted_recovery_swap_is_undone_or_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let cdir = dir.path().join("collections");
    let mut rng = StdRng::seed_from_u64(3);
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config()).unwrap();
        c.upsert((0..20).map(|i| random_point(&mut rng, i)).collect()).unwrap();
        let d = db.create_collection("d", config()).unwrap();
        d.upsert((0..5).map(|i| random_point(&mut rng, i)).collect()).unwrap();
    }
    // Crashed between the renames: `c` was moved aside, the staging folder not yet moved in.
    std::fs::rename(cdir.join("c"), cdir.join(".replaced-c")).unwrap();
    std::fs::create_dir_all(cdir.join(".recover-c").join("segments")).unwrap();
    // Crashed after both renames: `d` is the recovered one, the old one still aside.
    std::fs::create_dir_all(cdir.join(".replaced-d")).unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 20);
    assert_eq!(db.collection("d").unwrap().len(), 5);
    let names: Vec<String> = std::fs::read_dir(&cdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}
