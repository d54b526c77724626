//! Payload filters in the grammar people know from Qdrant (`Filter` in its OpenAPI description):
//! `must` / `should` / `must_not` / `min_should`, field conditions with `match` (value, any,
//! except), `range` and `values_count`, and `is_empty`, `is_null`, `has_id`, `nested`.
//!
//! Keys are paths: `a.b` walks into objects, `a[]` walks into an array's elements (an array met
//! on the way without `[]` is not looked into, as in Qdrant), and an array at the end of a path
//! stands for its elements: a field condition holds when *any* of those values satisfies it. A
//! text or phrase match without words matches nothing.
//!
//! Parsing is strict: an unknown key or a wrong type is an [`Error::InvalidFilter`] that says
//! where; a Qdrant feature Quiver does not have (geo, full text, datetime) is
//! [`Error::Unsupported`], never a silently wrong answer.

use crate::error::{Error, Result};
use crate::types::{Payload, PointId, FILTER_DEPTH_MAX};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathPart {
    pub name: String,
    /// `name[]`: walk into the array's elements.
    pub array: bool,
    /// `name[3]`: only that element of the array.
    pub index: Option<usize>,
}

/// A parsed key such as `country.cities[].population`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyPath {
    pub text: String,
    pub parts: Vec<PathPart>,
}

impl KeyPath {
    pub fn parse(text: &str) -> Result<KeyPath> {
        if text.is_empty() {
            return Err(Error::InvalidFilter("empty key".into()));
        }
        let mut parts = Vec::new();
        for raw in text.split('.') {
            let (name, array, index) = match raw.strip_suffix("[]") {
                Some(n) => (n, true, None),
                None => match raw.strip_suffix(']').and_then(|r| r.rsplit_once('[')) {
                    Some((n, i)) => match i.parse::<usize>() {
                        Ok(i) => (n, false, Some(i)),
                        Err(_) => (raw, false, None),
                    },
                    None => (raw, false, None),
                },
            };
            if name.is_empty() || name.contains('[') || name.contains(']') {
                return Err(Error::InvalidFilter(format!(
                    "invalid key {text:?}: each part is a name, optionally followed by [] or [index]"
                )));
            }
            parts.push(PathPart {
                name: name.to_string(),
                array,
                index,
            });
        }
        Ok(KeyPath {
            text: text.to_string(),
            parts,
        })
    }

    /// The values at this path (before arrays at the end are flattened).
    pub fn raw_values<'a>(&self, payload: &'a Payload) -> Vec<&'a Value> {
        let mut current: Vec<&'a Value> = Vec::new();
        let mut next: Vec<&'a Value> = Vec::new();
        for (i, part) in self.parts.iter().enumerate() {
            next.clear();
            let visit = |obj: &'a Map<String, Value>, next: &mut Vec<&'a Value>| {
                if let Some(v) = obj.get(&part.name) {
                    if let Some(i) = part.index {
                        if let Some(item) = v.as_array().and_then(|items| items.get(i)) {
                            next.push(item);
                        }
                    } else if part.array {
                        if let Value::Array(items) = v {
                            next.extend(items.iter());
                        }
                    } else {
                        next.push(v);
                    }
                }
            };
            if i == 0 {
                visit(payload, &mut next);
            } else {
                // An array met on the way is not looked into: as in Qdrant, reaching into the
                // objects of an array takes `[]` (`cities[].population`).
                for v in &current {
                    if let Value::Object(obj) = v {
                        visit(obj, &mut next);
                    }
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        current
    }

    /// The values a field condition looks at: arrays at the end stand for their elements.
    pub fn leaf_values<'a>(&self, payload: &'a Payload) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for v in self.raw_values(payload) {
            match v {
                Value::Array(items) => out.extend(items.iter()),
                other => out.push(other),
            }
        }
        out
    }
}

/// A value that `match` compares with: Qdrant's keyword, integer or bool.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MatchValue {
    Keyword(String),
    Integer(i64),
    Bool(bool),
}

