//! The collection's approximate index against the exact oracle (`exact: true`): recall,
//! filters at several selectivities, deletes, fresh points, reopen, compaction, a corrupted
//! index file, and int8 codes. Seeds are fixed and printed.

use quiver::{
    CollectionConfig, Database, Filter, IndexConfig, Metric, PayloadIndexType, Point, PointId, PointSelector, Quantization, SearchPath,
    SearchRequest,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const DIM: usize = 16;
const N: usize = 40_000;

fn vectors(seed: u64, n: usize) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..50).map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.gen_range(0..centres.len())];
            c.iter().map(|x| x + rng.gen_range(-0.3..0.3)).collect()
        })
        .collect()
}

fn config(quantization: Quantization) -> CollectionConfig {
    let mut c = CollectionConfig::new(DIM, Metric::Cosine);
    c.index = IndexConfig {
        m: 12,
        ef_construct: 64,
        ef: 64,
        full_scan_threshold: 1000,
        quantization,
        ..IndexConfig::default()
    };
    c
}

/// A collection of N points (payload `bucket` = id % 1000), its index built; and the vectors.
fn setup(dir: &std::path::Path, quantization: Quantization) -> (Database, quiver::Collection, Vec<Vec<f32>>) {
    let seed = 7;
    eprintln!("seed {seed}");
    let all = vectors(seed, N + 100);
    let db = Database::open(dir).unwrap();
    let c = db.create_collection("ann", config(quantization)).unwrap();
    let points: Vec<Point> = all[..N]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let p = json!({"bucket": i % 1000});
            Point::new(i as u64, v.clone()).with_payload(p.as_object().unwrap().clone())
        })
        .collect();
    c.upsert(points).unwrap();
    c.build_index().unwrap();
    (db, c, all)
}

fn ids(hits: &[quiver::ScoredPoint]) -> Vec<PointId> {
    hits.iter().map(|h| h.id).collect()
}

/// Recall@k of approximate against exact answers over the queries, and a check per query.
fn recall(
    c: &quiver::Collection,
    queries: &[Vec<f32>],
    filter: Option<&Filter>,
    k: usize,
    mut check: impl FnMut(&[quiver::ScoredPoint], &SearchPath),
) -> f64 {
    let (mut found, mut total) = (0, 0);
    for q in queries {
        let mut req = SearchRequest::new(q.clone(), k);
        req.filter = filter.cloned();
        let (got, path) = c.search_explained(&req).unwrap();
        req.exact = true;
        let want = c.search(&req).unwrap();
        assert_eq!(
            got.len(),
            want.len(),
            "the approximate search returned {} of {} results",
            got.len(),
            want.len()
        );
        check(&got, &path);
        let got = ids(&got);
        found += ids(&want).iter().filter(|w| got.contains(w)).count();
        total += want.len();
    }
    if total == 0 {
        1.0
    } else {
        found as f64 / total as f64
    }
}

fn is_graph(p: &SearchPath) -> bool {
    matches!(p, SearchPath::Graph { .. })
}

#[test]
fn graph_search_keeps_recall_and_fresh_points_are_found_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c, all) = setup(dir.path(), Quantization::None);
    let status = c.index_status();
    assert_eq!((status.nodes, status.tail), (N, 0), "{status:?}");
    let r = recall(&c, &all[N..N + 50], None, 10, |_, p| assert!(is_graph(p), "{p:?}"));
    eprintln!("recall@10 {r:.4}");
    assert!(r >= 0.95, "recall {r}");

    // Points written after the build are searchable as soon as the write returns.
    let fresh: Vec<Point> = (0..50).map(|i| Point::new((N + i) as u64, all[N + i].clone())).collect();
    c.upsert(fresh).unwrap();
    assert_eq!(c.index_status().tail, 50);
    // A batch of exact requests (one matrix product, graph or not) answers as each alone.
    let reqs: Vec<SearchRequest> = all[N - 40..N + 40]
        .iter()
        .map(|q| {
            let mut r = SearchRequest::new(q.iter().map(|x| x + 0.01).collect(), 7);
            r.exact = true;
            r
        })
        .collect();
    for (r, b) in reqs.iter().zip(c.search_batch(&reqs).unwrap()) {
        assert_eq!(ids(&c.search(r).unwrap()), ids(&b));
    }
    for i in 0..50 {
        let (hits, path) = c.search_explained(&SearchRequest::new(all[N + i].clone(), 1)).unwrap();
        assert!(is_graph(&path));
        assert_eq!(hits[0].id, PointId::Num((N + i) as u64));
    }
    c.build_index().unwrap();
    assert_eq!(c.index_status().tail, 0);
    let hits = c.search(&SearchRequest::new(all[N + 3].clone(), 1)).unwrap();
    assert_eq!(hits[0].id, PointId::Num((N + 3) as u64));
}

