//! Vectors kept on disk (`vectors.on_disk`) against the same collection in memory: the same
//! random writes (upserts, overwrites, deletes, payloads) go to both, and at every stage (live,
//! after compaction, after reopening, with the graph built, after moving between placements)
//! every point reads back equal and exact searches answer identically; graph searches answer
//! as well as exact ones. Seeds are fixed.

use quiver::{CollectionConfig, CollectionSettings, Database, Metric, Point, PointId, PointSelector, SearchRequest};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map};

const DIM: usize = 32;

fn on_disk_settings() -> CollectionSettings {
    let mut s = CollectionSettings::default();
    s.merge_hint("vectors.", &Map::from_iter([("on_disk".to_string(), json!(true))]));
    s
}

fn random_point(rng: &mut ChaCha8Rng, id: u64) -> Point {
    let centre = (id % 17) as f32;
    let v: Vec<f32> = (0..DIM)
        .map(|d| centre * ((d % 3) as f32 - 1.0) + rng.gen_range(-1.0f32..1.0))
        .collect();
    let mut p = Point::new(PointId::Num(id), v);
    if id.is_multiple_of(3) {
        p.payload = Some(Map::from_iter([("group".to_string(), json!(id % 5))]));
    }
    p
}

/// Applies the same writes to every collection in `cs`.
fn write_both(cs: &[&quiver::Collection], rng: &mut ChaCha8Rng, rounds: usize) {
    for _ in 0..rounds {
        match rng.gen_range(0..10) {
            0..=6 => {
                let n = rng.gen_range(1..3_000);
                let pts: Vec<Point> = (0..n)
                    .map(|_| {
                        let id = rng.gen_range(0..30_000u64);
                        random_point(rng, id)
                    })
                    .collect();
                for c in cs {
                    c.upsert(pts.clone()).unwrap();
                }
            }
            _ => {
                let ids: Vec<PointId> = (0..rng.gen_range(1..500)).map(|_| PointId::Num(rng.gen_range(0..30_000))).collect();
                for c in cs {
                    c.delete(&PointSelector::Ids(ids.clone())).unwrap();
                }
            }
        }
    }
}

fn assert_same(disk: &quiver::Collection, mem: &quiver::Collection, stage: &str) {
    assert_eq!(disk.len(), mem.len(), "{stage}: point counts");
    let ids: Vec<PointId> = (0..30_000u64).map(PointId::Num).collect();
    let a = disk.get(&ids, quiver::With::ALL).unwrap();
    let b = mem.get(&ids, quiver::With::ALL).unwrap();
    assert_eq!(a, b, "{stage}: points read back differently");
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for _ in 0..20 {
        let id = rng.gen_range(0..30_000);
        let q = random_point(&mut rng, id).vector;
        let mut req = SearchRequest::new(q.clone(), 10);
        req.exact = true;
        let ea = disk.search(&req).unwrap();
        let eb = mem.search(&req).unwrap();
        assert_eq!(ea, eb, "{stage}: exact searches differ");
        // Through the graph (when built): as good as exact.
        let ga = disk.search(&SearchRequest::new(q, 10)).unwrap();
        let hits = ga.iter().filter(|h| ea.iter().any(|e| e.id == h.id)).count();
        assert!(hits >= 7, "{stage}: graph search found {hits} of the exact top 10");
    }
}

