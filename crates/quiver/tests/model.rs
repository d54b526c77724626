//! The collection against a trivially correct model (a `BTreeMap`), through random sequences of
//! writes, flushes, compactions and reopenings (fixed seeds, printed). After every step the
//! collection's count, scroll, get and exact search must agree with the model.

use quiver::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

type Model = BTreeMap<PointId, (Vec<f32>, Payload)>;

const DIM: usize = 6;

fn random_id(rng: &mut ChaCha8Rng) -> PointId {
    if rng.gen_bool(0.15) {
        PointId::Uuid(uuid::Uuid::from_u128(rng.gen_range(0..40)))
    } else {
        PointId::Num(rng.gen_range(0..150))
    }
}

fn random_payload(rng: &mut ChaCha8Rng) -> Payload {
    let mut p = Payload::new();
    if rng.gen_bool(0.8) {
        let color = ["red", "green", "blue"][rng.gen_range(0..3)];
        p.insert("g".into(), json!(color));
    }
    if rng.gen_bool(0.7) {
        p.insert("n".into(), json!(rng.gen_range(0..20)));
    }
    if rng.gen_bool(0.3) {
        p.insert("o".into(), json!({"x": rng.gen_range(0.0..1.0), "y": "z"}));
    }
    p
}

fn random_filter(rng: &mut ChaCha8Rng) -> Filter {
    let color = ["red", "green", "blue"][rng.gen_range(0..3)];
    let v = match rng.gen_range(0..4) {
        0 => json!({"must": [{"key": "g", "match": {"value": color}}]}),
        1 => json!({"must": [{"key": "n", "range": {"gte": rng.gen_range(0..20), "lt": rng.gen_range(0..25)}}]}),
        2 => json!({"should": [{"key": "g", "match": {"value": "red"}}, {"key": "o.x", "range": {"lt": 0.5}}]}),
        _ => json!({"must_not": [{"key": "n", "match": {"any": [1, 2, 3, 4, 5]}}]}),
    };
    Filter::from_json(&v).unwrap()
}

fn metric_model_score(metric: Metric, q: &[f32], v: &[f32]) -> f32 {
    match metric {
        Metric::Cosine | Metric::Dot => q.iter().zip(v).map(|(a, b)| a * b).sum(),
        Metric::Euclid => q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt(),
        Metric::Manhattan => q.iter().zip(v).map(|(a, b)| (a - b).abs()).sum(),
    }
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

#[track_caller]
fn assert_agrees(c: &Collection, model: &Model, metric: Metric, rng: &mut ChaCha8Rng, step: usize) {
    assert_eq!(c.count(None), model.len(), "step {step}: count");
    // Scroll everything in pages of 7.
    let mut got = Vec::new();
    let mut offset = None;
    loop {
        let page = c
            .scroll(&ScrollRequest {
                offset,
                limit: 7,
                filter: None,
                with_payload: true,
                with_vector: true,
            })
            .unwrap();
        got.extend(page.points);
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => break,
        }
    }
    assert_eq!(got.len(), model.len(), "step {step}: scroll length");
    for (r, (id, (v, p))) in got.iter().zip(model) {
        assert_eq!(r.id, *id, "step {step}: scroll order");
        assert_eq!(r.payload.as_ref().unwrap(), p, "step {step}: payload of {id}");
        let rv = r.vector.as_ref().unwrap();
        assert!(rv.iter().zip(v).all(|(a, b)| (a - b).abs() < 1e-5), "step {step}: vector of {id}");
    }
    // Filtered count and scroll.
    let f = random_filter(rng);
    let want: Vec<PointId> = model.iter().filter(|(id, (_, p))| f.matches(**id, p)).map(|(id, _)| *id).collect();
    assert_eq!(c.count(Some(&f)), want.len(), "step {step}: filtered count {f:?}");
    let page = c
        .scroll(&ScrollRequest {
            offset: None,
            limit: 1000,
            filter: Some(f.clone()),
            with_payload: false,
            with_vector: false,
        })
        .unwrap();
    assert_eq!(
        page.points.iter().map(|r| r.id).collect::<Vec<_>>(),
        want,
        "step {step}: filtered scroll"
    );
    // Exact search with and without the filter.
    let q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let qm = if metric == Metric::Cosine {
        normalized(q.clone())
    } else {
        q.clone()
    };
    for filter in [None, Some(f)] {
        let mut all: Vec<(PointId, f32)> = model
            .iter()
            .filter(|(id, (_, p))| filter.as_ref().is_none_or(|f| f.matches(**id, p)))
            .map(|(id, (v, _))| (*id, metric_model_score(metric, &qm, v)))
            .collect();
        if metric.higher_is_better() {
            all.sort_by(|a, b| b.1.total_cmp(&a.1));
        } else {
            all.sort_by(|a, b| a.1.total_cmp(&b.1));
        }
        all.truncate(5);
        let mut req = SearchRequest::new(q.clone(), 5);
        req.filter = filter.clone();
        let hits = c.search(&req).unwrap();
        assert_eq!(hits.len(), all.len(), "step {step}: hit count");
        for (h, w) in hits.iter().zip(&all) {
            assert_eq!(h.id, w.0, "step {step}: hit id (filter {filter:?})");
            assert!((h.score - w.1).abs() < 1e-4, "step {step}: score {} vs {}", h.score, w.1);
        }
    }
}

fn run(seed: u64, metric: Metric, steps: usize) {
    run_with(seed, CollectionConfig::new(DIM, metric), steps)
}