#[test]
fn filtered_searches_return_k_results_and_keep_recall_at_every_selectivity() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c, all) = setup(dir.path(), Quantization::None);
    for indexed in [false, true] {
        if indexed {
            c.create_payload_index("bucket", PayloadIndexType::Integer).unwrap();
        }
        for (limit, share) in [(500, 0.5), (100, 0.1), (10, 0.01), (1, 0.001)] {
            let f = Filter::from_json(&json!({"must": [{"key": "bucket", "range": {"lt": limit}}]})).unwrap();
            let mut graph = 0;
            let r = recall(&c, &all[N..N + 40], Some(&f), 10, |hits, p| {
                graph += is_graph(p) as usize;
                for h in hits {
                    let PointId::Num(id) = h.id else { panic!() };
                    assert!(id % 1000 < limit, "a point outside the filter");
                }
            });
            eprintln!("indexed {indexed} selectivity {share}: recall@10 {r:.4}, graph searches {graph}/40");
            assert!(r >= 0.95, "selectivity {share}: recall {r}");
            if share == 0.5 {
                assert_eq!(graph, 40, "a broad filter should use the graph");
            }
            if share <= 0.01 {
                assert_eq!(graph, 0, "a narrow filter should scan its matches");
            }
        }
    }
}

#[test]
fn deleted_points_are_never_returned_and_compaction_remaps_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c, all) = setup(dir.path(), Quantization::None);
    let gone: Vec<PointId> = (0..N as u64).filter(|i| i % 3 == 0).map(PointId::Num).collect();
    c.delete(&PointSelector::Ids(gone)).unwrap();
    let check = |hits: &[quiver::ScoredPoint], p: &SearchPath| {
        assert!(is_graph(p), "{p:?}");
        for h in hits {
            let PointId::Num(id) = h.id else { panic!() };
            assert!(id % 3 != 0, "deleted point {id} returned");
        }
    };
    let r = recall(&c, &all[N..N + 40], None, 10, check);
    eprintln!("after deletes: recall@10 {r:.4}");
    assert!(r >= 0.95);
    c.compact().unwrap();
    let r = recall(&c, &all[N..N + 40], None, 10, check);
    eprintln!("after compaction: recall@10 {r:.4}");
    assert!(r >= 0.95);
}

#[test]
fn reopen_loads_the_index_and_gives_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let queries;
    let before: Vec<Vec<PointId>>;
    {
        let (db, c, all) = setup(dir.path(), Quantization::None);
        queries = all[N..N + 30].to_vec();
        before = queries
            .iter()
            .map(|q| ids(&c.search(&SearchRequest::new(q.clone(), 10)).unwrap()))
            .collect();
        drop(c);
        drop(db);
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("ann").unwrap();
    let status = c.index_status();
    assert_eq!((status.nodes, status.tail, status.error.clone()), (N, 0, None), "{status:?}");
    for (q, want) in queries.iter().zip(&before) {
        let (hits, path) = c.search_explained(&SearchRequest::new(q.clone(), 10)).unwrap();
        assert!(is_graph(&path));
        assert_eq!(&ids(&hits), want);
    }
    // Compaction writes the index file naming nodes by the new segment's rows; the next open
    // maps them without lookups and answers the same. Points rewritten after that are never
    // answered from their old nodes.
    c.compact().unwrap();
    let moved: Vec<Point> = (0..N as u64)
        .step_by(50)
        .map(|i| Point::new(i, queries[(i / 50) as usize % queries.len()].clone()))
        .collect();
    c.upsert(moved.clone()).unwrap();
    let after: Vec<Vec<PointId>> = queries
        .iter()
        .map(|q| ids(&c.search(&SearchRequest::new(q.clone(), 10)).unwrap()))
        .collect();
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("ann").unwrap();
    let status = c.index_status();
    assert_eq!((status.nodes, status.error.clone()), (N, None), "{status:?}");
    for (q, want) in queries.iter().zip(&after) {
        let hits = c.search(&SearchRequest::new(q.clone(), 10)).unwrap();
        assert_eq!(&ids(&hits), want);
        // Each query's own rewritten points (vector = query) score 1 and come first.
        assert!((hits[0].score - 1.0).abs() < 1e-4, "{:?}", hits[0]);
    }
}

