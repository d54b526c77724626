//! Choosing parts of a payload to return (Qdrant's `with_payload: {"include": [..]}` and
//! `{"exclude": [..]}`), by the same key paths filters use: `a.b` reaches into objects, `a[]`
//! into each element of an array, and an array met on the way without `[]` is not entered.

use crate::filter::{KeyPath, PathPart};
use crate::types::Payload;
use serde_json::{Map, Value};

/// The parts of `payload` at `paths`, keeping their nesting (`country.name` gives
/// `{"country": {"name": ..}}`). A path that parses as no key path is matched as a plain
/// top-level key.
pub fn payload_include(payload: &Payload, paths: &[String]) -> Payload {
    let mut out = Map::new();
    for p in paths {
        match KeyPath::parse(p) {
            Ok(path) => include_into(payload, &path.parts, &mut out),
            Err(_) => {
                if let Some(v) = payload.get(p) {
                    out.insert(p.clone(), v.clone());
                }
            }
        }
    }
    out
}

/// `payload` without the parts at `paths`.
pub fn payload_exclude(payload: &Payload, paths: &[String]) -> Payload {
    let mut out = payload.clone();
    for p in paths {
        match KeyPath::parse(p) {
            Ok(path) => remove_at(&mut out, &path.parts),
            Err(_) => {
                out.remove(p);
            }
        }
    }
    out
}

fn include_into(src: &Map<String, Value>, parts: &[PathPart], dst: &mut Map<String, Value>) {
    let Some((part, rest)) = parts.split_first() else { return };
    let Some(v) = src.get(&part.name) else { return };
    if rest.is_empty() {
        dst.insert(part.name.clone(), v.clone());
        return;
    }
    // Nothing is created on the way unless something is found at the end of the path.
    match v {
        Value::Object(inner) => {
            let mut sub = match dst.remove(&part.name) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            include_into(inner, rest, &mut sub);
            if !sub.is_empty() {
                dst.insert(part.name.clone(), Value::Object(sub));
            }
        }
        Value::Array(items) if part.array => {
            let mut subs: Vec<Map<String, Value>> = match dst.remove(&part.name) {
                Some(Value::Array(old)) => old
                    .into_iter()
                    .map(|v| match v {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    })
                    .collect(),
                _ => vec![Map::new(); items.len()],
            };
            for (item, sub) in items.iter().zip(subs.iter_mut()) {
                if let Value::Object(item) = item {
                    include_into(item, rest, sub);
                }
            }
            if subs.iter().any(|m| !m.is_empty()) {
                dst.insert(part.name.clone(), Value::Array(subs.into_iter().map(Value::Object).collect()));
            }
        }
        _ => {}
    }
}

fn remove_at(obj: &mut Map<String, Value>, parts: &[PathPart]) {
    let Some((part, rest)) = parts.split_first() else { return };
    if rest.is_empty() {
        obj.remove(&part.name);
        return;
    }
    match obj.get_mut(&part.name) {
        Some(Value::Object(inner)) => remove_at(inner, rest),
        Some(Value::Array(items)) if part.array => {
            for item in items {
                if let Value::Object(inner) = item {
                    remove_at(inner, rest);
                }
            }
        }
        _ => {}
    }
}

/// Bytes a payload holds in memory, roughly: its strings and containers with their overheads.
pub(crate) fn deep_size(p: &Payload) -> usize {
    fn value(v: &Value) -> usize {
        const NODE: usize = 32; // a `Value` and its allocation's bookkeeping
        NODE + match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(value).sum::<usize>(),
            Value::Object(o) => o.iter().map(|(k, v)| k.len() + NODE + value(v)).sum::<usize>(),
            _ => 0,
        }
    }
    p.iter().map(|(k, v)| k.len() + 32 + value(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Payload {
        json!({"name": "x", "country": {"name": "France", "code": "FR",
               "cities": [{"name": "Paris", "pop": 2.1}, {"name": "Lyon", "pop": 0.5}]}})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn include_keeps_the_nesting() {
        let got = payload_include(&doc(), &["country.name".into(), "name".into()]);
        assert_eq!(Value::Object(got), json!({"country": {"name": "France"}, "name": "x"}));
        let got = payload_include(&doc(), &["country.cities[].name".into()]);
        assert_eq!(
            Value::Object(got),
            json!({"country": {"cities": [{"name": "Paris"}, {"name": "Lyon"}]}})
        );
        // Without `[]` an array is not entered; a missing path gives nothing.
        assert!(payload_include(&doc(), &["country.cities.name".into(), "nope.x".into()]).is_empty());
    }

    #[test]
    fn exclude_removes_nested_keys() {
        let got = payload_exclude(&doc(), &["country.code".into(), "country.cities[].pop".into()]);
        assert_eq!(
            Value::Object(got),
            json!({"name": "x", "country": {"name": "France", "cities": [{"name": "Paris"}, {"name": "Lyon"}]}})
        );
        assert_eq!(payload_exclude(&doc(), &["missing.key".into()]), doc());
    }
}

/// Merges `value`'s keys into the object(s) at `path` inside `payload` (Qdrant's set payload
/// with a `key`): missing objects on the way are created, `name[i]` walks into element `i`
/// of an array (nothing happens when it has none), and `name[]` into every element.
pub fn set_at(payload: &mut Map<String, Value>, path: &KeyPath, value: &Map<String, Value>) {
    fn walk(obj: &mut Map<String, Value>, parts: &[PathPart], value: &Map<String, Value>) {
        let Some((part, rest)) = parts.split_first() else {
            for (k, v) in value {
                obj.insert(k.clone(), v.clone());
            }
            return;
        };
        let slot = obj.entry(part.name.clone()).or_insert_with(|| {
            if part.array || part.index.is_some() {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        });
        let into = |v: &mut Value| {
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
            walk(v.as_object_mut().expect("made an object"), rest, value);
        };
        match (part.index, part.array) {
            (Some(i), _) => {
                if let Some(item) = slot.as_array_mut().and_then(|a| a.get_mut(i)) {
                    into(item);
                }
            }
            (None, true) => {
                if let Some(items) = slot.as_array_mut() {
                    items.iter_mut().for_each(into);
                }
            }
            (None, false) => into(slot),
        }
    }
    walk(payload, &path.parts, value);
}

#[cfg(test)]
mod set_at_tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn set_at_walks_objects_indices_and_arrays() {
        let mut p = obj(json!({"a": {"x": 1}, "list": [{"k": 1}, {"k": 2}], "n": 5}));
        set_at(&mut p, &KeyPath::parse("a").unwrap(), &obj(json!({"y": 2})));
        set_at(&mut p, &KeyPath::parse("list[1].deep").unwrap(), &obj(json!({"z": true})));
        set_at(&mut p, &KeyPath::parse("list[].tag").unwrap(), &obj(json!({"t": "x"})));
        set_at(&mut p, &KeyPath::parse("list[9]").unwrap(), &obj(json!({"never": 1})));
        set_at(&mut p, &KeyPath::parse("new.path").unwrap(), &obj(json!({"v": 0})));
        set_at(&mut p, &KeyPath::parse("n").unwrap(), &obj(json!({"was": "a number"})));
        assert_eq!(
            Value::Object(p),
            json!({"a": {"x": 1, "y": 2},
                   "list": [{"k": 1, "tag": {"t": "x"}}, {"k": 2, "deep": {"z": true}, "tag": {"t": "x"}}],
                   "n": {"was": "a number"}, "new": {"path": {"v": 0}}})
        );
    }
}
