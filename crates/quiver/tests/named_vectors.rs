//! Named, sparse and multi vectors against a simple model: random upserts (points holding any
//! subset of the collection's vectors, the main one included), deletes, single-vector updates
//! and deletions, flushes, compactions and reopenings; after each step every point reads back
//! as the model holds it and every space's search equals a brute-force scan of the model.

use quiver::vector_model::{max_sim, DenseParams, SparseParams};
use quiver::{
    CollectionConfig, Database, Error, Filter, FusionKind, Metric, Point, PointId, PointSelector, QueryStage, QueryVector, Recommend,
    RecommendStrategy, SearchRequest, SparseVector, StageQuery, VectorData, VectorSchema, With,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn config() -> CollectionConfig {
    let mut c = CollectionConfig::new(3, Metric::Dot);
    c.vectors = VectorSchema {
        main: String::new(),
        dense: [
            (
                "d".to_string(),
                DenseParams {
                    dim: 2,
                    metric: Metric::Euclid,
                    multivector: false,
                },
            ),
            (
                "m".to_string(),
                DenseParams {
                    dim: 2,
                    metric: Metric::Dot,
                    multivector: true,
                },
            ),
        ]
        .into(),
        sparse: [
            ("s".to_string(), SparseParams { idf: false }),
            ("b".to_string(), SparseParams { idf: true }),
        ]
        .into(),
    };
    c
}

/// What the model holds per point: main vector (maybe empty) and named vectors.
type Model = BTreeMap<u64, (Vec<f32>, BTreeMap<String, VectorData>)>;

fn sparse(rng: &mut StdRng) -> SparseVector {
    let mut m = BTreeMap::new();
    for _ in 0..rng.gen_range(1..6) {
        m.insert(rng.gen_range(0..20u32), rng.gen_range(0.1..2.0f32));
    }
    SparseVector {
        indices: m.keys().copied().collect(),
        values: m.values().copied().collect(),
    }
}

fn dense(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn random_point(rng: &mut StdRng, id: u64) -> Point {
    let main = if rng.gen_bool(0.7) { dense(rng, 3) } else { Vec::new() };
    let mut p = Point::new(id, main);
    if rng.gen_bool(0.5) {
        p = p.with_named("d", VectorData::Dense(dense(rng, 2)));
    }
    if rng.gen_bool(0.4) {
        let rows = rng.gen_range(1..4);
        p = p.with_named("m", VectorData::Multi((0..rows).map(|_| dense(rng, 2)).collect()));
    }
    for name in ["s", "b"] {
        if rng.gen_bool(0.5) {
            p = p.with_named(name, VectorData::Sparse(sparse(rng)));
        }
    }
    p
}

fn idf(n: usize, df: usize) -> f32 {
    (((n as f64 - df as f64 + 0.5) / (df as f64 + 0.5)) + 1.0).ln() as f32
}

/// The brute-force answer for one space: (id, score) best first, ties by id.
fn brute(model: &Model, using: &str, q: &QueryVector, k: usize) -> Vec<(u64, f32)> {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let l2 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let n_with = |name: &str| model.values().filter(|(_, n)| n.contains_key(name)).count();
    let mut hits: Vec<(u64, f32)> = model
        .iter()
        .filter_map(|(&id, (main, named))| {
            let score = match (using, q) {
                ("", QueryVector::Dense(v)) => (!main.is_empty()).then(|| dot(v, main))?,
                ("d", QueryVector::Dense(v)) => match named.get("d")? {
                    VectorData::Dense(x) => l2(v, x).sqrt(),
                    _ => unreachable!(),
                },
                ("m", QueryVector::Multi(rows)) => match named.get("m")? {
                    VectorData::Multi(x) => max_sim(rows, x, dot),
                    _ => unreachable!(),
                },
                (s, QueryVector::Sparse(qv)) => match named.get(s)? {
                    VectorData::Sparse(x) => {
                        if !x.indices.iter().any(|i| qv.indices.contains(i)) {
                            return None;
                        }
                        let mut w = qv.clone();
                        if s == "b" {
                            for (i, v) in w.indices.iter().zip(w.values.iter_mut()) {
                                let df = model
                                    .values()
                                    .filter(|(_, n)| matches!(n.get("b"), Some(VectorData::Sparse(y)) if y.indices.contains(i)))
                                    .count();
                                *v *= idf(n_with("b"), df);
                            }
                        }
                        x.dot(&w)
                    }
                    _ => unreachable!(),
                },
                _ => unreachable!(),
            };
            Some((id, score))
        })
        .collect();
    let lower_better = using == "d";
    hits.sort_by(|a, b| {
        let o = if lower_better { a.1.total_cmp(&b.1) } else { b.1.total_cmp(&a.1) };
        o.then(a.0.cmp(&b.0))
    });
    hits.truncate(k);
    hits
}

fn check(c: &quiver::Collection, model: &Model, rng: &mut StdRng, step: usize) {
    assert_eq!(c.len(), model.len(), "step {step}");
    let ids: Vec<PointId> = model.keys().map(|&i| PointId::Num(i)).collect();
    let got = c.get(&ids, With::ALL).unwrap();
    for (r, (id, (main, named))) in got.iter().zip(model) {
        assert_eq!(r.id, PointId::Num(*id));
        assert_eq!(r.vector.clone().unwrap_or_default(), *main, "step {step}, point {id}");
        assert_eq!(&r.vectors, named, "step {step}, point {id}");
    }
    for name in ["", "d", "m", "s", "b"] {
        let want = model
            .values()
            .filter(|(main, n)| if name.is_empty() { !main.is_empty() } else { n.contains_key(name) })
            .count();
        assert_eq!(c.count_vector(name).unwrap(), want, "step {step}: count of {name:?}");
        let f = Filter::from_json(&serde_json::json!({"must": [{"has_vector": name}]})).unwrap();
        assert_eq!(c.count(Some(&f)), want, "step {step}: has_vector {name:?}");
    }
    let queries = [
        ("", QueryVector::Dense(dense(rng, 3))),
        ("d", QueryVector::Dense(dense(rng, 2))),
        ("m", QueryVector::Multi(vec![dense(rng, 2), dense(rng, 2)])),
        ("s", QueryVector::Sparse(sparse(rng))),
        ("b", QueryVector::Sparse(sparse(rng))),
    ];
    for (using, q) in &queries {
        let k = rng.gen_range(1..8);
        let mut req = SearchRequest::new(Vec::new(), k);
        req.with_payload = false;
        let got: Vec<(u64, f32)> = c
            .search_named(using, q, &req)
            .unwrap()
            .into_iter()
            .map(|h| match h.id {
                PointId::Num(n) => (n, h.score),
                _ => unreachable!(),
            })
            .collect();
        let want = brute(model, using, q, k);
        assert_eq!(got.len(), want.len(), "step {step}, space {using:?}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0),
                "step {step}, space {using:?}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn named_vectors_follow_the_model_through_writes_flushes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(13);
    let mut model = Model::new();
    let mut db = Database::open(dir.path()).unwrap();
    let mut c = db.create_collection("named", config()).unwrap();
    for step in 0..120 {
        match rng.gen_range(0..10) {
            0..=4 => {
                let n = rng.gen_range(1..20);
                let points: Vec<Point> = (0..n)
                    .map(|_| {
                        let id = rng.gen_range(0..60);
                        random_point(&mut rng, id)
                    })
                    .collect();
                // A point without any vector is allowed; a batch is applied in order.
                c.upsert(points.clone()).unwrap();
                for p in points {
                    model.insert(p.id.as_num(), (p.vector, p.vectors));
                }
            }
            5 => {
                let ids: Vec<PointId> = (0..5).map(|_| PointId::Num(rng.gen_range(0..60))).collect();
                c.delete(&PointSelector::Ids(ids.clone())).unwrap();
                for id in ids {
                    model.remove(&id.as_num());
                }
            }
            6 => {
                let Some(&id) = model.keys().nth(rng.gen_range(0..model.len().max(1))) else {
                    continue;
                };
                let update = Point::new(id, dense(&mut rng, 3)).with_named("s", VectorData::Sparse(sparse(&mut rng)));
                c.update_vectors(vec![update.clone()]).unwrap();
                let e = model.get_mut(&id).unwrap();
                e.0 = update.vector;
                e.1.extend(update.vectors);
            }
            7 => {
                let Some(&id) = model.keys().nth(rng.gen_range(0..model.len().max(1))) else {
                    continue;
                };
                let names = vec![String::new(), "m".to_string()];
                c.delete_vectors(&PointSelector::Ids(vec![PointId::Num(id)]), &names).unwrap();
                let e = model.get_mut(&id).unwrap();
                e.0.clear();
                e.1.remove("m");
            }
            8 => {
                if rng.gen_bool(0.5) {
                    c.flush().unwrap();
                } else {
                    c.compact().unwrap();
                }
            }
            _ => {
                drop(c);
                drop(db);
                db = Database::open(dir.path()).unwrap();
                c = db.collection("named").unwrap();
            }
        }
        check(&c, &model, &mut rng, step);
    }
}

#[test]
fn bad_named_vectors_are_typed_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("named", config()).unwrap();
    c.upsert(vec![Point::new(1u64, vec![1.0, 0.0, 0.0])]).unwrap();
    let bad = [
        Point::new(2u64, vec![]).with_named("nope", VectorData::Dense(vec![1.0])),
        Point::new(2u64, vec![]).with_named("d", VectorData::Dense(vec![1.0, 2.0, 3.0])),
        Point::new(2u64, vec![]).with_named("d", VectorData::Sparse(SparseVector::default())),
        Point::new(2u64, vec![]).with_named(
            "s",
            VectorData::Sparse(SparseVector {
                indices: vec![1, 1],
                values: vec![1.0, 2.0],
            }),
        ),
        Point::new(2u64, vec![]).with_named("m", VectorData::Multi(vec![])),
        Point::new(2u64, vec![]).with_named("m", VectorData::Multi(vec![vec![1.0, f32::NAN]])),
        Point::new(2u64, vec![1.0]),
    ];
    for p in bad {
        let e = c.upsert(vec![p.clone()]).unwrap_err();
        assert_eq!(e.kind(), quiver::ErrorKind::BadInput, "{p:?}: {e}");
    }
    assert_eq!(c.len(), 1);
    assert!(matches!(
        c.search_named("nope", &QueryVector::Dense(vec![1.0]), &SearchRequest::new(vec![], 1)),
        Err(Error::VectorNameNotFound(_))
    ));
    assert!(c
        .search_named("s", &QueryVector::Dense(vec![1.0]), &SearchRequest::new(vec![], 1))
        .is_err());
    // A point's named vectors must fit in one WAL record: 4,096 rows of 4,096 floats (64 MiB) do not.
    let mut big = CollectionConfig::new(2, Metric::Dot);
    big.vectors.dense.insert(
        "colbert".into(),
        DenseParams {
            dim: 4096,
            metric: Metric::Dot,
            multivector: true,
        },
    );
    let b = db.create_collection("big", big).unwrap();
    let rows = vec![vec![0.5f32; 4096]; 4096];
    let e = b
        .upsert(vec![Point::new(1u64, vec![]).with_named("colbert", VectorData::Multi(rows))])
        .unwrap_err();
    assert!(e.to_string().contains("more than the limit"), "{e}");
    b.upsert(vec![
        Point::new(1u64, vec![]).with_named("colbert", VectorData::Multi(vec![vec![0.5; 4096]; 16]))
    ])
    .unwrap();
    // A plain collection still requires its one vector.
    let plain = db.create_collection("plain", CollectionConfig::new(2, Metric::Dot)).unwrap();
    assert!(plain.upsert(vec![Point::new(1u64, vec![])]).is_err());
}

/// Multi-stage queries: dense and sparse candidates fused by RRF, and dense candidates
/// rescored by a multivector, against the same computation done by hand.
#[test]
fn query_stages_fuse_and_rescore() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("named", config()).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let mut model = Model::new();
    let points: Vec<Point> = (0..200).map(|i| random_point(&mut rng, i)).collect();
    c.upsert(points.clone()).unwrap();
    for p in points {
        model.insert(p.id.as_num(), (p.vector, p.vectors));
    }
    let qd = dense(&mut rng, 3);
    let qs = sparse(&mut rng);
    let stage = |using: &str, q: QueryVector, limit: usize| QueryStage {
        using: Some(using.to_string()),
        ..QueryStage::nearest(q, limit)
    };
    let fused = QueryStage {
        prefetch: vec![
            stage("", QueryVector::Dense(qd.clone()), 20),
            stage("s", QueryVector::Sparse(qs.clone()), 20),
        ],
        query: Some(StageQuery::Fusion(FusionKind::Rrf { k: 2.0, weights: None })),
        ..QueryStage::nearest(QueryVector::Dense(vec![]), 10)
    };
    let got: Vec<u64> = c.query(&fused, 0, With::NOTHING).unwrap().iter().map(|h| h.id.as_num()).collect();
    let dense_rank: Vec<u64> = brute(&model, "", &QueryVector::Dense(qd.clone()), 20).iter().map(|h| h.0).collect();
    let sparse_rank: Vec<u64> = brute(&model, "s", &QueryVector::Sparse(qs.clone()), 20)
        .iter()
        .map(|h| h.0)
        .collect();
    let mut want: Vec<(u64, f32, usize)> = Vec::new();
    for (first, rank) in [&dense_rank, &sparse_rank].iter().enumerate() {
        for (i, id) in rank.iter().enumerate() {
            let s = 1.0 / (i as f32 + 2.0);
            match want.iter_mut().find(|w| w.0 == *id) {
                Some(w) => w.1 += s,
                None => want.push((*id, s, first * 1000 + i)),
            }
        }
    }
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    let want_scores: Vec<f32> = want.iter().take(10).map(|w| w.1).collect();
    let got_scores: Vec<f32> = c.query(&fused, 0, With::NOTHING).unwrap().iter().map(|h| h.score).collect();
    assert_eq!(got.len(), 10);
    for (g, w) in got_scores.iter().zip(&want_scores) {
        assert!((g - w).abs() < 1e-6, "{got_scores:?} vs {want_scores:?}");
    }
    // Rescoring: the dense top 30, ordered by MaxSim against a multivector query.
    let qm = vec![dense(&mut rng, 2), dense(&mut rng, 2)];
    let rescored = QueryStage {
        prefetch: vec![stage("", QueryVector::Dense(qd.clone()), 30)],
        ..stage("m", QueryVector::Multi(qm.clone()), 5)
    };
    let got: Vec<u64> = c
        .query(&rescored, 0, With::NOTHING)
        .unwrap()
        .iter()
        .map(|h| h.id.as_num())
        .collect();
    let candidates: std::collections::BTreeSet<u64> = brute(&model, "", &QueryVector::Dense(qd), 30).iter().map(|h| h.0).collect();
    let only: Model = model
        .iter()
        .filter(|(id, _)| candidates.contains(id))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let want: Vec<u64> = brute(&only, "m", &QueryVector::Multi(qm), 5).iter().map(|h| h.0).collect();
    assert_eq!(got, want);
}

trait AsNum {
    fn as_num(&self) -> u64;
}

impl AsNum for PointId {
    fn as_num(&self) -> u64 {
        match self {
            PointId::Num(n) => *n,
            PointId::Uuid(_) => unreachable!("numeric ids only"),
        }
    }
}

/// `has_vector` with a name the collection does not have matches no point.
#[test]
fn has_vector_of_an_unknown_name_matches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("plain", CollectionConfig::new(2, Metric::Dot)).unwrap();
    c.upsert(vec![Point::new(1u64, vec![1.0, 0.0]), Point::new(2u64, vec![0.0, 1.0])])
        .unwrap();
    let f = |name: &str| Filter::from_json(&serde_json::json!({"must": [{"has_vector": name}]})).unwrap();
    assert_eq!(c.count(Some(&f(""))), 2);
    assert_eq!(c.count(Some(&f("dense"))), 0);
}

/// Discovery and context search on a named dense vector score every point as Qdrant defines
/// it; a random sample returns the allowed points in an order that changes between calls.
#[test]
fn discover_context_and_sample_stages() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("named", config()).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let mut model = Model::new();
    let points: Vec<Point> = (0..40).map(|i| random_point(&mut rng, i)).collect();
    c.upsert(points.clone()).unwrap();
    for p in points {
        model.insert(p.id.as_num(), (p.vector, p.vectors));
    }
    let l2 = |a: &[f32], b: &[f32]| -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let fast_sigmoid = |x: f32| x / (1.0 + x.abs());
    let (t, p, n) = (dense(&mut rng, 2), dense(&mut rng, 2), dense(&mut rng, 2));
    for with_target in [true, false] {
        let d = quiver::Discover {
            target: with_target.then(|| t.clone()),
            context: vec![(p.clone(), n.clone())],
            using: Some("d".into()),
        };
        let got = c.search_discover(&SearchRequest::new(vec![], 5), &d).unwrap();
        let mut want: Vec<(u64, f32)> = model
            .iter()
            .filter_map(|(id, (_, named))| match named.get("d") {
                Some(VectorData::Dense(v)) => {
                    let (sp, sn) = (l2(&p, v), l2(&n, v));
                    let score = if with_target {
                        sp.total_cmp(&sn) as i32 as f32 + 0.5 * (fast_sigmoid(l2(&t, v)) + 1.0)
                    } else {
                        fast_sigmoid((sp - sn - f32::EPSILON).min(0.0))
                    };
                    Some((*id, score))
                }
                _ => None,
            })
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (g, w) in got.iter().zip(&want) {
            assert!((g.score - w.1).abs() < 1e-5, "{with_target}: {got:?} vs {want:?}");
        }
    }
    let sample = QueryStage {
        query: Some(StageQuery::Sample),
        ..QueryStage::nearest(QueryVector::Dense(vec![]), 100)
    };
    let mut orders = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let ids: Vec<u64> = c.query(&sample, 0, With::NOTHING).unwrap().iter().map(|h| h.id.as_num()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..40).collect::<Vec<u64>>());
        orders.insert(ids);
    }
    assert!(orders.len() > 1, "the order changes between calls");
}