#[test]
fn vectors_on_disk_answer_exactly_as_vectors_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let config = CollectionConfig::new(DIM, Metric::Cosine);
    let disk = db.create_collection_with("disk", config.clone(), &on_disk_settings()).unwrap();
    let mem = db.create_collection("mem", config).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);

    write_both(&[&disk, &mem], &mut rng, 40);
    let f = disk.footprint();
    assert!(f.vectors_on_disk && f.vectors_fallback.is_none(), "{f:?}");
    let v = f.get("vectors").unwrap();
    assert!(v.disk >= (disk.len() * DIM * 4) as u64, "the scratch file holds every row: {f:?}");
    let m = mem.footprint();
    assert!(!m.vectors_on_disk && m.get("vectors").unwrap().disk == 0, "{m:?}");
    assert!(m.get("vectors").unwrap().memory >= (mem.len() * DIM * 4) as u64, "{m:?}");
    assert_same(&disk, &mem, "live");

    disk.compact().unwrap();
    mem.compact().unwrap();
    assert_same(&disk, &mem, "compacted");

    disk.build_index().unwrap();
    write_both(&[&disk, &mem], &mut rng, 10);
    assert_same(&disk, &mem, "graph and tail");

    // Reopened in a new process's way: the vectors come back from the segments and the WAL.
    drop((disk, mem));
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let disk = db.collection("disk").unwrap();
    let mem = db.collection("mem").unwrap();
    assert!(disk.footprint().vectors_on_disk);
    assert_same(&disk, &mem, "reopened");

    // Nothing named is left beside the data: the scratch file has no name.
    let names: Vec<String> = std::fs::read_dir(dir.path().join("collections/disk"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "{names:?}");

    // Moving the vectors into memory and back keeps every answer.
    disk.update_settings(|s| {
        s.hints.remove("vectors.");
        Ok(())
    })
    .unwrap();
    let disk = db.reopen_collection("disk").unwrap();
    assert!(!disk.footprint().vectors_on_disk);
    assert_same(&disk, &mem, "moved to memory");
    disk.update_settings(|s| {
        *s = on_disk_settings();
        Ok(())
    })
    .unwrap();
    let disk = db.reopen_collection("disk").unwrap();
    assert!(disk.footprint().vectors_on_disk);
    write_both(&[&disk, &mem], &mut rng, 5);
    assert_same(&disk, &mem, "moved back to disk");
}

#[test]
fn the_footprint_counts_every_component() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection_with("c", CollectionConfig::new(DIM, Metric::Dot), &on_disk_settings())
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let pts: Vec<Point> = (0..20_000).map(|i| random_point(&mut rng, i)).collect();
    c.upsert(pts).unwrap();
    c.create_payload_index("group", quiver::PayloadIndexType::Integer).unwrap();
    c.build_index().unwrap();
    c.compact().unwrap();
    let f = c.footprint();
    for name in ["vectors", "codes", "graph", "payload_indexes"] {
        assert!(f.get(name).unwrap().memory > 0, "{name} in memory: {f:?}");
    }
    // Compacted: the vectors and payloads are the base segment's, read in place; no payload
    // was asked for, so none is in memory.
    for name in ["vectors", "graph", "segments", "payloads"] {
        assert!(f.get(name).unwrap().disk > 0, "{name} on disk: {f:?}");
    }
    assert_eq!(f.get("payloads").unwrap().memory, 0, "{f:?}");
    let one = c.get(&[quiver::PointId::Num(9)], quiver::With::PAYLOAD).unwrap();
    assert!(one[0].payload.as_ref().is_some_and(|p| !p.is_empty()));
    assert!(c.footprint().get("payloads").unwrap().memory > 0, "a payload read is kept");
    // int8 codes: one byte a dimension, plus small per-node terms.
    let codes = f.get("codes").unwrap().memory;
    assert!(codes >= 20_000 * DIM as u64 && codes < 20_000 * DIM as u64 * 2, "{codes}");
    assert_eq!(f.memory(), f.components.iter().map(|c| c.memory).sum::<u64>());
}