#[test]
fn a_corrupted_index_file_is_ignored_and_rebuilt() {
    // Damage in a section checked on open (near the start: header, levels) makes the open
    // ignore the file; damage in a large section used in place (the middle and the end: the
    // level-0 lists, the codes, the ids) is found by the check after the open, which drops
    // the graph. Either way the index is rebuilt and answers as before.
    for (at, kind) in [(None, "ignored"), (Some(0.5), "damaged"), (Some(0.97), "")] {
        let dir = tempfile::tempdir().unwrap();
        let queries;
        {
            let (_db, _c, all) = setup(dir.path(), Quantization::None);
            queries = all[N..N + 20].to_vec();
        }
        let file = find(dir.path(), "index.hnsw").expect("the index file exists");
        let mut bytes = std::fs::read(&file).unwrap();
        // `None`: the first section, the graph's header (after the blob's own 128 bytes).
        let pos = at.map_or(130, |at| (bytes.len() as f64 * at) as usize);
        bytes[pos] ^= 0x55;
        std::fs::write(&file, bytes).unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("ann").unwrap();
        // What the background check does after an open, now (it may be running too).
        c.verify_data().unwrap();
        c.wait_for_index();
        let status = c.index_status();
        let error = status.error.clone().unwrap_or_default();
        assert!(error.contains("rebuilt") && error.contains(kind), "at {at:?}: {status:?}");
        let r = recall(&c, &queries, None, 10, |_, _| {});
        assert!(r >= 0.95, "at {at:?}: {r}");
        c.build_index().unwrap();
        assert_eq!(c.index_status().nodes, N);
    }
}

fn find(root: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(root).ok()? {
        let p = e.ok()?.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        }
    }
    None
}

#[test]
fn int8_codes_with_rescoring_keep_recall_and_report_rescoring() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c, all) = setup(dir.path(), Quantization::Int8);
    let r = recall(&c, &all[N..N + 40], None, 10, |_, p| match p {
        SearchPath::Graph {
            quantization, rescored, ..
        } => assert!(*quantization == Quantization::Int8 && *rescored >= 10),
        p => panic!("{p:?}"),
    });
    eprintln!("int8 recall@10 {r:.4}");
    assert!(r >= 0.95);
}

#[test]
fn a_collection_past_the_threshold_builds_its_index_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("bg", config(Quantization::None)).unwrap();
    let all = vectors(9, 3000);
    // Below the threshold: exact, no index.
    c.upsert(
        all[..900]
            .iter()
            .enumerate()
            .map(|(i, v)| Point::new(i as u64, v.clone()))
            .collect(),
    )
    .unwrap();
    c.wait_for_index();
    assert_eq!(c.index_status().nodes, 0);
    let (_, path) = c.search_explained(&SearchRequest::new(all[0].clone(), 5)).unwrap();
    assert!(matches!(path, SearchPath::Exact { .. }));
    // Past it: a build starts on its own; searches are exact and correct meanwhile.
    c.upsert(
        all[900..]
            .iter()
            .enumerate()
            .map(|(i, v)| Point::new((900 + i) as u64, v.clone()))
            .collect(),
    )
    .unwrap();
    let hits = c.search(&SearchRequest::new(all[2500].clone(), 1)).unwrap();
    assert_eq!(hits[0].id, PointId::Num(2500));
    c.wait_for_index();
    assert_eq!(c.index_status().nodes, 3000);
    // (At 3,000 points a scan is cheaper than the default list size; a small `ef` tips it.)
    let mut req = SearchRequest::new(all[2500].clone(), 1);
    req.ef = Some(10);
    let (hits, path) = c.search_explained(&req).unwrap();
    assert!(is_graph(&path), "{path:?}");
    assert_eq!(hits[0].id, PointId::Num(2500));
}

/// `build_threads: 1`: two collections given the same writes (in batches, with background
/// extensions between them) build the same graph, so a small `ef` gives the same answers
/// everywhere. With every core linking at once, two builds differ.
#[test]
fn one_build_thread_builds_the_same_graph_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let all = vectors(23, 20_200);
    let (base, queries) = all.split_at(20_000);
    let build = |name: &str| {
        let mut cfg = config(Quantization::Int8);
        cfg.index.build_threads = 1;
        let c = db.create_collection(name, cfg).unwrap();
        for (b, chunk) in base.chunks(5_000).enumerate() {
            let points = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| Point::new((b * 5_000 + i) as u64, v.clone()))
                .collect();
            c.upsert(points).unwrap();
            c.build_index().unwrap();
        }
        assert_eq!(c.config().index.build_threads, 1);
        c
    };
    let (a, b) = (build("a"), build("b"));
    for q in queries {
        let mut req = SearchRequest::new(q.clone(), 10);
        req.ef = Some(16);
        let (x, y) = (a.search(&req).unwrap(), b.search(&req).unwrap());
        assert_eq!(ids(&x), ids(&y));
        assert!(x.iter().zip(&y).all(|(x, y)| x.score == y.score));
    }
}
