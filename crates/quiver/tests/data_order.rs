//! The approximate index under real insertion orders: sorted, drifting, clustered-then-a-new-
//! cluster and duplicate-heavy data, arriving in batches with the index extended after each
//! (as the background job does), for every metric and every quantized encoding, against the
//! exact oracle:
//! * int8 codes follow the data (retrained when values clamp) and new points are linked with
//!   full-precision distances, so at a fixed `ef` an index grown batch by batch answers about as
//!   well as one built on all the data at once, and not far below full-precision codes. Codes
//!   trained on the first rows only gave recall 0.3 against 0.9 on sorted data; linking with
//!   int8 distances lost 0.12 (drifting, cosine) against 0.07 at most with exact links, over
//!   200 queries. Graphs are built on one thread, so every run builds the same ones; the margins
//!   allow for late points of drifting data crowding into a few int8 steps.
//!   `quiver-index`'s own tests compare the two linkings deterministically.
//! * with the recall monitor's measurements, a search that names no `ef` reaches the target
//!   recall (0.95) whatever the order and the encoding: the graph of sorted data is harder to
//!   walk (even at full precision), and the monitor raises `ef` until answers are good again.
//!
//! Seeds are fixed.

use quiver::{CollectionConfig, Database, IndexConfig, Metric, Point, Quantization, SearchRequest};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N: usize = 40_000;
const BATCH: usize = 5_000;
const K: usize = 10;

#[derive(Clone, Copy, Debug)]
enum Order {
    /// One column grows with the insertion order (a timestamp, an id).
    Sorted,
    /// Every column drifts: the data's centre moves as it arrives.
    Drifting,
    /// The first half from some clusters, the second half from new clusters far away.
    NewCluster,
    /// Half of the points are copies of 50 vectors.
    Duplicates,
}

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Sum of uniforms: close enough to normal for test data, and deterministic.
    (0..6).map(|_| rng.gen_range(-1.0f32..1.0)).sum::<f32>() / 2.0
}

fn data(order: Order, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..40).map(|_| (0..dim).map(|_| gaussian(&mut rng) * 2.0).collect()).collect();
    let drift: Vec<f32> = (0..dim).map(|_| gaussian(&mut rng)).collect();
    let dups: Vec<Vec<f32>> = (0..50).map(|_| (0..dim).map(|_| gaussian(&mut rng) * 2.0).collect()).collect();
    (0..N)
        .map(|i| {
            let t = i as f32 / N as f32;
            let c = &centres[rng.gen_range(0..centres.len())];
            let mut v: Vec<f32> = c.iter().map(|x| x + gaussian(&mut rng) * 0.5).collect();
            match order {
                Order::Sorted => v[0] = 20.0 * t,
                Order::Drifting => v.iter_mut().zip(&drift).for_each(|(x, d)| *x += 8.0 * t * d),
                Order::NewCluster => {
                    if i >= N / 2 {
                        v.iter_mut().for_each(|x| *x += 10.0);
                    }
                }
                Order::Duplicates => {
                    if i % 2 == 0 {
                        v = dups[rng.gen_range(0..dups.len())].clone();
                    }
                }
            }
            v
        })
        .collect()
}

/// Inserts `points` in batches, extending the index after each; returns the collection.
fn load(
    db: &Database,
    name: &str,
    metric: Metric,
    quantization: Quantization,
    points: &[(u64, Vec<f32>)],
    batch: usize,
) -> quiver::Collection {
    let mut config = CollectionConfig::new(points[0].1.len(), metric);
    config.index = IndexConfig {
        m: 12,
        ef_construct: 64,
        ef: 64,
        full_scan_threshold: 1000,
        quantization,
        // One build thread: the same graph on every run, so the margins below compare
        // encodings, not the luck of a concurrent build.
        build_threads: 1,
        ..IndexConfig::default()
    };
    let c = db.create_collection(name, config).unwrap();
    for batch in points.chunks(batch) {
        c.upsert(batch.iter().map(|(id, v)| Point::new(*id, v.clone())).collect()).unwrap();
        c.build_index().unwrap();
    }
    c
}

/// Recall@K against the exact oracle at list size `ef` (`None`: the collection's choice), by
/// score (ties between duplicates count as found).
fn recall(c: &quiver::Collection, metric: Metric, queries: &[Vec<f32>], ef: Option<usize>) -> f64 {
    let lower_is_better = matches!(metric, Metric::Euclid);
    let (mut found, mut total) = (0usize, 0usize);
    for q in queries {
        let mut req = SearchRequest::new(q.clone(), K);
        req.ef = ef;
        let got = c.search(&req).unwrap();
        req.exact = true;
        let want = c.search(&req).unwrap();
        let kth = want.last().unwrap().score;
        let tol = 1e-4 * kth.abs().max(1.0);
        found += got
            .iter()
            .filter(|h| {
                if lower_is_better {
                    h.score <= kth + tol
                } else {
                    h.score >= kth - tol
                }
            })
            .count()
            .min(want.len());
        total += want.len();
    }
    found as f64 / total as f64
}

