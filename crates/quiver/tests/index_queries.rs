//! Queries the payload indexes answer, against reading the payloads one by one: facet counts
//! and ordered scrolls, with and without a filter, after deletes and updates.

use quiver::{CollectionConfig, Database, Filter, Metric, PayloadIndexType, Point, PointSelector, With};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[test]
fn facet_counts_match_counting_the_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::open(tmp.path()).unwrap();
    let c = db.create_collection("c", CollectionConfig::new(2, Metric::Dot)).unwrap();
    c.create_payload_index("color", PayloadIndexType::Keyword).unwrap();
    c.create_payload_index("size", PayloadIndexType::Integer).unwrap();
    c.create_payload_index("ok", PayloadIndexType::Bool).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let colors = ["red", "green", "blue", "black"];
    let points: Vec<Point> = (0..2000u64)
        .map(|i| {
            // Some points hold several colours (counted once each), some none.
            let cs: Vec<&str> = colors.iter().copied().filter(|_| rng.gen_bool(0.3)).collect();
            let p = json!({"color": cs, "size": rng.gen_range(0..6), "ok": rng.gen_bool(0.5)});
            Point::new(i, vec![1.0, i as f32]).with_payload(p.as_object().unwrap().clone())
        })
        .collect();
    c.upsert(points).unwrap();
    c.delete(&PointSelector::Ids((0..300u64).map(Into::into).collect())).unwrap();
    c.set_payload(
        &PointSelector::Ids((300..400u64).map(Into::into).collect()),
        json!({"color": "white"}).as_object().unwrap().clone(),
    )
    .unwrap();
    let filter = Filter::parse(r#"{"must": [{"key": "ok", "match": {"value": true}}]}"#).unwrap();
    for f in [None, Some(&filter)] {
        let all = c.get(&(0..2000u64).map(Into::into).collect::<Vec<_>>(), With::PAYLOAD).unwrap();
        for key in ["color", "size", "ok"] {
            let mut want: BTreeMap<String, u64> = BTreeMap::new();
            for r in &all {
                let p = r.payload.as_ref().unwrap();
                if f.is_some() && p["ok"] != json!(true) {
                    continue;
                }
                let mut seen = std::collections::BTreeSet::new();
                let vals: Vec<Value> = match &p[key] {
                    Value::Array(a) => a.clone(),
                    Value::Null => vec![],
                    v => vec![v.clone()],
                };
                for v in vals {
                    if seen.insert(v.to_string()) {
                        *want.entry(v.to_string()).or_default() += 1;
                    }
                }
            }
            let got = c.facet(key, f, 100).unwrap();
            let got_map: BTreeMap<String, u64> = got.iter().map(|(v, n)| (v.to_string(), *n)).collect();
            assert_eq!(got_map, want, "{key} {}", f.is_some());
            assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "most common first");
        }
    }
    assert_eq!(c.facet("color", None, 2).unwrap().len(), 2);
    assert!(c.facet("nokey", None, 10).is_err());
}

#[test]
fn ordered_scroll_matches_sorting_the_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::open(tmp.path()).unwrap();
    let c = db.create_collection("c", CollectionConfig::new(2, Metric::Dot)).unwrap();
    c.create_payload_index("n", PayloadIndexType::Integer).unwrap();
    c.create_payload_index("x", PayloadIndexType::Float).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let points: Vec<Point> = (0..500u64)
        .map(|i| {
            // Repeated values (ties), negative floats, and some points with two values.
            let n: Value = if i % 7 == 0 {
                json!([rng.gen_range(-5..5), rng.gen_range(-5..5)])
            } else {
                json!(rng.gen_range(-5..5))
            };
            let p = json!({"n": n, "x": (rng.gen_range(-1000..1000) as f64) / 8.0, "odd": i % 2 == 1});
            Point::new(i, vec![1.0, 0.0]).with_payload(p.as_object().unwrap().clone())
        })
        .collect();
    c.upsert(points).unwrap();
    c.delete(&PointSelector::Ids((0..50u64).map(Into::into).collect())).unwrap();
    let filter = Filter::parse(r#"{"must": [{"key": "odd", "match": {"value": true}}]}"#).unwrap();
    let all = c.get(&(0..500u64).map(Into::into).collect::<Vec<_>>(), With::PAYLOAD).unwrap();
    for key in ["n", "x"] {
        for f in [None, Some(filter.clone())] {
            for (descending, start) in [(false, None), (true, None), (false, Some(1.0)), (true, Some(-2.5))] {
                // The expected order: (value, id) for every value a point holds.
                let mut want: Vec<(f64, u64)> = Vec::new();
                for r in &all {
                    let p = r.payload.as_ref().unwrap();
                    if f.is_some() && p["odd"] != json!(true) {
                        continue;
                    }
                    let vals: Vec<f64> = match &p[key] {
                        Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap()).collect(),
                        v => vec![v.as_f64().unwrap()],
                    };
                    let mut vals = vals;
                    vals.sort_by(f64::total_cmp);
                    vals.dedup();
                    for v in vals {
                        if start.is_none_or(|s| if descending { v <= s } else { v >= s }) {
                            let quiver::PointId::Num(id) = r.id else { unreachable!() };
                            want.push((v, id));
                        }
                    }
                }
                want.sort_by(|a, b| if descending { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) }.then(a.1.cmp(&b.1)));
                want.truncate(60);
                let req = quiver::ScrollRequest {
                    offset: None,
                    limit: 60,
                    filter: f.clone(),
                    with_payload: false,
                    with_vector: false,
                };
                let got: Vec<(f64, u64)> = c
                    .scroll_ordered(&req, key, descending, start)
                    .unwrap()
                    .into_iter()
                    .map(|(r, v)| match r.id {
                        quiver::PointId::Num(id) => (v, id),
                        quiver::PointId::Uuid(_) => unreachable!(),
                    })
                    .collect();
                assert_eq!(got, want, "{key} desc={descending} start={start:?} filtered={}", f.is_some());
            }
        }
    }
    let req = quiver::ScrollRequest {
        offset: Some(3u64.into()),
        limit: 5,
        filter: None,
        with_payload: false,
        with_vector: false,
    };
    assert!(c.scroll_ordered(&req, "n", false, None).is_err(), "offset with order_by");
    let req = quiver::ScrollRequest { offset: None, ..req };
    assert!(c.scroll_ordered(&req, "odd", false, None).is_err(), "no range index");
}