impl MatchValue {
    fn parse(v: &Value, at: &str) -> Result<MatchValue> {
        match v {
            Value::String(s) => Ok(MatchValue::Keyword(s.clone())),
            Value::Bool(b) => Ok(MatchValue::Bool(*b)),
            Value::Number(n) => n.as_i64().map(MatchValue::Integer).ok_or_else(|| {
                Error::InvalidFilter(format!(
                    "{at}: match takes a string, an integer or a bool, not {n} (use range for floats)"
                ))
            }),
            other => Err(Error::InvalidFilter(format!(
                "{at}: match takes a string, an integer or a bool, not {other}"
            ))),
        }
    }

    /// `true` when the stored JSON value equals this one (integers match JSON integers only).
    pub fn equals(&self, v: &Value) -> bool {
        match (self, v) {
            (MatchValue::Keyword(a), Value::String(b)) => a == b,
            (MatchValue::Integer(a), Value::Number(b)) => b.as_i64() == Some(*a),
            (MatchValue::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

/// Bounds on a number; `None` means unbounded on that side.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Range {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
    /// The bounds were RFC 3339 datetimes (held as microseconds since the epoch, UTC): values
    /// are compared as datetimes.
    pub datetime: bool,
}

impl Range {
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b) && self.gte.is_none_or(|b| x >= b) && self.lt.is_none_or(|b| x < b) && self.lte.is_none_or(|b| x <= b)
    }

    fn parse(v: &Value, at: &str) -> Result<Range> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::InvalidFilter(format!("{at} must be an object with gt/gte/lt/lte")))?;
        let mut r = Range::default();
        for (k, bound) in obj {
            let slot = match k.as_str() {
                "gt" => &mut r.gt,
                "gte" => &mut r.gte,
                "lt" => &mut r.lt,
                "lte" => &mut r.lte,
                other => return Err(Error::InvalidFilter(format!("{at}: unknown bound {other:?}"))),
            };
            *slot = match bound {
                Value::Null => None,
                Value::Number(n) => Some(n.as_f64().ok_or_else(|| Error::InvalidFilter(format!("{at}.{k}: not a number")))?),
                Value::String(t) => {
                    r.datetime = true;
                    Some(
                        crate::payload_index::parse_datetime(t)
                            .ok_or_else(|| Error::InvalidFilter(format!("{at}.{k}: {t:?} is neither a number nor an RFC 3339 datetime")))?
                            as f64,
                    )
                }
                other => return Err(Error::InvalidFilter(format!("{at}.{k}: expected a number, got {other}"))),
            };
        }
        Ok(r)
    }
}

/// One check on a field's values.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldCheck {
    /// Some value equals this one.
    Match(MatchValue),
    /// Some value equals one of these.
    Any(Vec<MatchValue>),
    /// Some value equals none of these (a missing field has no such value).
    Except(Vec<MatchValue>),
    /// Some numeric value lies in the range.
    Range(Range),
    /// The number of (non-null) values lies in the range.
    ValuesCount(Range),
    /// Some string value contains every token of this text (Qdrant's `match: {text}`).
    Text(String),
    /// Some string value contains the tokens of this text in a row (`match: {phrase}`).
    Phrase(String),
    /// Some string value contains at least one token of this text (`match: {text_any}`).
    TextAny(String),
    /// Some string value starts with this prefix (`match: {prefix}`).
    Prefix(String),
    /// Some location value (`{"lon", "lat"}`) lies in the region (`geo_*` conditions).
    Geo(crate::geo::GeoShape),
}

/// A condition on one key; every check must hold.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldCondition {
    pub key: KeyPath,
    pub checks: Vec<FieldCheck>,
}

