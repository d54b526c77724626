//! Collections on object storage (`Database::open_url`) through a real store: a folder
//! (`file://`), whose create-if-absent is a hard link that refuses to replace, as S3's
//! `If-None-Match: *` refuses. The S3 API itself (moto's server) is tried end to end by
//! `tests/e2e/test_object_storage.py`.
//!
//! Every process here is a `Database` with its own cache folder and writer id, as separate
//! machines would be. Seeds are fixed; nothing waits on time: replicas are brought up to date
//! with `catch_up`, and leases are taken over explicitly.

use quiver::remote::RemoteOptions;
use quiver::{CollectionConfig, Database, ErrorKind, Metric, Point, PointId, PointSelector, SearchRequest, With};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;

const DIM: usize = 16;

fn url(store: &Path) -> String {
    format!("file://{}", store.display())
}

fn writer(store: &Path, cache: &Path) -> Database {
    Database::open_url(&url(store), cache, RemoteOptions::default()).unwrap()
}

fn taking_over(store: &Path, cache: &Path) -> Database {
    let o = RemoteOptions {
        takeover: true,
        ..Default::default()
    };
    Database::open_url(&url(store), cache, o).unwrap()
}

/// A writer that uploads every write at once and cleans the log after every checkpoint.
fn eager_cleanup() -> RemoteOptions {
    RemoteOptions {
        group_commit: std::time::Duration::ZERO,
        garbage_grace: std::time::Duration::ZERO,
        ..Default::default()
    }
}

fn replica(store: &Path, cache: &Path) -> Database {
    let o = RemoteOptions {
        read_only: true,
        ..Default::default()
    };
    Database::open_url(&url(store), cache, o).unwrap()
}

fn point(rng: &mut ChaCha8Rng, id: u64) -> Point {
    let v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    Point::new(PointId::Num(id), v)
}

fn num(id: &PointId) -> u64 {
    match id {
        PointId::Num(n) => *n,
        other => panic!("unexpected id {other:?}"),
    }
}

/// The model: id -> vector, as acknowledged.
type Model = BTreeMap<u64, Vec<f32>>;

fn write_random(c: &quiver::Collection, model: &mut Model, rng: &mut ChaCha8Rng, rounds: usize) {
    for _ in 0..rounds {
        if rng.gen_range(0..5) == 0 {
            let ids: Vec<u64> = (0..rng.gen_range(1..20)).map(|_| rng.gen_range(0..2_000)).collect();
            c.delete(&PointSelector::Ids(ids.iter().map(|&i| PointId::Num(i)).collect()))
                .unwrap();
            for i in ids {
                model.remove(&i);
            }
        } else {
            let pts: Vec<Point> = (0..rng.gen_range(1..200))
                .map(|_| {
                    let id = rng.gen_range(0..2_000);
                    point(rng, id)
                })
                .collect();
            c.upsert(pts.clone()).unwrap();
            for p in pts {
                model.insert(num(&p.id), p.vector.clone());
            }
        }
    }
}

fn assert_matches(c: &quiver::Collection, model: &Model, stage: &str) {
    assert_eq!(c.len(), model.len(), "{stage}: point count");
    let ids: Vec<PointId> = model.keys().map(|&i| PointId::Num(i)).collect();
    let got = c.get(&ids, With::ALL).unwrap();
    assert_eq!(got.len(), model.len(), "{stage}: points read back");
    for r in got {
        let want = &model[&num(&r.id)];
        // Cosine collections store normalised vectors; this one is dot.
        assert_eq!(r.vector.as_deref(), Some(&want[..]), "{stage}: vector of {:?}", r.id);
    }
}

#[test]
fn a_collection_comes_back_from_the_store_on_another_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut model = Model::new();
    {
        let db = writer(&store, &tmp.path().join("cache-a"));
        let c = db.create_collection("docs", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
        write_random(&c, &mut model, &mut rng, 40);
        // A flush and a compaction in the middle: checkpoints with files.
        c.flush().unwrap();
        write_random(&c, &mut model, &mut rng, 20);
        c.compact().unwrap();
        write_random(&c, &mut model, &mut rng, 20);
        assert_matches(&c, &model, "writer");
        let st = c.remote_status().unwrap();
        assert_eq!(st.role, "writer");
        assert!(st.acked_writes > 0);
    }
    // A new machine: an empty cache.
    let db = writer(&store, &tmp.path().join("cache-b"));
    assert_eq!(db.list_collections().unwrap(), vec!["docs".to_string()]);
    let c = db.collection("docs").unwrap();
    assert_matches(&c, &model, "restored on another machine");
    // And it searches: exact against the model's best.
    let q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let best = model
        .iter()
        .map(|(id, v)| (*id, v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>()))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let mut req = SearchRequest::new(q, 1);
    req.exact = true;
    assert_eq!(c.search(&req).unwrap()[0].id, PointId::Num(best.0));
}