fn check(order: Order, quantization: Quantization) {
    let seed = 11;
    // Binary codes are for high dimensions; int8 works at any.
    let dim = if quantization == Quantization::Binary { 96 } else { 24 };
    let vs = data(order, dim, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    // Queries near points of the last quarter: where a stale encoding would hurt. The first 50
    // calibrate the recall monitor, the other 200 are measured.
    let queries: Vec<Vec<f32>> = (0..250)
        .map(|_| {
            let v = &vs[rng.gen_range(N * 3 / 4..N)];
            v.iter().map(|x| x + gaussian(&mut rng) * 0.05).collect()
        })
        .collect();
    let (calibration, tests) = queries.split_at(50);
    let ordered: Vec<(u64, Vec<f32>)> = vs.iter().cloned().enumerate().map(|(i, v)| (i as u64, v)).collect();
    for metric in [Metric::Cosine, Metric::Dot, Metric::Euclid] {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = load(&db, "quantized", metric, quantization, &ordered, BATCH);
        let at_64 = recall(&c, metric, tests, Some(64));
        // A new cluster far from the old ones is packed into a few int8 steps per dimension (the
        // ranges span all clusters): no per-dimension scalar code tells its points apart well,
        // at any training. There only the monitor's larger `ef` (below) keeps answers good.
        if quantization == Quantization::Int8 && !matches!(order, Order::NewCluster) {
            let f = load(&db, "float", metric, Quantization::None, &ordered, BATCH);
            let float_64 = recall(&f, metric, tests, Some(64));
            let once = load(&db, "once", metric, quantization, &ordered, N);
            let once_64 = recall(&once, metric, tests, Some(64));
            eprintln!("{order:?} {metric:?}: recall@{K} at ef 64: int8 {at_64:.3}, int8 trained on all {once_64:.3}, full precision {float_64:.3}");
            assert!(
                at_64 >= float_64 - 0.13 && at_64 >= once_64 - 0.13,
                "{order:?} {metric:?}: int8 recall@{K} {at_64:.3} at ef 64, built at once {once_64:.3}, full precision {float_64:.3} (seed {seed})"
            );
        }
        let estimates = c.calibrate_recall(calibration, K).unwrap();
        let chosen = recall(&c, metric, tests, None);
        let status = c.index_status();
        eprintln!(
            "{order:?} {quantization:?} {metric:?}: recall@{K} at ef 64 {at_64:.3}; with no ef (ef {} chosen for target 0.95) {chosen:.3}; measured {estimates:?}",
            status.ef
        );
        // The target is met on the calibration queries; other queries may fall a little short.
        assert!(
            chosen >= 0.85,
            "{order:?} {quantization:?} {metric:?}: recall@{K} {chosen:.3} with the monitor's ef {} (seed {seed})",
            status.ef
        );
        // The chosen ef reached the target (0.95 as the f32 it is stored as), or no ef did.
        assert!(
            status.recall.is_some_and(|r| r.recall >= 0.95f32 as f64 - 1e-6 || r.ef == 1024),
            "{status:?}"
        );
    }
}

#[test]
fn int8_keeps_recall_on_sorted_data() {
    check(Order::Sorted, Quantization::Int8);
}

#[test]
fn int8_keeps_recall_on_drifting_data() {
    check(Order::Drifting, Quantization::Int8);
}

#[test]
fn int8_keeps_recall_when_a_new_cluster_arrives() {
    check(Order::NewCluster, Quantization::Int8);
}

#[test]
fn int8_keeps_recall_on_duplicate_heavy_data() {
    check(Order::Duplicates, Quantization::Int8);
}

#[test]
fn binary_keeps_recall_on_sorted_data() {
    check(Order::Sorted, Quantization::Binary);
}

#[test]
fn binary_keeps_recall_on_drifting_data() {
    check(Order::Drifting, Quantization::Binary);
}

#[test]
fn binary_keeps_recall_when_a_new_cluster_arrives() {
    check(Order::NewCluster, Quantization::Binary);
}

#[test]
fn binary_keeps_recall_on_duplicate_heavy_data() {
    check(Order::Duplicates, Quantization::Binary);
}