impl FieldCondition {
    pub fn check_one(check: &FieldCheck, values: &[&Value]) -> bool {
        match check {
            FieldCheck::Match(m) => values.iter().any(|v| m.equals(v)),
            FieldCheck::Any(list) => values.iter().any(|v| list.iter().any(|m| m.equals(v))),
            FieldCheck::Except(list) => values.iter().any(|v| !v.is_null() && !list.iter().any(|m| m.equals(v))),
            FieldCheck::Range(r) if r.datetime => values.iter().any(|v| {
                v.as_str()
                    .and_then(crate::payload_index::parse_datetime)
                    .is_some_and(|us| r.contains(us as f64))
            }),
            FieldCheck::Range(r) => values.iter().any(|v| v.as_f64().is_some_and(|x| r.contains(x))),
            FieldCheck::ValuesCount(r) => r.contains(values.iter().filter(|v| !v.is_null()).count() as f64),
            FieldCheck::Text(q) => values
                .iter()
                .any(|v| v.as_str().is_some_and(|t| crate::text_index::contains_all(t, q))),
            FieldCheck::Phrase(q) => values
                .iter()
                .any(|v| v.as_str().is_some_and(|t| crate::text_index::contains_phrase(t, q))),
            FieldCheck::TextAny(q) => values
                .iter()
                .any(|v| v.as_str().is_some_and(|t| crate::text_index::contains_any(t, q))),
            FieldCheck::Prefix(p) => values.iter().any(|v| v.as_str().is_some_and(|t| t.starts_with(p.as_str()))),
            FieldCheck::Geo(shape) => values
                .iter()
                .any(|v| crate::geo::GeoPoint::from_value(v).is_some_and(|p| shape.contains(&p))),
        }
    }

    pub fn matches(&self, payload: &Payload) -> bool {
        // The common case, a top-level key holding a scalar, without allocating: the same
        // values `leaf_values` would give (the value itself, or an array's elements).
        if let [part] = self.key.parts.as_slice() {
            if !part.array {
                match payload.get(&part.name) {
                    None => return self.checks.iter().all(|c| FieldCondition::check_one(c, &[])),
                    Some(Value::Array(_)) => {}
                    Some(v) => return self.checks.iter().all(|c| FieldCondition::check_one(c, &[v])),
                }
            }
        }
        let values = self.key.leaf_values(payload);
        self.checks.iter().all(|c| FieldCondition::check_one(c, &values))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    Field(FieldCondition),
    /// The key is missing, null, or an empty array.
    IsEmpty(KeyPath),
    /// The key is present with the value null.
    IsNull(KeyPath),
    HasId(HashSet<PointId>),
    /// The point holds the vector of this name.
    HasVector(String),
    Filter(Box<Filter>),
    /// The point falls in slice `index` of `total` (a fixed hash of its id): slices are
    /// disjoint and together hold every point, for splitting work between readers.
    Slice {
        total: u64,
        index: u64,
    },
    /// The filter holds for at least one object element of the array at `key`.
    Nested {
        key: KeyPath,
        filter: Box<Filter>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct MinShould {
    pub conditions: Vec<Condition>,
    pub min_count: usize,
}

/// A parsed filter. The empty filter matches every point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    /// Conditions that must all hold.
    pub must: Vec<Condition>,
    /// Conditions of which at least one must hold (when any are given).
    pub should: Vec<Condition>,
    /// Conditions that must all fail.
    pub must_not: Vec<Condition>,
    /// At least `min_count` of these conditions must hold.
    pub min_should: Option<MinShould>,
}

impl Filter {
    /// `base` (or no filter) and none of `ids`: how a query by example leaves its examples out.
    pub fn excluding(base: Option<Filter>, ids: &[PointId]) -> Option<Filter> {
        if ids.is_empty() {
            return base;
        }
        let mut f = base.unwrap_or_default();
        f.must_not.push(Condition::HasId(ids.iter().copied().collect()));
        Some(f)
    }

    /// Both filters at once.
    pub fn all_of(a: Filter, b: Filter) -> Filter {
        Filter {
            must: vec![Condition::Filter(Box::new(a)), Condition::Filter(Box::new(b))],
            ..Filter::default()
        }
    }

    /// `base` narrowed to the points with these ids.
    pub fn restricted_to(base: Option<Filter>, ids: &[PointId]) -> Filter {
        let mut f = base.unwrap_or_default();
        f.must.push(Condition::HasId(ids.iter().copied().collect()));
        f
    }

    /// Parses Qdrant's JSON form.
    pub fn from_json(v: &Value) -> Result<Filter> {
        parse_filter(v, "filter", 0)
    }

    /// Parses Qdrant's JSON form from text.
    pub fn parse(text: &str) -> Result<Filter> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::InvalidFilter(format!("not valid JSON: {e}")))?;
        Filter::from_json(&v)
    }

    /// Evaluates the filter on one point.
    pub fn matches(&self, id: PointId, payload: &Payload) -> bool {
        self.matches_point(id, payload, &|_| true)
    }