/// Recommendation in a multivector space against MaxSim computed here: best-score and
/// sum-of-scores over every point, average-vector as one MaxSim query of the positive rows and
/// the negated negative rows (Qdrant's rule).
#[test]
fn recommend_on_multivectors_matches_max_sim_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", config()).unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    let mut docs: BTreeMap<u64, Vec<Vec<f32>>> = BTreeMap::new();
    let mut points = Vec::new();
    for id in 0..60u64 {
        let rows: Vec<Vec<f32>> = (0..rng.gen_range(1..4)).map(|_| dense(&mut rng, 2)).collect();
        docs.insert(id, rows.clone());
        let mut p = Point::new(PointId::Num(id), dense(&mut rng, 3));
        p.vectors.insert("m".into(), VectorData::Multi(rows));
        points.push(p);
    }
    c.upsert(points).unwrap();
    let pos = vec![vec![0.5f32, -0.25], vec![1.0, 1.0]];
    let neg = vec![vec![-1.0f32, 0.5]];
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let sim = |ex: &[Vec<f32>], doc: &[Vec<f32>]| max_sim(ex, doc, |a, b| dot(a, b));
    let scaled = |x: f32| 0.5 * (x / (1.0 + x.abs()) + 1.0);
    for strategy in [
        RecommendStrategy::BestScore,
        RecommendStrategy::SumScores,
        RecommendStrategy::AverageVector,
    ] {
        let rec = Recommend {
            positive: vec![QueryVector::Multi(pos.clone())],
            negative: vec![QueryVector::Dense(neg[0].clone())],
            strategy,
            using: Some("m".into()),
        };
        let mut req = SearchRequest::new(Vec::new(), 5);
        req.with_payload = false;
        let got: Vec<(u64, f32)> = c
            .search_recommend(&req, &rec)
            .unwrap()
            .into_iter()
            .map(|h| (h.id.to_string().parse().unwrap(), h.score))
            .collect();
        let mut want: Vec<(u64, f32)> = docs
            .iter()
            .map(|(id, doc)| {
                let (p, n) = (sim(&pos, doc), sim(&neg, doc));
                let s = match strategy {
                    RecommendStrategy::SumScores => p - n,
                    RecommendStrategy::BestScore => {
                        if p > n {
                            scaled(p)
                        } else {
                            -scaled(n)
                        }
                    }
                    RecommendStrategy::AverageVector => {
                        let mut q = pos.clone();
                        q.extend(neg.iter().map(|r| r.iter().map(|x| -x).collect::<Vec<f32>>()));
                        sim(&q, doc)
                    }
                };
                (*id, s)
            })
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        want.truncate(5);
        assert_eq!(got.len(), 5);
        for (g, w) in got.iter().zip(&want) {
            assert!((g.1 - w.1).abs() < 1e-4, "{strategy:?}: got {got:?}, want {want:?}");
        }
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            want.iter().map(|w| w.0).collect::<Vec<_>>(),
            "{strategy:?}"
        );
    }
    // A sparse example in a multivector space is refused by name.
    let bad = Recommend {
        positive: vec![QueryVector::Sparse(SparseVector {
            indices: vec![1],
            values: vec![1.0],
        })],
        using: Some("m".into()),
        ..Recommend::default()
    };
    assert!(c
        .search_recommend(&SearchRequest::new(Vec::new(), 3), &bad)
        .unwrap_err()
        .to_string()
        .contains("multivector"));
}