#[test]
fn a_writer_taken_over_cannot_commit_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut model = Model::new();
    let old = writer(&store, &tmp.path().join("cache-old"));
    let c_old = old.create_collection("docs", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
    write_random(&c_old, &mut model, &mut rng, 30);

    // A second writer is refused while the first holds its lease...
    let second = writer(&store, &tmp.path().join("cache-second"));
    let e = second.collection("docs").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    assert!(e.to_string().contains("--takeover"), "{e}");

    // ...and takes over when told to.
    let new = taking_over(&store, &tmp.path().join("cache-new"));
    let c_new = new.collection("docs").unwrap();
    assert_matches(&c_new, &model, "after the takeover");

    // The old writer's next write fails, clearly, and is not in the log.
    let e = c_old.upsert(vec![point(&mut rng, 5_000)]).unwrap_err();
    assert!(e.to_string().contains("taken over"), "{e}");
    let e = c_old.upsert(vec![point(&mut rng, 5_001)]).unwrap_err();
    assert!(matches!(e, quiver::Error::Fenced(_)), "{e}");

    write_random(&c_new, &mut model, &mut rng, 10);
    drop(c_new);
    drop(new);
    let third = writer(&store, &tmp.path().join("cache-third"));
    assert_matches(&third.collection("docs").unwrap(), &model, "after the new writer closed");
}

#[test]
fn racing_creators_and_racing_writers_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let dbs: Vec<Database> = (0..4).map(|i| writer(&store, &tmp.path().join(format!("cache-{i}")))).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = dbs
            .iter()
            .map(|db| s.spawn(move || db.create_collection("race", CollectionConfig::new(DIM, Metric::Dot)).map(|_| ())))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        let e = r.as_ref().unwrap_err();
        assert!(matches!(e, quiver::Error::CollectionExists(_) | quiver::Error::Fenced(_)), "{e}");
    }
}