fn run_with(seed: u64, config: CollectionConfig, steps: usize) {
    run_with_settings(seed, config, &CollectionSettings::default(), steps)
}

fn run_with_settings(seed: u64, config: CollectionConfig, settings: &CollectionSettings, steps: usize) {
    let metric = config.metric;
    eprintln!("model test: seed {seed}, {config:?}, {settings:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(dir.path()).unwrap();
    let mut c = db.create_collection_with("m", config, settings).unwrap();
    let mut model = Model::new();
    let store_vec = |v: Vec<f32>| if metric == Metric::Cosine { normalized(v) } else { v };
    for step in 0..steps {
        match rng.gen_range(0..100) {
            0..=39 => {
                let n = rng.gen_range(1..20);
                let mut points = Vec::new();
                for _ in 0..n {
                    let id = random_id(&mut rng);
                    let v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
                    let p = random_payload(&mut rng);
                    points.push(Point {
                        id,
                        vector: v.clone(),
                        vectors: Default::default(),
                        payload: Some(p.clone()),
                    });
                }
                c.upsert(points.clone()).unwrap();
                for p in points {
                    model.insert(p.id, (store_vec(p.vector), p.payload.unwrap()));
                }
            }
            40..=49 => {
                let ids: Vec<PointId> = (0..rng.gen_range(1..6)).map(|_| random_id(&mut rng)).collect();
                let ack = c.delete(&PointSelector::Ids(ids.clone())).unwrap();
                let mut existed = 0;
                for id in &ids {
                    existed += model.remove(id).is_some() as usize;
                }
                assert!(ack.affected >= existed.min(1) || existed == 0);
            }
            50..=54 => {
                let f = random_filter(&mut rng);
                let ack = c.delete(&PointSelector::Filter(f.clone())).unwrap();
                let before = model.len();
                model.retain(|id, (_, p)| !f.matches(*id, p));
                assert_eq!(ack.affected, before - model.len(), "step {step}: delete by filter");
            }
            55..=62 => {
                let ids: Vec<PointId> = (0..3).map(|_| random_id(&mut rng)).collect();
                let extra = json!({"n": rng.gen_range(0..20), "extra": true}).as_object().unwrap().clone();
                c.set_payload(&PointSelector::Ids(ids.clone()), extra.clone()).unwrap();
                for id in &ids {
                    if let Some((_, p)) = model.get_mut(id) {
                        for (k, v) in &extra {
                            p.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            63..=66 => {
                let f = random_filter(&mut rng);
                let new = json!({"g": "blue"}).as_object().unwrap().clone();
                c.overwrite_payload(&PointSelector::Filter(f.clone()), new.clone()).unwrap();
                for (id, (_, p)) in model.iter_mut() {
                    if f.matches(*id, p) {
                        *p = new.clone();
                    }
                }
            }
            67..=70 => {
                let ids: Vec<PointId> = (0..4).map(|_| random_id(&mut rng)).collect();
                c.delete_payload_keys(&PointSelector::Ids(ids.clone()), vec!["n".into(), "o.x".into()])
                    .unwrap();
                for id in &ids {
                    if let Some((_, p)) = model.get_mut(id) {
                        p.remove("n");
                        if let Some(Value::Object(o)) = p.get_mut("o") {
                            o.remove("x");
                        }
                    }
                }
            }
            71..=72 => {
                let id = random_id(&mut rng);
                c.clear_payload(&PointSelector::Ids(vec![id])).unwrap();
                if let Some((_, p)) = model.get_mut(&id) {
                    p.clear();
                }
            }
            73..=78 => c.flush().unwrap(),
            79..=81 => c.compact().unwrap(),
            82..=85 => {
                let (key, kind) = [
                    ("g", PayloadIndexType::Keyword),
                    ("n", PayloadIndexType::Integer),
                    ("o.x", PayloadIndexType::Float),
                    ("n", PayloadIndexType::Float),
                ][rng.gen_range(0..4)];
                c.create_payload_index(key, kind).unwrap();
            }
            _ => {
                drop(c);
                drop(db);
                db = Database::open(dir.path()).unwrap();
                c = db.collection("m").unwrap();
            }
        }
        assert_agrees(&c, &model, metric, &mut rng, step);
    }
}

#[test]
fn matches_model_euclid() {
    run(1, Metric::Euclid, 300);
}

#[test]
fn matches_model_cosine() {
    run(2, Metric::Cosine, 300);
}

#[test]
fn matches_model_dot() {
    run(3, Metric::Dot, 200);
}

#[test]
fn matches_model_manhattan() {
    run(4, Metric::Manhattan, 200);
}

/// Vectors on disk: after a compaction or a reopen the base segment's vectors are read in
/// place from its map, later rows from the scratch file; exact scans cross both.
#[test]
fn matches_model_with_vectors_on_disk() {
    let mut settings = CollectionSettings::default();
    settings.merge_hint("vectors.", &serde_json::Map::from_iter([("on_disk".to_string(), json!(true))]));
    run_with_settings(6, CollectionConfig::new(DIM, Metric::Dot), &settings, 300);
}

#[test]
fn matches_model_with_group_commit() {
    let config = CollectionConfig {
        dim: DIM,
        metric: Metric::Euclid,
        durability: Durability::Periodic { interval_ms: 5 },
        ..CollectionConfig::new(DIM, Metric::Euclid)
    };
    run_with(5, config, 200);
}