/// Payload indexes over a compacted base are kept beside it (`<segment>.pidx`) and loaded by the
/// next open instead of rebuilt: the file is left as it is when whole, rebuilt and rewritten
/// when damaged or missing, and every filtered answer is the same either way.
#[test]
fn payload_indexes_are_kept_beside_the_base_and_rebuilt_when_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let filters = [
        r#"{"must": [{"key": "group", "match": {"value": 3}}]}"#,
        r#"{"must": [{"key": "group", "range": {"gte": 1, "lt": 3}}]}"#,
        r#"{"must_not": [{"key": "group", "match": {"value": 0}}]}"#,
    ]
    .map(|f| quiver::Filter::parse(f).unwrap());
    let answers = |c: &quiver::Collection| -> Vec<usize> { filters.iter().map(|f| c.count(Some(f))).collect() };
    let live;
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        c.upsert((0..3000).map(|i| random_point(&mut rng, i)).collect()).unwrap();
        c.create_payload_index("group", quiver::PayloadIndexType::Integer).unwrap();
        c.compact().unwrap();
        // Rewrites after the compaction live in the tail, over the kept indexes.
        c.upsert((0..300).map(|i| random_point(&mut rng, i * 7)).collect()).unwrap();
        live = answers(&c);
    }
    let sidecar = std::fs::read_dir(dir.path().join("collections/c/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pidx"))
        .expect("compaction keeps the indexes beside its segment");
    let kept = std::fs::read(&sidecar).unwrap();
    // Rewritten means replaced by a new file: a new inode.
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&sidecar).unwrap());
    let before = inode();
    let reopen = || {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("c").unwrap();
        let got = answers(&c);
        (db, c, got)
    };
    let (db, c, first) = reopen();
    assert_eq!(first, live, "the kept indexes and the tail answer as the live process did");
    drop((c, db));
    assert_eq!(inode(), before, "a whole sidecar is used as it is, not rebuilt");
    let mut bad = kept.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x10;
    std::fs::write(&sidecar, &bad).unwrap();
    let (db, c, second) = reopen();
    assert_eq!(second, first, "rebuilt from the payloads, the same answers");
    assert_eq!(std::fs::read(&sidecar).unwrap(), kept, "a damaged sidecar is rebuilt and rewritten");
    drop((c, db));
    std::fs::remove_file(&sidecar).unwrap();
    let (_db, _c, third) = reopen();
    assert_eq!(third, first);
    assert_eq!(std::fs::read(&sidecar).unwrap(), kept, "a missing sidecar is written again");
}

/// The index file is opened in place (its graph and codes mapped, not read), then placed as
/// the settings say: copied into memory by default, left on disk with `hnsw_config.on_disk`,
/// the codes alone in memory with `always_ram`. Every placement answers alike.
#[test]
fn the_index_file_opens_in_place_and_is_placed_as_the_settings_say() {
    let dir = tempfile::tempdir().unwrap();
    let queries: Vec<Vec<f32>>;
    let want: Vec<Vec<quiver::ScoredPoint>>;
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", CollectionConfig::new(DIM, Metric::Cosine)).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        c.upsert((0..12_000).map(|i| random_point(&mut rng, i)).collect()).unwrap();
        c.compact().unwrap();
        c.build_index().unwrap();
        queries = (0..20).map(|i| random_point(&mut rng, 100_000 + i).vector).collect();
        want = queries
            .iter()
            .map(|q| c.search(&SearchRequest::new(q.clone(), 10)).unwrap())
            .collect();
    }
    let hint = |v: serde_json::Value| v.as_object().unwrap().clone();
    let placements = [
        ("default", None, true, true),
        ("graph on disk", Some(hint(json!({"hnsw_config": {"on_disk": true}}))), false, false),
        (
            "graph on disk, codes in memory",
            Some(hint(
                json!({"hnsw_config": {"on_disk": true}, "quantization_config": {"scalar": {"type": "int8", "always_ram": true}}}),
            )),
            false,
            true,
        ),
    ];
    for (name, patch, graph_in_memory, codes_in_memory) in placements {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("c").unwrap();
        c.update_settings(|s| {
            s.hints.remove("collection");
            if let Some(p) = &patch {
                s.merge_hint("collection", p);
            }
            Ok(())
        })
        .unwrap();
        drop(c);
        let c = db.reopen_collection("c").unwrap();
        // What the background thread does after an open, now.
        c.verify_data().unwrap();
        let f = c.footprint();
        let (codes, graph) = (f.get("codes").unwrap().memory, f.get("graph").unwrap().memory);
        eprintln!("{name}: codes {codes} B, graph {graph} B in memory");
        assert_eq!(codes >= 12_000 * DIM as u64, codes_in_memory, "{name}: {f:?}");
        // The level-0 lists alone are 33 words a node.
        assert_eq!(graph >= 12_000 * 33 * 4, graph_in_memory, "{name}: {f:?}");
        // (Nodes of points deleted by an earlier round stay until a rebuild.)
        assert!(c.index_status().nodes >= 12_000, "{name}");
        for (q, w) in queries.iter().zip(&want) {
            assert_eq!(&c.search(&SearchRequest::new(q.clone(), 10)).unwrap(), w, "{name}");
        }
        // An insert copies what it changes; the file is not touched until the next save.
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        c.upsert((20_000..21_000).map(|i| random_point(&mut rng, i)).collect()).unwrap();
        c.build_index().unwrap();
        assert!(c.index_status().nodes >= 13_000, "{name}");
        c.delete(&PointSelector::Ids((20_000..21_000).map(PointId::Num).collect())).unwrap();
        c.compact().unwrap();
        c.build_index().unwrap();
        for (q, w) in queries.iter().zip(&want) {
            let got = c.search(&SearchRequest::new(q.clone(), 10)).unwrap();
            let ids = |v: &[quiver::ScoredPoint]| v.iter().map(|p| p.id).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(w), "{name}: after inserts and deletes");
        }
    }
}