#[test]
fn a_replica_follows_the_writer_and_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut model = Model::new();
    let w = writer(&store, &tmp.path().join("cache-w"));
    let c = w.create_collection("docs", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
    write_random(&c, &mut model, &mut rng, 10);

    let r = replica(&store, &tmp.path().join("cache-r"));
    let rc = r.collection("docs").unwrap();
    assert_matches(&rc, &model, "replica on open");
    assert_eq!(rc.remote_status().unwrap().role, "replica");

    for round in 0..3 {
        write_random(&c, &mut model, &mut rng, 15);
        if round == 1 {
            c.compact().unwrap();
        }
        rc.catch_up().unwrap();
        assert_matches(&rc, &model, &format!("replica after round {round}"));
    }
    let e = rc.upsert(vec![point(&mut rng, 1)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    let e = r.create_collection("other", CollectionConfig::new(DIM, Metric::Dot)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");

    // The writer goes away: the replica still answers.
    drop(c);
    drop(w);
    rc.catch_up().unwrap();
    assert_matches(&rc, &model, "replica with the writer gone");
}

#[test]
fn a_deleted_cache_is_rebuilt_from_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let cache = tmp.path().join("cache");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut model = Model::new();
    {
        let db = writer(&store, &cache);
        let c = db.create_collection("docs", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
        write_random(&c, &mut model, &mut rng, 20);
        c.compact().unwrap();
        write_random(&c, &mut model, &mut rng, 5);
    }
    std::fs::remove_dir_all(&cache).unwrap();
    let db = writer(&store, &cache);
    assert_matches(&db.collection("docs").unwrap(), &model, "cache rebuilt");
    // A dropped collection is gone from the store, for every machine.
    db.drop_collection("docs").unwrap();
    let other = replica(&store, &tmp.path().join("cache-2"));
    assert!(other.list_collections().unwrap().is_empty());
    assert_eq!(other.collection("docs").unwrap_err().kind(), ErrorKind::NotFound);
}

fn count_objects(store: &Path, sub: &str) -> usize {
    let dir = store.join("collections/docs").join(sub);
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn the_log_is_checkpointed_and_cleaned_as_it_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let o = eager_cleanup();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut model = Model::new();
    {
        let db = Database::open_url(&url(&store), tmp.path().join("cache-a"), o.clone()).unwrap();
        let c = db.create_collection("docs", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
        // One point per write: more group commits than a checkpoint waits for.
        for i in 0..1_200u64 {
            let p = point(&mut rng, i % 700);
            c.upsert(vec![p.clone()]).unwrap();
            model.insert(i % 700, p.vector);
        }
        // Compactions leave old segments behind in the store until the cleanup.
        for _ in 0..3 {
            write_random(&c, &mut model, &mut rng, 5);
            c.compact().unwrap();
        }
        assert_matches(&c, &model, "writer");
    }
    let entries = count_objects(&store, "log");
    assert!(entries < 400, "{entries} log entries kept after 1,200 writes and checkpoints");
    let files = count_objects(&store, "files");
    assert!(
        files <= 4,
        "{files} files kept: only the last checkpoints' segments and index files should be"
    );
    let db = Database::open_url(&url(&store), tmp.path().join("cache-b"), o).unwrap();
    assert_matches(&db.collection("docs").unwrap(), &model, "restored after the cleanup");
}

fn crashed(tmp: &tempfile::TempDir, n: usize) -> std::path::PathBuf {
    tmp.path().join(format!("crashed-{n}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn with_a_local_wal_writes_acknowledged_before_their_upload_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let cache = tmp.path().join("cache");
    // Group commits that never come within the test: everything waits in the uploader's
    // queue, acknowledged from the local WAL only.
    let slow = RemoteOptions {
        wal_local: true,
        group_commit: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut model = Model::new();
    {
        let db = Database::open_url(&url(&store), &cache, slow.clone()).unwrap();
        let c = db.create_collection("docs", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
        write_random(&c, &mut model, &mut rng, 10);
        // A crash: the disk as it is now, while the queue waits; the process never stops
        // cleanly (the handles leak, so nothing is uploaded).
        copy_dir(&cache, &crashed(&tmp, 1));
        std::mem::forget(c);
        std::mem::forget(db);
    }
    // The store does not hold those writes...
    let elsewhere = Database::open_url(
        &url(&store),
        tmp.path().join("elsewhere"),
        RemoteOptions {
            takeover: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(elsewhere.collection("docs").unwrap().len(), 0, "the writes were uploaded after all");
    drop(elsewhere);
    // ...but the other writer took over: the node's local writes can no longer go in.
    let o = RemoteOptions {
        wal_local: true,
        takeover: true,
        ..Default::default()
    };
    let db = Database::open_url(&url(&store), crashed(&tmp, 1), o.clone()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.len(), 0);
    let st = c.remote_status().unwrap();
    assert!(st.error.as_deref().is_some_and(|e| e.contains("dropped")), "{st:?}");
    drop(c);
    drop(db);

    // Again, with nobody else writing: the node restarts and uploads them.
    let mut model = Model::new();
    {
        let db = Database::open_url(&url(&store), crashed(&tmp, 1), RemoteOptions { takeover: true, ..slow }).unwrap();
        let c = db.collection("docs").unwrap();
        write_random(&c, &mut model, &mut rng, 10);
        copy_dir(&crashed(&tmp, 1), &crashed(&tmp, 2));
        std::mem::forget(c);
        std::mem::forget(db);
    }
    let db = Database::open_url(&url(&store), crashed(&tmp, 2), o).unwrap();
    assert_matches(&db.collection("docs").unwrap(), &model, "local WAL recovered");
    drop(db);
    let fresh = Database::open_url(&url(&store), tmp.path().join("fresh"), RemoteOptions::default()).unwrap();
    assert_matches(&fresh.collection("docs").unwrap(), &model, "uploaded after the restart");
}

#[test]
fn the_index_comes_back_with_the_collection_instead_of_being_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut model = Model::new();
    let nodes = {
        let db = writer(&store, &tmp.path().join("cache-a"));
        let c = db.create_collection("docs", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
        let pts: Vec<Point> = (0..3_000).map(|i| point(&mut rng, i)).collect();
        for p in &pts {
            model.insert(num(&p.id), p.vector.clone());
        }
        c.upsert(pts).unwrap();
        c.build_index().unwrap();
        // A plain flush after the index was saved: the index entry is now before the last
        // checkpoint, which must name it.
        write_random(&c, &mut model, &mut rng, 3);
        c.flush().unwrap();
        c.index_status().nodes
    };
    assert!(nodes >= 3_000, "{nodes}");
    for (i, db) in [
        writer(&store, &tmp.path().join("cache-b")),
        replica(&store, &tmp.path().join("cache-c")),
    ]
    .into_iter()
    .enumerate()
    {
        let c = db.collection("docs").unwrap();
        // Right after the open, before any background build could finish: loaded, not rebuilt.
        assert!(c.index_status().nodes >= 3_000, "open {i}: {:?} nodes", c.index_status().nodes);
        assert_matches(&c, &model, "with its index");
    }
}

#[test]
fn the_cache_keeps_to_its_cap_by_dropping_collections_not_open() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let cache = tmp.path().join("cache");
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let mut models = Vec::new();
    {
        let db = writer(&store, &cache);
        for name in ["a", "b", "c"] {
            let c = db.create_collection(name, CollectionConfig::new(DIM, Metric::Dot)).unwrap();
            let mut m = Model::new();
            write_random(&c, &mut m, &mut rng, 10);
            c.compact().unwrap();
            models.push(m);
        }
    }
    let present = |n: &str| cache.join("collections").join(n).exists();
    assert!(present("a") && present("b") && present("c"));
    let o = RemoteOptions {
        cache_max_bytes: Some(1),
        ..Default::default()
    };
    let db = Database::open_url(&url(&store), &cache, o).unwrap();
    let a = db.collection("a").unwrap();
    // Over the cap: the folders of collections not open went; the open one stays.
    assert!(present("a") && !present("b") && !present("c"));
    let b = db.collection("b").unwrap();
    assert!(present("a") && present("b") && !present("c"));
    assert_matches(&a, &models[0], "a, kept open");
    assert_matches(&b, &models[1], "b, restored again");
    let (used, cap) = db.cache_usage().unwrap();
    assert!(used > 0 && cap == Some(1));
}

/// A writer's collection of `n` points with payloads, compacted into one base segment and
/// indexed; returns the points' vectors.
fn indexed_collection(store: &Path, cache: &Path, n: u64, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let db = writer(store, cache);
    let c = db.create_collection("docs", CollectionConfig::new(DIM, Metric::Cosine)).unwrap();
    let mut vectors = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(2_000) {
        let pts: Vec<Point> = chunk
            .iter()
            .map(|&i| {
                let p = point(rng, i);
                vectors.push(p.vector.clone());
                let payload = serde_json::json!({"i": i, "bucket": i % 10, "text": format!("point {i} {}", "x".repeat(120))});
                p.with_payload(payload.as_object().unwrap().clone())
            })
            .collect();
        c.upsert(pts).unwrap();
    }
    c.compact().unwrap();
    c.build_index().unwrap();
    c.flush().unwrap();
    vectors
}

fn answers(c: &quiver::Collection, queries: &[Vec<f32>], exact: bool, filter: Option<&quiver::Filter>) -> Vec<Vec<(u64, f32, String)>> {
    queries
        .iter()
        .map(|q| {
            let mut req = SearchRequest::new(q.clone(), 10);
            req.exact = exact;
            req.ef = Some(64);
            req.filter = filter.cloned();
            c.search(&req)
                .unwrap()
                .into_iter()
                .map(|h| (num(&h.id), h.score, serde_json::to_string(&h.payload).unwrap()))
                .collect()
        })
        .collect()
}

fn same_answers(got: &[Vec<(u64, f32, String)>], want: &[Vec<(u64, f32, String)>], stage: &str) {
    assert_eq!(got.len(), want.len());
    for (q, (g, w)) in got.iter().zip(want).enumerate() {
        let ids = |a: &[(u64, f32, String)]| a.iter().map(|h| (h.0, h.2.clone())).collect::<Vec<_>>();
        assert_eq!(ids(g), ids(w), "{stage}: query {q}");
        for (a, b) in g.iter().zip(w) {
            assert!((a.1 - b.1).abs() < 1e-5, "{stage}: query {q}: score {} vs {}", a.1, b.1);
        }
    }
}

#[test]
fn a_cold_replica_answers_from_pages_fetched_on_demand_exactly_as_the_writer() {
    use quiver::remote::ColdStart;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let vectors = indexed_collection(&store, &tmp.path().join("cache-w"), 20_000, &mut rng);
    let queries: Vec<Vec<f32>> = (0..20)
        .map(|i| vectors[i * 997 % vectors.len()].iter().map(|x| x + 0.01).collect())
        .collect();
    let filter = quiver::Filter::parse(r#"{"must": [{"key": "bucket", "match": {"value": 3}}]}"#).unwrap();
    // The oracle: a replica that downloaded everything before opening.
    let eager = Database::open_url(
        &url(&store),
        tmp.path().join("cache-e"),
        RemoteOptions {
            read_only: true,
            cold_start: ColdStart::Eager,
            ..Default::default()
        },
    )
    .unwrap();
    let e = eager.collection("docs").unwrap();
    assert!(e.remote_status().unwrap().base_bytes.is_none(), "an eager open fills nothing");
    let (want_ann, want_exact, want_filtered) = (
        answers(&e, &queries, false, None),
        answers(&e, &queries, true, None),
        answers(&e, &queries, false, Some(&filter)),
    );

    let cache = tmp.path().join("cache-o");
    let db = Database::open_url(
        &url(&store),
        &cache,
        RemoteOptions {
            read_only: true,
            cold_start: ColdStart::OnDemand,
            ..Default::default()
        },
    )
    .unwrap();
    let c = db.collection("docs").unwrap();
    assert!(c.index_status().nodes >= 20_000, "the index file came whole");
    let s = c.remote_status().unwrap();
    let total = s.base_bytes.expect("the base is filled on demand");
    assert!(s.base_present_bytes.unwrap() < total / 4, "the open fetched {s:?}");
    // One graph search reads its candidates' vectors and its hits' payloads, a page each
    // (this base is small: 20 searches touch most of its pages).
    same_answers(
        &answers(&c, &queries[..1], false, None),
        &want_ann[..1],
        "a graph search on a cold replica",
    );
    let s = c.remote_status().unwrap();
    assert!(
        s.base_fetched_bytes.unwrap() < total / 2,
        "a graph search read {} of {total} bytes",
        s.base_fetched_bytes.unwrap()
    );
    same_answers(&answers(&c, &queries, false, None), &want_ann, "graph searches on a cold replica");
    assert!(!cache.join("collections/docs/segments").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".seg")));
    // Exact and filtered searches read what they need too (every vector, the matching rows).
    same_answers(&answers(&c, &queries, true, None), &want_exact, "exact searches on a cold replica");
    same_answers(
        &answers(&c, &queries, false, Some(&filter)),
        &want_filtered,
        "filtered searches on a cold replica",
    );
    // Completing it: the file is checked, renamed into place, and the answers stay the same.
    c.verify_data().unwrap();
    let s = c.remote_status().unwrap();
    assert_eq!(s.base_present_bytes, Some(total), "{s:?}");
    assert!(cache.join("collections/docs/warming").read_dir().unwrap().next().is_none());
    same_answers(&answers(&c, &queries, false, None), &want_ann, "after the fill completed");
    drop(c);
    drop(db);

    // The default (lazy) replica answers the same at once and completes on its own; its next
    // open finds the whole file in its cache and fills nothing.
    let cache = tmp.path().join("cache-l");
    let db = replica(&store, &cache);
    let c = db.collection("docs").unwrap();
    same_answers(&answers(&c, &queries, false, None), &want_ann, "a lazy replica");
    same_answers(
        &answers(&c, &queries, false, Some(&filter)),
        &want_filtered,
        "a lazy replica, filtered",
    );
    c.verify_data().unwrap();
    same_answers(&answers(&c, &queries, true, None), &want_exact, "a lazy replica, exact");
    drop(c);
    drop(db);
    let db = replica(&store, &cache);
    let c = db.collection("docs").unwrap();
    assert!(c.remote_status().unwrap().base_bytes.is_none(), "the cache held the whole base");
    same_answers(&answers(&c, &queries, false, None), &want_ann, "a warm reopen");
}

#[test]
fn a_replica_behind_the_cleanup_restores_itself_and_a_dropped_collection_goes_away() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let o = eager_cleanup();
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    let mut model = Model::new();
    let wdb = Database::open_url(&url(&store), tmp.path().join("cache-w"), o).unwrap();
    let w = wdb.create_collection("docs", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
    write_random(&w, &mut model, &mut rng, 5);
    w.compact().unwrap();
    let rdb = replica(&store, &tmp.path().join("cache-r"));
    let r = rdb.collection("docs").unwrap();
    assert_matches(&r, &model, "replica");
    // The writer moves on while the replica does not read: two checkpoints, and with no grace
    // the cleanup removes every entry before the last one, those the replica needs next too.
    for _ in 0..2 {
        write_random(&w, &mut model, &mut rng, 5);
        w.compact().unwrap();
    }
    let e = r.catch_up().unwrap_err().to_string();
    assert!(e.contains("fell behind"), "{e}");
    assert!(r.remote_status().unwrap().error.is_some_and(|e| e.contains("fell behind")));
    // The next handle is restored afresh, and follows again.
    let r2 = rdb.collection("docs").unwrap();
    assert_matches(&r2, &model, "restored after falling behind");
    write_random(&w, &mut model, &mut rng, 3);
    r2.catch_up().unwrap();
    assert_matches(&r2, &model, "following again");
    // The writer drops the collection: the replica notices at its next read of the log.
    wdb.drop_collection("docs").unwrap();
    let e = r2.catch_up().unwrap_err().to_string();
    assert!(e.contains("dropped"), "{e}");
    assert_eq!(rdb.collection("docs").unwrap_err().kind(), ErrorKind::NotFound);
    assert!(rdb.list_collections().unwrap().is_empty());
    assert!(!tmp.path().join("cache-r/collections/docs").exists(), "its cache folder is removed");
}

#[test]
fn snapshots_live_in_the_store_and_any_node_serves_them() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let mut model = Model::new();
    let wdb = writer(&store, &tmp.path().join("cache-w"));
    let w = wdb.create_collection("docs", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
    write_random(&w, &mut model, &mut rng, 5);
    let snap = wdb.create_snapshot("docs").unwrap();
    let full = wdb.create_full_snapshot().unwrap();
    // Another machine, a replica on an empty cache, lists them and serves their files.
    let rdb = replica(&store, &tmp.path().join("cache-r"));
    let listed = rdb.list_snapshots("docs").unwrap();
    assert_eq!(
        listed.iter().map(|s| (&s.name, s.size, &s.checksum)).collect::<Vec<_>>(),
        vec![(&snap.name, snap.size, &snap.checksum)]
    );
    let file = rdb.snapshot_file("docs", &snap.name).unwrap().expect("downloaded from the store");
    assert!(file.starts_with(tmp.path().join("cache-r")));
    assert_eq!(Some(quiver::snapshot::sha256_file(&file).unwrap()), snap.checksum);
    assert_eq!(rdb.list_full_snapshots().unwrap().len(), 1);
    let f = rdb.full_snapshot_file(&full.name).unwrap().expect("the full snapshot too");
    assert_eq!(Some(quiver::snapshot::sha256_file(&f).unwrap()), full.checksum);
    assert!(rdb.snapshot_file("docs", "nope.snapshot").unwrap().is_none());
    // Only a writer deletes them; then nobody lists them.
    assert_eq!(rdb.delete_snapshot("docs", &snap.name).unwrap_err().kind(), ErrorKind::ReadOnly);
    assert!(wdb.delete_snapshot("docs", &snap.name).unwrap());
    assert!(!wdb.delete_snapshot("docs", &snap.name).unwrap());
    assert!(rdb.list_snapshots("docs").unwrap().is_empty());
    assert!(rdb.snapshot_file("docs", &snap.name).unwrap().is_none());
    // The writer's own cache can go: the store still has the full snapshot.
    drop(w);
    drop(wdb);
    std::fs::remove_dir_all(tmp.path().join("cache-w")).unwrap();
    let again = writer(&store, &tmp.path().join("cache-w2"));
    assert_eq!(again.list_full_snapshots().unwrap()[0].name, full.name);
}
