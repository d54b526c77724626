//! Filters against a simple, independent evaluator: random documents (as plain Rust structs)
//! and random filters (as a small AST rendered to Qdrant JSON). The collection's answer, with
//! and without payload indexes, must equal the model's for every filter. Seeds are printed.

use quiver::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const WORDS: [&str; 4] = ["ant", "bee", "cat", "dog"];

#[derive(Debug, Clone)]
struct Doc {
    id: u64,
    /// None: missing; Some(None): null; Some(Some(w)): a keyword.
    color: Option<Option<&'static str>>,
    n: Option<i64>,
    x: Option<f64>,
    /// None: missing; Some(v): an array (maybe empty).
    tags: Option<Vec<&'static str>>,
    flag: Option<bool>,
    /// `inner.k`
    k: Option<i64>,
}

impl Doc {
    fn random(id: u64, rng: &mut ChaCha8Rng) -> Doc {
        let word = |rng: &mut ChaCha8Rng| WORDS[rng.gen_range(0..WORDS.len())];
        Doc {
            id,
            color: match rng.gen_range(0..5) {
                0 => None,
                1 => Some(None),
                _ => Some(Some(word(rng))),
            },
            n: rng.gen_bool(0.8).then(|| rng.gen_range(-5..6)),
            x: rng.gen_bool(0.8).then(|| (rng.gen_range(-40..40) as f64) / 8.0),
            tags: rng.gen_bool(0.7).then(|| (0..rng.gen_range(0..4)).map(|_| word(rng)).collect()),
            flag: rng.gen_bool(0.7).then(|| rng.gen_bool(0.5)),
            k: rng.gen_bool(0.5).then(|| rng.gen_range(0..4)),
        }
    }

    fn payload(&self) -> Payload {
        let mut p = Payload::new();
        match self.color {
            None => {}
            Some(None) => {
                p.insert("color".into(), Value::Null);
            }
            Some(Some(w)) => {
                p.insert("color".into(), json!(w));
            }
        }
        if let Some(n) = self.n {
            p.insert("n".into(), json!(n));
        }
        if let Some(x) = self.x {
            p.insert("x".into(), json!(x));
        }
        if let Some(t) = &self.tags {
            p.insert("tags".into(), json!(t));
        }
        if let Some(f) = self.flag {
            p.insert("flag".into(), json!(f));
        }
        if let Some(k) = self.k {
            p.insert("inner".into(), json!({"k": k}));
        }
        p
    }
}