/// `on_disk_payload`: payloads of the base are decoded from the segment on every read, never
/// kept (the default keeps a payload once read), while edits, filters, payload indexes and
/// reopening behave exactly as with payloads in memory.
#[test]
fn on_disk_payload_reads_base_payloads_from_the_segment_without_keeping_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut settings = CollectionSettings::default();
    settings.merge_hint("params", &Map::from_iter([("on_disk_payload".to_string(), json!(true))]));
    let config = CollectionConfig::new(DIM, Metric::Dot);
    let disk = db.create_collection_with("disk", config.clone(), &settings).unwrap();
    let mem = db.create_collection("mem", config).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let pts: Vec<Point> = (0..6000).map(|i| random_point(&mut rng, i)).collect();
    for c in [&disk, &mem] {
        c.upsert(pts.clone()).unwrap();
        c.compact().unwrap();
    }
    let group = quiver::Filter::parse(r#"{"must": [{"key": "group", "match": {"value": 2}}]}"#).unwrap();
    let all: Vec<PointId> = (0..6000u64).map(PointId::Num).collect();
    let read = |c: &quiver::Collection| c.get(&all, quiver::With::PAYLOAD).unwrap();
    assert_eq!(read(&disk), read(&mem));
    assert_eq!(disk.count(Some(&group)), mem.count(Some(&group)));
    let payload_memory = |c: &quiver::Collection| c.footprint().get("payloads").unwrap().memory;
    assert!(
        payload_memory(&mem) > 6000 / 3 * 10,
        "read payloads are kept: {}",
        payload_memory(&mem)
    );
    assert_eq!(payload_memory(&disk), 0, "nothing kept");
    // An edit of a base point lives in memory until the next compaction; reads see it.
    let edit = Map::from_iter([("group".to_string(), json!(2)), ("edited".to_string(), json!(true))]);
    for c in [&disk, &mem] {
        c.set_payload(&PointSelector::Ids((0..300).map(PointId::Num).collect()), edit.clone())
            .unwrap();
    }
    assert_eq!(read(&disk), read(&mem));
    assert_eq!(disk.count(Some(&group)), mem.count(Some(&group)));
    assert!(payload_memory(&disk) > 0 && payload_memory(&disk) < payload_memory(&mem));
    drop((disk, mem));
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let (disk, mem) = (db.collection("disk").unwrap(), db.collection("mem").unwrap());
    assert_eq!(read(&disk), read(&mem), "reopened");
    assert_eq!(disk.count(Some(&group)), mem.count(Some(&group)));
    disk.compact().unwrap();
    assert_eq!(read(&disk), read(&mem), "compacted with the edits");
    assert_eq!(payload_memory(&disk), 0);
}