/// A datetime index orders points by time whatever the zone and precision they were written
/// with; strings that are not datetimes, and numbers, are left out of it; a filter on the key
/// is still evaluated point by point (the index never answers it).
#[test]
fn datetime_index_orders_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("t", CollectionConfig::new(2, Metric::Dot)).unwrap();
    let times = [
        (1u64, json!("2026-12-01T10:00:00+02:00")), // 08:00 UTC
        (2, json!("2026-12-01T09:00:00Z")),
        (3, json!("2026-12-01")), // midnight UTC
        (4, json!("2026-12-01 08:30:00.5")),
        (5, json!("not a date")),
        (6, json!(1_700_000_000)),
    ];
    let points = times
        .iter()
        .map(|(id, t)| Point::new(*id, vec![1.0, 0.0]).with_payload(json!({"at": t}).as_object().unwrap().clone()))
        .collect();
    c.upsert(points).unwrap();
    c.create_payload_index("at", PayloadIndexType::Datetime).unwrap();
    let req = quiver::ScrollRequest {
        offset: None,
        limit: 10,
        filter: None,
        with_payload: false,
        with_vector: false,
    };
    let order = |descending: bool, start: Option<f64>| -> Vec<u64> {
        c.scroll_ordered(&req, "at", descending, start)
            .unwrap()
            .into_iter()
            .map(|(r, _)| match r.id {
                quiver::PointId::Num(n) => n,
                quiver::PointId::Uuid(_) => unreachable!(),
            })
            .collect()
    };
    assert_eq!(order(false, None), vec![3, 1, 4, 2]);
    assert_eq!(order(true, None), vec![2, 4, 1, 3]);
    let eight = quiver::parse_datetime("2026-12-01T08:00:00Z").unwrap() as f64;
    assert_eq!(order(false, Some(eight)), vec![1, 4, 2]);
    let f = Filter::from_json(&json!({"must": [{"key": "at", "match": {"value": "not a date"}}]})).unwrap();
    assert_eq!(c.count(Some(&f)), 1);
}

/// Index options are kept with the collection (across a reopen), read by strict mode as
/// capabilities, and go with the index when it is dropped; an integer index must keep lookup
/// or range.
#[test]
fn index_options_are_kept_and_read_as_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", CollectionConfig::new(2, Metric::Dot)).unwrap();
        let opts = |v: Value| v.as_object().unwrap().clone();
        c.create_payload_index_with("url", PayloadIndexType::Keyword, opts(json!({"prefix": true, "is_tenant": true})))
            .unwrap();
        c.create_payload_index_with("n", PayloadIndexType::Integer, opts(json!({"lookup": false})))
            .unwrap();
        let e = c
            .create_payload_index_with("m", PayloadIndexType::Integer, opts(json!({"lookup": false, "range": false})))
            .unwrap_err();
        assert!(e.to_string().contains("can't be both disabled"), "{e}");
        assert!(c.payload_index_kind("m").is_none(), "a refused index is not created");
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    let url = c.payload_index_caps("url").unwrap();
    assert!(url.prefix && url.kind == PayloadIndexType::Keyword);
    let n = c.payload_index_caps("n").unwrap();
    assert!(!n.lookup && n.range);
    assert_eq!(c.settings().index_options["url"], json!({"prefix": true, "is_tenant": true}));
    c.drop_payload_index("url").unwrap();
    assert!(c.payload_index_caps("url").is_none());
    assert!(!c.settings().index_options.contains_key("url"));
}