    /// [`Filter::matches`] for a point whose vectors `has_vector` knows by name.
    pub fn matches_point(&self, id: PointId, payload: &Payload, has_vector: &dyn Fn(&str) -> bool) -> bool {
        let holds = |c: &Condition| condition_matches(c, id, payload, has_vector);
        self.must.iter().all(holds)
            && (self.should.is_empty() || self.should.iter().any(holds))
            && !self.must_not.iter().any(holds)
            && self
                .min_should
                .as_ref()
                .is_none_or(|m| m.conditions.iter().filter(|c| holds(c)).count() >= m.min_count)
    }
}

fn condition_matches(c: &Condition, id: PointId, payload: &Payload, has_vector: &dyn Fn(&str) -> bool) -> bool {
    match c {
        Condition::Field(f) => f.matches(payload),
        Condition::IsEmpty(key) => key.leaf_values(payload).iter().all(|v| v.is_null()),
        Condition::IsNull(key) => key.raw_values(payload).iter().any(|v| v.is_null()),
        Condition::HasId(ids) => ids.contains(&id),
        Condition::HasVector(name) => has_vector(name),
        Condition::Slice { total, index } => slice_of(&id, *total) == *index,
        Condition::Filter(f) => f.matches_point(id, payload, has_vector),
        Condition::Nested { key, filter } => key.leaf_values(payload).iter().any(|v| match v {
            Value::Object(obj) => filter.matches_point(id, obj, has_vector),
            _ => false,
        }),
    }
}

/// The slice of `total` an id falls in: splitmix64 of its number (or of its UUID's halves).
pub fn slice_of(id: &PointId, total: u64) -> u64 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let h = match id {
        PointId::Num(n) => mix(*n),
        PointId::Uuid(u) => {
            let v = u.as_u128();
            mix(mix(v as u64) ^ (v >> 64) as u64)
        }
    };
    h % total.max(1)
}

fn parse_filter(v: &Value, at: &str, depth: usize) -> Result<Filter> {
    if depth > FILTER_DEPTH_MAX {
        return Err(Error::InvalidFilter(format!("filters nest deeper than {FILTER_DEPTH_MAX} levels")));
    }
    let obj = v
        .as_object()
        .ok_or_else(|| Error::InvalidFilter(format!("{at} must be an object")))?;
    let mut f = Filter::default();
    for (k, val) in obj {
        let here = format!("{at}.{k}");
        match k.as_str() {
            "must" => f.must = parse_conditions(val, &here, depth)?,
            "should" => f.should = parse_conditions(val, &here, depth)?,
            "must_not" => f.must_not = parse_conditions(val, &here, depth)?,
            "min_should" => {
                if val.is_null() {
                    continue;
                }
                let m = val
                    .as_object()
                    .ok_or_else(|| Error::InvalidFilter(format!("{here} must be an object with conditions and min_count")))?;
                for key in m.keys() {
                    if key != "conditions" && key != "min_count" {
                        return Err(Error::InvalidFilter(format!("{here}: unknown key {key:?}")));
                    }
                }
                let conditions = parse_conditions(m.get("conditions").unwrap_or(&Value::Null), &format!("{here}.conditions"), depth)?;
                let min_count = m
                    .get("min_count")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| Error::InvalidFilter(format!("{here}.min_count must be a non-negative integer")))?;
                f.min_should = Some(MinShould {
                    conditions,
                    min_count: min_count as usize,
                });
            }
            other => {
                return Err(Error::InvalidFilter(format!(
                    "{at}: unknown key {other:?} (expected must, should, must_not, min_should)"
                )))
            }
        }
    }
    Ok(f)
}

fn parse_conditions(v: &Value, at: &str, depth: usize) -> Result<Vec<Condition>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, c)| parse_condition(c, &format!("{at}[{i}]"), depth))
            .collect(),
        Value::Object(_) => Ok(vec![parse_condition(v, at, depth)?]),
        other => Err(Error::InvalidFilter(format!(
            "{at} must be a condition or a list of conditions, not {other}"
        ))),
    }
}

