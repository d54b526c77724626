//! Facet counts from the payload indexes against counting the payloads one by one, with and
//! without a filter, after deletes and updates.

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