/// Relevance feedback against its formula computed here: `a * sim(target)` plus each ordered
/// pair of examples with a higher judged score first, weighted `difference^b * c`.
#[test]
fn relevance_feedback_matches_its_formula() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", CollectionConfig::new(3, Metric::Dot)).unwrap();
    let mut rng = StdRng::seed_from_u64(33);
    let vecs: Vec<Vec<f32>> = (0..50).map(|_| dense(&mut rng, 3)).collect();
    c.upsert(
        vecs.iter()
            .enumerate()
            .map(|(i, v)| Point::new(PointId::Num(i as u64), v.clone()))
            .collect(),
    )
    .unwrap();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let (t, e1, e2, e3) = (dense(&mut rng, 3), dense(&mut rng, 3), dense(&mut rng, 3), dense(&mut rng, 3));
    let f = quiver::collection::Feedback {
        target: t.clone(),
        feedback: vec![(e1.clone(), 0.9), (e2.clone(), 0.2), (e3.clone(), 0.5)],
        a: 0.7,
        b: 2.0,
        c: 1.5,
        using: None,
    };
    let got = c.search_feedback(&SearchRequest::new(vec![], 5), &f).unwrap();
    let ex = [(&e1, 0.9f32), (&e2, 0.2), (&e3, 0.5)];
    let mut want: Vec<(u64, f32)> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut s = 0.7 * dot(&t, v);
            for (p, sp) in ex {
                for (n, sn) in ex {
                    if sp - sn > 0.0 {
                        s += (sp - sn).powf(2.0) * 1.5 * (dot(p, v) - dot(n, v));
                    }
                }
            }
            (i as u64, s)
        })
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.id, PointId::Num(w.0));
        assert!((g.score - w.1).abs() < 1e-4, "{} vs {}", g.score, w.1);
    }
    // One example makes no pair: the plain similarity times a.
    let one = quiver::collection::Feedback {
        feedback: vec![(e1, 0.9)],
        a: 1.0,
        ..f
    };
    let plain = c.search(&SearchRequest::new(t, 5)).unwrap();
    let fb = c.search_feedback(&SearchRequest::new(vec![], 5), &one).unwrap();
    assert_eq!(
        fb.iter().map(|h| h.id).collect::<Vec<_>>(),
        plain.iter().map(|h| h.id).collect::<Vec<_>>()
    );
}