fn key_of(v: &Value, at: &str) -> Result<KeyPath> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::InvalidFilter(format!("{at} must be an object with a key")))?;
    let key = obj
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidFilter(format!("{at}.key must be a string")))?;
    KeyPath::parse(key)
}

fn parse_condition(v: &Value, at: &str, depth: usize) -> Result<Condition> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::InvalidFilter(format!("{at} must be an object")))?;
    if obj.contains_key("key") {
        return parse_keyed_condition(obj, at);
    }
    if let Some(inner) = obj.get("is_empty") {
        return Ok(Condition::IsEmpty(key_of(inner, &format!("{at}.is_empty"))?));
    }
    if let Some(inner) = obj.get("is_null") {
        return Ok(Condition::IsNull(key_of(inner, &format!("{at}.is_null"))?));
    }
    if let Some(ids) = obj.get("has_id") {
        let list = ids
            .as_array()
            .ok_or_else(|| Error::InvalidFilter(format!("{at}.has_id must be a list of ids")))?;
        return Ok(Condition::HasId(list.iter().map(PointId::from_json).collect::<Result<_>>()?));
    }
    if let Some(inner) = obj.get("nested") {
        let here = format!("{at}.nested");
        let key = key_of(inner, &here)?;
        let filter = inner
            .get("filter")
            .ok_or_else(|| Error::InvalidFilter(format!("{here}.filter is required")))?;
        return Ok(Condition::Nested {
            key,
            filter: Box::new(parse_filter(filter, &format!("{here}.filter"), depth + 1)?),
        });
    }
    if let Some(sl) = obj.get("slice") {
        let here = format!("{at}.slice");
        let num = |k: &str| sl.get(k).and_then(Value::as_u64);
        let (Some(total), Some(index)) = (num("total"), num("index")) else {
            return Err(Error::Validation {
                field: here,
                problem: "slice needs whole numbers total and index".into(),
            });
        };
        if total == 0 {
            return Err(Error::InvalidFilter(format!("{here}.total must be at least 1")));
        }
        if index >= total {
            return Err(Error::Validation {
                field: here,
                problem: format!("index must be below total and total at least 1, got index {index} of {total}"),
            });
        }
        return Ok(Condition::Slice { total, index });
    }
    if let Some(name) = obj.get("has_vector") {
        // A name the collection does not declare matches no point.
        return match name.as_str() {
            Some(name) => Ok(Condition::HasVector(name.to_string())),
            None => Err(Error::InvalidFilter(format!("{at}.has_vector must be a vector name"))),
        };
    }
    Ok(Condition::Filter(Box::new(parse_filter(v, at, depth + 1)?)))
}

fn parse_match_list(v: &Value, at: &str) -> Result<Vec<MatchValue>> {
    let list = v.as_array().ok_or_else(|| Error::InvalidFilter(format!("{at} must be a list")))?;
    list.iter().map(|x| MatchValue::parse(x, at)).collect()
}

/// A condition with a `key`: a field condition, where `is_empty: bool` and `is_null: bool`
/// (Qdrant's newer spelling of the `is_empty` / `is_null` conditions; `false` negates them) may
/// stand beside or instead of the checks.
fn parse_keyed_condition(obj: &Map<String, Value>, at: &str) -> Result<Condition> {
    let mut rest = obj.clone();
    let mut extra = Vec::new();
    for flag in ["is_empty", "is_null"] {
        let Some(v) = rest.remove(flag) else { continue };
        if v.is_null() {
            continue;
        }
        let b = v
            .as_bool()
            .ok_or_else(|| Error::InvalidFilter(format!("{at}.{flag} must be true or false")))?;
        let key = key_of(&Value::Object(obj.clone()), at)?;
        let cond = if flag == "is_empty" {
            Condition::IsEmpty(key)
        } else {
            Condition::IsNull(key)
        };
        extra.push(if b {
            cond
        } else {
            Condition::Filter(Box::new(Filter {
                must_not: vec![cond],
                ..Filter::default()
            }))
        });
    }
    if extra.is_empty() {
        return parse_field_condition(obj, at).map(Condition::Field);
    }
    if rest.len() > 1 {
        extra.push(Condition::Field(parse_field_condition(&rest, at)?));
    }
    Ok(if extra.len() == 1 {
        extra.pop().expect("one condition")
    } else {
        Condition::Filter(Box::new(Filter {
            must: extra,
            ..Filter::default()
        }))
    })
}