#[derive(Debug, Clone)]
enum Cond {
    ColorIs(&'static str),
    TagsHave(&'static str),
    ColorAny(Vec<&'static str>),
    TagsExcept(Vec<&'static str>),
    NIs(i64),
    NAny(Vec<i64>),
    NRange(Option<i64>, Option<i64>),
    XRange { gt: Option<f64>, lte: Option<f64> },
    KRange(i64, i64),
    FlagIs(bool),
    IsEmpty(&'static str),
    IsNull(&'static str),
    HasId(Vec<u64>),
    Sub(Box<F>),
}

#[derive(Debug, Clone, Default)]
struct F {
    must: Vec<Cond>,
    should: Vec<Cond>,
    must_not: Vec<Cond>,
}

fn eval_cond(c: &Cond, d: &Doc) -> bool {
    match c {
        Cond::ColorIs(w) => d.color == Some(Some(*w)),
        Cond::TagsHave(w) => d.tags.as_ref().is_some_and(|t| t.contains(w)),
        Cond::ColorAny(ws) => matches!(d.color, Some(Some(c)) if ws.contains(&c)),
        Cond::TagsExcept(ws) => d.tags.as_ref().is_some_and(|t| t.iter().any(|x| !ws.contains(x))),
        Cond::NIs(v) => d.n == Some(*v),
        Cond::NAny(vs) => d.n.is_some_and(|n| vs.contains(&n)),
        Cond::NRange(lo, hi) => d.n.is_some_and(|n| lo.is_none_or(|l| n >= l) && hi.is_none_or(|h| n < h)),
        Cond::XRange { gt, lte } => d.x.is_some_and(|x| gt.is_none_or(|g| x > g) && lte.is_none_or(|l| x <= l)),
        Cond::KRange(lo, hi) => d.k.is_some_and(|k| k >= *lo && k <= *hi),
        Cond::FlagIs(b) => d.flag == Some(*b),
        Cond::IsEmpty(field) => match *field {
            "color" => matches!(d.color, None | Some(None)),
            "tags" => d.tags.as_ref().is_none_or(|t| t.is_empty()),
            _ => d.n.is_none(),
        },
        Cond::IsNull(_) => d.color == Some(None),
        Cond::HasId(ids) => ids.contains(&d.id),
        Cond::Sub(f) => eval(f, d),
    }
}

fn eval(f: &F, d: &Doc) -> bool {
    f.must.iter().all(|c| eval_cond(c, d))
        && (f.should.is_empty() || f.should.iter().any(|c| eval_cond(c, d)))
        && !f.must_not.iter().any(|c| eval_cond(c, d))
}

fn cond_json(c: &Cond) -> Value {
    match c {
        Cond::ColorIs(w) => json!({"key": "color", "match": {"value": w}}),
        Cond::TagsHave(w) => json!({"key": "tags", "match": {"value": w}}),
        Cond::ColorAny(ws) => json!({"key": "color", "match": {"any": ws}}),
        Cond::TagsExcept(ws) => json!({"key": "tags", "match": {"except": ws}}),
        Cond::NIs(v) => json!({"key": "n", "match": {"value": v}}),
        Cond::NAny(vs) => json!({"key": "n", "match": {"any": vs}}),
        Cond::NRange(lo, hi) => json!({"key": "n", "range": {"gte": lo, "lt": hi}}),
        Cond::XRange { gt, lte } => json!({"key": "x", "range": {"gt": gt, "lte": lte}}),
        Cond::KRange(lo, hi) => json!({"key": "inner.k", "range": {"gte": lo, "lte": hi}}),
        Cond::FlagIs(b) => json!({"key": "flag", "match": {"value": b}}),
        Cond::IsEmpty(field) => json!({"is_empty": {"key": field}}),
        Cond::IsNull(field) => json!({"is_null": {"key": field}}),
        Cond::HasId(ids) => json!({"has_id": ids}),
        Cond::Sub(f) => filter_json(f),
    }
}

fn filter_json(f: &F) -> Value {
    let list = |cs: &Vec<Cond>| Value::Array(cs.iter().map(cond_json).collect());
    json!({"must": list(&f.must), "should": list(&f.should), "must_not": list(&f.must_not)})
}

fn random_cond(rng: &mut ChaCha8Rng, depth: usize) -> Cond {
    let word = |rng: &mut ChaCha8Rng| WORDS[rng.gen_range(0..WORDS.len())];
    let opt = |rng: &mut ChaCha8Rng, lo: i64, hi: i64| rng.gen_bool(0.8).then(|| rng.gen_range(lo..hi));
    match rng.gen_range(0..if depth < 2 { 15 } else { 14 }) {
        0 => Cond::ColorIs(word(rng)),
        1 => Cond::TagsHave(word(rng)),
        2 => Cond::ColorAny((0..rng.gen_range(1..3)).map(|_| word(rng)).collect()),
        3 => Cond::TagsExcept((0..rng.gen_range(1..3)).map(|_| word(rng)).collect()),
        4 => Cond::NIs(rng.gen_range(-5..6)),
        5 => Cond::NAny((0..rng.gen_range(1..4)).map(|_| rng.gen_range(-5..6)).collect()),
        6 => Cond::NRange(opt(rng, -6, 6), opt(rng, -6, 7)),
        7 => Cond::XRange {
            gt: opt(rng, -40, 40).map(|v| v as f64 / 8.0),
            lte: opt(rng, -40, 40).map(|v| v as f64 / 8.0 + 0.0625),
        },
        8 => Cond::KRange(rng.gen_range(0..3), rng.gen_range(0..4)),
        9 => Cond::FlagIs(rng.gen_bool(0.5)),
        10 => Cond::IsEmpty(["color", "tags", "n"][rng.gen_range(0..3)]),
        11 => Cond::IsNull("color"),
        12 => Cond::HasId((0..rng.gen_range(0..8)).map(|_| rng.gen_range(0..120)).collect()),
        _ => Cond::Sub(Box::new(random_filter(rng, depth + 1))),
    }
}

fn random_filter(rng: &mut ChaCha8Rng, depth: usize) -> F {
    let mut f = F::default();
    for _ in 0..rng.gen_range(0..3) {
        f.must.push(random_cond(rng, depth));
    }
    for _ in 0..rng.gen_range(0..3) {
        f.should.push(random_cond(rng, depth));
    }
    for _ in 0..rng.gen_range(0..2) {
        f.must_not.push(random_cond(rng, depth));
    }
    f
}

#[test]
fn filters_agree_with_the_model_with_and_without_indexes() {
    let seed = 77u64;
    eprintln!("filter property test: seed {seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let plain = db.create_collection("plain", CollectionConfig::new(2, Metric::Dot)).unwrap();
    let indexed = db.create_collection("indexed", CollectionConfig::new(2, Metric::Dot)).unwrap();
    for (key, kind) in [
        ("color", PayloadIndexType::Keyword),
        ("tags", PayloadIndexType::Keyword),
        ("n", PayloadIndexType::Integer),
        ("x", PayloadIndexType::Float),
        ("inner.k", PayloadIndexType::Integer),
        ("flag", PayloadIndexType::Bool),
    ] {
        indexed.create_payload_index(key, kind).unwrap();
    }
    let docs: Vec<Doc> = (0..120).map(|i| Doc::random(i, &mut rng)).collect();
    let points: Vec<Point> = docs
        .iter()
        .map(|d| Point::new(d.id, vec![1.0, d.id as f32]).with_payload(d.payload()))
        .collect();
    plain.upsert(points.clone()).unwrap();
    indexed.upsert(points).unwrap();
    let mut nontrivial = 0;
    for case in 0..1500 {
        let f = random_filter(&mut rng, 0);
        let json = filter_json(&f);
        let parsed = Filter::from_json(&json).unwrap_or_else(|e| panic!("case {case}: {json}: {e}"));
        let want: BTreeSet<PointId> = docs.iter().filter(|d| eval(&f, d)).map(|d| PointId::Num(d.id)).collect();
        if !want.is_empty() && want.len() < docs.len() {
            nontrivial += 1;
        }
        for c in [&plain, &indexed] {
            assert_eq!(c.count(Some(&parsed)), want.len(), "case {case} in {}: {json}", c.name());
            let page = c
                .scroll(&ScrollRequest {
                    offset: None,
                    limit: 1000,
                    filter: Some(parsed.clone()),
                    with_payload: false,
                    with_vector: false,
                })
                .unwrap();
            let got: BTreeSet<PointId> = page.points.iter().map(|r| r.id).collect();
            assert_eq!(got, want, "case {case} in {}: {json}", c.name());
            let mut req = SearchRequest::new(vec![0.0, 1.0], 200);
            req.filter = Some(parsed.clone());
            let hits: BTreeSet<PointId> = c.search(&req).unwrap().iter().map(|h| h.id).collect();
            assert_eq!(hits, want, "case {case} search in {}: {json}", c.name());
        }
    }
    // The generator must produce filters that select neither nothing nor everything, or the
    // test proves little.
    assert!(nontrivial > 500, "only {nontrivial} non-trivial filters");
}

/// Index answers that skip the filter (equality, and ranges on an integer index holding only
/// integers an `f64` represents exactly, and on a float index) must agree with evaluating the
/// filter, also at the edges: integers beyond 2^53 (which a range compares after rounding),
/// fractional numbers in an integer field, -0.0 against 0.0, and after the odd values are gone.
#[test]
fn exact_index_answers_agree_with_evaluation_at_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let plain = db.create_collection("plain", CollectionConfig::new(2, Metric::Dot)).unwrap();
    let indexed = db.create_collection("indexed", CollectionConfig::new(2, Metric::Dot)).unwrap();
    indexed.create_payload_index("n", PayloadIndexType::Integer).unwrap();
    indexed.create_payload_index("x", PayloadIndexType::Float).unwrap();
    indexed.create_payload_index("c", PayloadIndexType::Keyword).unwrap();
    let two53 = 1i64 << 53;
    let values: Vec<Value> = vec![
        json!(two53 + 1),
        json!(two53),
        json!(-two53 - 1),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(2.5),
        json!(3.0),
        json!(3),
        json!(-0.0),
        json!(0),
        json!([1, 2.5]),
        json!("3"),
    ];
    let points: Vec<Point> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut p = Payload::new();
            p.insert("n".into(), v.clone());
            p.insert("x".into(), v.clone());
            p.insert("c".into(), json!(if i % 2 == 0 { "even" } else { "odd" }));
            Point::new(i as u64, vec![1.0, i as f32]).with_payload(p)
        })
        .collect();
    plain.upsert(points.clone()).unwrap();
    indexed.upsert(points).unwrap();
    let filters = [
        json!({"must": [{"key": "n", "range": {"lte": two53 as f64}}]}),
        json!({"must": [{"key": "n", "range": {"gt": two53 as f64}}]}),
        json!({"must": [{"key": "n", "range": {"gte": 2.5, "lt": 3.5}}]}),
        json!({"must": [{"key": "n", "range": {"gt": 2}}]}),
        json!({"must": [{"key": "n", "range": {"lt": 0.5}}, {"key": "c", "match": {"value": "even"}}]}),
        json!({"must": [{"key": "n", "match": {"value": 3}}]}),
        json!({"must": [{"key": "n", "match": {"any": [0, 1, 3]}}]}),
        json!({"must": [{"key": "x", "range": {"gte": 0.0}}]}),
        json!({"must": [{"key": "x", "range": {"lte": -0.0}}]}),
        json!({"must": [{"key": "x", "range": {"gt": 0.0, "lt": 3.0}}]}),
        json!({"must": [{"key": "c", "match": {"value": "odd"}}, {"has_id": [1, 2, 3, 5]}]}),
        json!({"must": [{"must": [{"key": "c", "match": {"value": "odd"}}, {"has_id": [1, 2]}]}]}),
    ];
    let ids = |c: &Collection, f: &Filter| -> BTreeSet<PointId> {
        let page = c
            .scroll(&ScrollRequest {
                offset: None,
                limit: 1000,
                filter: Some(f.clone()),
                with_payload: false,
                with_vector: false,
            })
            .unwrap();
        let mut req = SearchRequest::new(vec![0.0, 1.0], 100);
        req.filter = Some(f.clone());
        let hits: BTreeSet<PointId> = c.search(&req).unwrap().iter().map(|h| h.id).collect();
        let scrolled: BTreeSet<PointId> = page.points.iter().map(|r| r.id).collect();
        assert_eq!(hits, scrolled, "search and scroll disagree in {}", c.name());
        assert_eq!(c.count(Some(f)), hits.len());
        hits
    };
    for round in 0..2 {
        for json in &filters {
            let f = Filter::from_json(json).unwrap();
            assert_eq!(ids(&indexed, &f), ids(&plain, &f), "round {round}: {json}");
        }
        // Remove every value an integer index cannot hold exactly: its ranges become exact
        // answers that skip the filter, and must still agree.
        let odd: Vec<PointId> = [0u64, 2, 3, 4, 5, 6, 10].iter().map(|&i| PointId::Num(i)).collect();
        plain.delete(&PointSelector::Ids(odd.clone())).unwrap();
        indexed.delete(&PointSelector::Ids(odd)).unwrap();
    }
}