fn parse_field_condition(obj: &Map<String, Value>, at: &str) -> Result<FieldCondition> {
    let key = KeyPath::parse(
        obj.get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::InvalidFilter(format!("{at}.key must be a string")))?,
    )?;
    let mut checks = Vec::new();
    for (k, val) in obj {
        let here = format!("{at}.{k}");
        match k.as_str() {
            "key" => {}
            "match" => {
                if val.is_null() {
                    continue;
                }
                let m = val
                    .as_object()
                    .ok_or_else(|| Error::InvalidFilter(format!("{here} must be an object")))?;
                if m.len() != 1 {
                    return Err(Error::InvalidFilter(format!("{here} needs exactly one of value, any, except")));
                }
                let (mk, mv) = m.iter().next().expect("one entry");
                checks.push(match mk.as_str() {
                    "value" => FieldCheck::Match(MatchValue::parse(mv, &here)?),
                    "any" => FieldCheck::Any(parse_match_list(mv, &here)?),
                    "except" => FieldCheck::Except(parse_match_list(mv, &here)?),
                    "text" | "phrase" => {
                        let q = mv
                            .as_str()
                            .ok_or_else(|| Error::InvalidFilter(format!("{here}.{mk} must be a string")))?;
                        if mk == "text" {
                            FieldCheck::Text(q.to_string())
                        } else {
                            FieldCheck::Phrase(q.to_string())
                        }
                    }
                    "text_any" => FieldCheck::TextAny(
                        mv.as_str()
                            .ok_or_else(|| Error::InvalidFilter(format!("{here}.{mk} must be a string")))?
                            .to_string(),
                    ),
                    "prefix" => FieldCheck::Prefix(
                        mv.as_str()
                            .ok_or_else(|| Error::InvalidFilter(format!("{here}.{mk} must be a string")))?
                            .to_string(),
                    ),
                    other => return Err(Error::InvalidFilter(format!("{here}: unknown match kind {other:?}"))),
                });
            }
            "range" => {
                if !val.is_null() {
                    checks.push(FieldCheck::Range(Range::parse(val, &here)?));
                }
            }
            "values_count" => {
                if !val.is_null() {
                    checks.push(FieldCheck::ValuesCount(Range::parse(val, &here)?));
                }
            }
            "geo_bounding_box" | "geo_radius" | "geo_polygon" => {
                if !val.is_null() {
                    checks.push(FieldCheck::Geo(crate::geo::GeoShape::parse(k, val, &here)?));
                }
            }
            "is_empty" | "is_null" => {
                if !val.is_null() {
                    return Err(Error::Unsupported(format!("{here}: use the is_empty / is_null condition form")));
                }
            }
            other => return Err(Error::InvalidFilter(format!("{at}: unknown key {other:?}"))),
        }
    }
    if checks.is_empty() {
        return Err(Error::Validation {
            field: at.to_string(),
            problem: "At least one field condition must be specified".into(),
        });
    }
    Ok(FieldCondition { key, checks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: Value) -> Payload {
        v.as_object().unwrap().clone()
    }

    #[track_caller]
    fn check(filter: Value, doc: Value, want: bool) {
        let f = Filter::from_json(&filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(f.matches(PointId::Num(7), &payload(doc.clone())), want, "filter {filter} on {doc}");
    }

    #[test]
    fn conditions_by_example() {
        let doc = json!({"city": "London", "n": 3, "x": 2.5, "ok": true, "tags": ["a", "b"],
            "country": {"cities": [{"name": "Paris", "pop": 2.1}, {"name": "Lyon", "pop": 0.5}]}, "none": null, "empty": []});
        check(json!({"must": [{"key": "city", "match": {"value": "London"}}]}), doc.clone(), true);
        check(json!({"must": {"key": "city", "match": {"value": "Paris"}}}), doc.clone(), false);
        check(json!({"must": [{"key": "n", "match": {"value": 3}}]}), doc.clone(), true);
        check(json!({"must": [{"key": "ok", "match": {"value": true}}]}), doc.clone(), true);
        check(json!({"must": [{"key": "tags", "match": {"value": "b"}}]}), doc.clone(), true);
        check(json!({"must": [{"key": "tags", "match": {"any": ["z", "a"]}}]}), doc.clone(), true);
        check(
            json!({"must": [{"key": "tags", "match": {"except": ["a", "b"]}}]}),
            doc.clone(),
            false,
        );
        check(json!({"must": [{"key": "tags", "match": {"except": ["a"]}}]}), doc.clone(), true);
        check(
            json!({"must": [{"key": "missing", "match": {"except": ["a"]}}]}),
            doc.clone(),
            false,
        );
        check(json!({"must": [{"key": "x", "range": {"gt": 2.0, "lte": 2.5}}]}), doc.clone(), true);
        check(json!({"must": [{"key": "x", "range": {"gt": 2.5}}]}), doc.clone(), false);
        check(
            json!({"must": [{"key": "country.cities[].name", "match": {"value": "Lyon"}}]}),
            doc.clone(),
            true,
        );
        check(
            json!({"must": [{"key": "country.cities[].pop", "range": {"gte": 2.0}}]}),
            doc.clone(),
            true,
        );
        check(
            json!({"must": [{"key": "country.cities.pop", "range": {"gte": 3.0}}]}),
            doc.clone(),
            false,
        );
        // Without `[]` the array is not looked into, even where an element would match.
        check(
            json!({"must": [{"key": "country.cities.pop", "range": {"gte": 2.0}}]}),
            doc.clone(),
            false,
        );
        // The boolean spellings of is_empty / is_null, and their negations.
        check(json!({"must": [{"key": "empty", "is_empty": true}]}), doc.clone(), true);
        check(json!({"must": [{"key": "empty", "is_empty": false}]}), doc.clone(), false);
        check(json!({"must": [{"key": "none", "is_null": true}]}), doc.clone(), true);
        check(json!({"must": [{"key": "country", "is_null": false}]}), doc.clone(), true);
        check(json!({"must": [{"key": "missing", "is_null": true}]}), doc.clone(), false);
        // A text or phrase match without words matches nothing (not everything).
        check(
            json!({"must": [{"key": "country.cities[].name", "match": {"text": ""}}]}),
            doc.clone(),
            false,
        );
        check(
            json!({"must": [{"key": "country.cities[].name", "match": {"phrase": " "}}]}),
            doc.clone(),
            false,
        );
        check(
            json!({"must": [{"key": "country.cities[].name", "match": {"text": "lyon"}}]}),
            doc.clone(),
            true,
        );
        check(
            json!({"must": [{"is_empty": {"key": "missing"}}, {"is_empty": {"key": "empty"}}, {"is_empty": {"key": "none"}}]}),
            doc.clone(),
            true,
        );
        check(json!({"must": [{"is_empty": {"key": "tags"}}]}), doc.clone(), false);
        check(json!({"must": [{"is_null": {"key": "none"}}]}), doc.clone(), true);
        check(json!({"must": [{"is_null": {"key": "missing"}}]}), doc.clone(), false);
        check(json!({"must": [{"has_id": [1, 7]}]}), doc.clone(), true);
        check(json!({"must_not": [{"has_id": [7]}]}), doc.clone(), false);
        check(
            json!({"should": [{"key": "n", "match": {"value": 4}}, {"key": "ok", "match": {"value": true}}]}),
            doc.clone(),
            true,
        );
        check(json!({"should": [{"key": "n", "match": {"value": 4}}]}), doc.clone(), false);
        check(
            json!({"min_should": {"conditions": [{"key": "n", "match": {"value": 3}}, {"key": "ok", "match": {"value": true}}, {"key": "x", "range": {"lt": 0}}], "min_count": 2}}),
            doc.clone(),
            true,
        );
        check(
            json!({"min_should": {"conditions": [{"key": "n", "match": {"value": 3}}, {"key": "x", "range": {"lt": 0}}], "min_count": 2}}),
            doc.clone(),
            false,
        );
        check(
            json!({"must": [{"must_not": [{"key": "city", "match": {"value": "Rome"}}]}]}),
            doc.clone(),
            true,
        );
        check(
            json!({"must": [{"nested": {"key": "country.cities", "filter": {"must": [{"key": "name", "match": {"value": "Paris"}}, {"key": "pop", "range": {"lt": 1.0}}]}}}]}),
            doc.clone(),
            false,
        );
        check(
            json!({"must": [{"nested": {"key": "country.cities", "filter": {"must": [{"key": "name", "match": {"value": "Lyon"}}, {"key": "pop", "range": {"lt": 1.0}}]}}}]}),
            doc.clone(),
            true,
        );
        check(json!({"must": [{"key": "tags", "values_count": {"gte": 2}}]}), doc.clone(), true);
        check(json!({}), doc, true);
    }

    #[test]
    fn prefix_text_any_geo_datetime_and_slices() {
        let doc = json!({"url": "https://qdrant.tech/docs", "body": "the quick brown fox",
                         "at": {"lon": 13.4, "lat": 52.5}, "when": "2024-03-01T10:00:00Z"});
        check(
            json!({"must": [{"key": "url", "match": {"prefix": "https://qdrant."}}]}),
            doc.clone(),
            true,
        );
        check(
            json!({"must": [{"key": "url", "match": {"prefix": "http://"}}]}),
            doc.clone(),
            false,
        );
        check(
            json!({"must": [{"key": "body", "match": {"text_any": "slow fox"}}]}),
            doc.clone(),
            true,
        );
        check(
            json!({"must": [{"key": "body", "match": {"text_any": "slow cat"}}]}),
            doc.clone(),
            false,
        );
        check(json!({"must": [{"key": "body", "match": {"text_any": ""}}]}), doc.clone(), false);
        let berlin = json!({"must": [{"key": "at", "geo_radius": {"center": {"lon": 13.41, "lat": 52.52}, "radius": 5000}}]});
        check(berlin, doc.clone(), true);
        let far = json!({"must": [{"key": "at", "geo_radius": {"center": {"lon": 2.35, "lat": 48.86}, "radius": 5000}}]});
        check(far, doc.clone(), false);
        check(
            json!({"must": [{"key": "when", "range": {"gte": "2024-03-01", "lt": "2024-03-02T00:00:00+00:00"}}]}),
            doc.clone(),
            true,
        );
        check(
            json!({"must": [{"key": "when", "range": {"gt": "2024-03-01T11:00:00+02:00"}}]}),
            doc.clone(),
            true,
        );
        check(
            json!({"must": [{"key": "when", "range": {"gt": "2024-03-01T10:00:00Z"}}]}),
            doc.clone(),
            false,
        );
        // Slices partition the ids.
        for id in 0..200u64 {
            let hits: Vec<u64> = (0..4)
                .filter(|&i| {
                    Filter::from_json(&json!({"must": [{"slice": {"total": 4, "index": i}}]}))
                        .unwrap()
                        .matches(PointId::Num(id), &payload(json!({})))
                })
                .collect();
            assert_eq!(hits.len(), 1, "id {id} in slices {hits:?}");
        }
    }

    #[test]
    fn bad_filters_are_typed_errors() {
        for (f, unsupported) in [
            (json!({"must": [{"key": "a", "match": {"value": 1.5}}]}), false),
            (json!({"must": [{"key": "a"}]}), false),
            (json!({"mast": []}), false),
            (json!({"must": [{"key": "", "match": {"value": 1}}]}), false),
            (json!({"must": [{"key": "a", "match": {"text": 3}}]}), false),
            (
                json!({"must": [{"key": "a", "geo_radius": {"center": {"lat": 0, "lon": 0}, "radius": -1}}]}),
                false,
            ),
            (json!({"must": [{"key": "a", "range": {"gt": "not a date"}}]}), false),
            (json!({"must": [{"slice": {"total": 2, "index": 2}}]}), false),
            (json!({"must": [{"has_id": [-1]}]}), false),
            (json!([1, 2]), false),
        ] {
            let err = Filter::from_json(&f).unwrap_err();
            assert_eq!(matches!(err, Error::Unsupported(_)), unsupported, "{f}: {err}");
        }
        let mut deep = json!({"must": []});
        for _ in 0..40 {
            deep = json!({"must": [deep]});
        }
        assert!(Filter::from_json(&deep).is_err());
    }
}
