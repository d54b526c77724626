//! Payload indexes: per-field maps from values to the rows that hold them, so a selective filter
//! touches only its candidates instead of every payload.
//!
//! An index is a *superset oracle*: [`PayloadIndexes::candidates`] returns rows that may match
//! (exactly the rows whose indexed field satisfies the indexed conditions); the caller still
//! evaluates the whole filter on each candidate. Indexes live in memory and are rebuilt from the
//! payloads when a collection opens; only their schema is stored (in the manifest).

use crate::error::{Error, Result};
use crate::filter::{Condition, FieldCheck, Filter, KeyPath, MatchValue, Range};
use crate::types::Payload;
use roaring::RoaringBitmap;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

mod persist;

/// What an index stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadIndexType {
    /// Strings, for `match` value / any.
    Keyword,
    /// Integers, for `match` value / any and `range`.
    Integer,
    /// Numbers, for `range`.
    Float,
    /// Booleans, for `match` value.
    Bool,
    /// Full text (BM25, `match: {text}` / `{phrase}`): a tantivy index, kept by the state
    /// apart from the other kinds (see `text_index`).
    Text,
    /// UUID strings, for `match` value / any: kept like a keyword index (a UUID is matched as
    /// the string it is stored as).
    Uuid,
    /// RFC 3339 datetimes (and plain dates), for `order_by`: kept as microseconds since the
    /// epoch (UTC). Filters on the key are evaluated point by point, never answered from it.
    Datetime,
    /// Locations (`{"lon", "lat"}`): counts the points that hold one; geo conditions are
    /// evaluated point by point (the index does not narrow them yet).
    Geo,
}

impl PayloadIndexType {
    /// The type's name as the CLI and the REST API spell it.
    pub fn name(self) -> &'static str {
        match self {
            PayloadIndexType::Keyword => "keyword",
            PayloadIndexType::Integer => "integer",
            PayloadIndexType::Float => "float",
            PayloadIndexType::Bool => "bool",
            PayloadIndexType::Text => "text",
            PayloadIndexType::Uuid => "uuid",
            PayloadIndexType::Datetime => "datetime",
            PayloadIndexType::Geo => "geo",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            PayloadIndexType::Keyword => 1,
            PayloadIndexType::Integer => 2,
            PayloadIndexType::Float => 3,
            PayloadIndexType::Bool => 4,
            PayloadIndexType::Text => 5,
            PayloadIndexType::Uuid => 6,
            PayloadIndexType::Datetime => 7,
            PayloadIndexType::Geo => 8,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<PayloadIndexType> {
        Some(match c {
            1 => PayloadIndexType::Keyword,
            2 => PayloadIndexType::Integer,
            3 => PayloadIndexType::Float,
            4 => PayloadIndexType::Bool,
            5 => PayloadIndexType::Text,
            6 => PayloadIndexType::Uuid,
            7 => PayloadIndexType::Datetime,
            8 => PayloadIndexType::Geo,
            _ => return None,
        })
    }
}

impl std::str::FromStr for PayloadIndexType {
    type Err = Error;
    fn from_str(s: &str) -> Result<PayloadIndexType> {
        match s {
            "keyword" => Ok(PayloadIndexType::Keyword),
            "integer" => Ok(PayloadIndexType::Integer),
            "float" => Ok(PayloadIndexType::Float),
            "bool" => Ok(PayloadIndexType::Bool),
            "text" => Ok(PayloadIndexType::Text),
            "uuid" => Ok(PayloadIndexType::Uuid),
            "datetime" => Ok(PayloadIndexType::Datetime),
            "geo" => Ok(PayloadIndexType::Geo),
            other => Err(Error::Unsupported(format!(
                "payload index type {other:?}; Quiver has keyword, integer, float, bool, text, uuid, datetime and geo"
            ))),
        }
    }
}

/// `f64` with a total order, as a map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct OrdF64(i64);

impl OrdF64 {
    fn new(x: f64) -> OrdF64 {
        // -0.0 and 0.0 compare equal as floats, so they share a key (filters compare floats).
        let x = if x == 0.0 { 0.0 } else { x };
        let bits = x.to_bits() as i64;
        // Flip the magnitude bits of negatives so that integer order is numeric order.
        OrdF64(bits ^ (((bits >> 63) as u64) >> 1) as i64)
    }

    /// The `f64` this key stands for (the flip above is its own inverse).
    fn get(self) -> f64 {
        let bits = self.0 ^ (((self.0 >> 63) as u64) >> 1) as i64;
        f64::from_bits(bits as u64)
    }
}

#[derive(Debug)]
enum IndexData {
    Keyword(HashMap<String, RoaringBitmap>),
    Integer(BTreeMap<i64, RoaringBitmap>),
    Float(BTreeMap<OrdF64, RoaringBitmap>),
    Bool {
        yes: RoaringBitmap,
        no: RoaringBitmap,
    },
    /// A text index's entry: holds nothing here, gives no candidates.
    Inert,
}

/// The index of one field.
#[derive(Debug)]
pub struct FieldIndex {
    pub key: KeyPath,
    pub kind: PayloadIndexType,
    data: IndexData,
    /// Rows with at least one indexed value.
    indexed_rows: RoaringBitmap,
    /// Integer indexes only: rows holding a number that is not a 64-bit integer (such as 2.5),
    /// or an integer too large for an `f64` to hold exactly (beyond 2^53), which a range filter
    /// compares after rounding. A range must still consider them, so they join every range
    /// answer, and a range answer is exact only while there are none.
    other_numbers: RoaringBitmap,
}

fn union_all<'a>(maps: impl Iterator<Item = &'a RoaringBitmap>) -> RoaringBitmap {
    let mut out = RoaringBitmap::new();
    for m in maps {
        out |= m;
    }
    out
}

/// Inclusive integer bounds of a real range, or `None` when it holds no integer.
fn integer_bounds(r: &Range) -> Option<(i64, i64)> {
    let mut lo = i64::MIN as f64;
    let mut hi = i64::MAX as f64;
    if let Some(v) = r.gte {
        lo = lo.max(v.ceil());
    }
    if let Some(v) = r.gt {
        lo = lo.max(v.floor() + 1.0);
    }
    if let Some(v) = r.lte {
        hi = hi.min(v.floor());
    }
    if let Some(v) = r.lt {
        hi = hi.min(v.ceil() - 1.0);
    }
    if lo > hi {
        return None;
    }
    Some((lo as i64, hi as i64))
}

impl FieldIndex {
    pub fn new(key: KeyPath, kind: PayloadIndexType) -> FieldIndex {
        let data = match kind {
            PayloadIndexType::Keyword | PayloadIndexType::Uuid => IndexData::Keyword(HashMap::new()),
            PayloadIndexType::Integer => IndexData::Integer(BTreeMap::new()),
            PayloadIndexType::Float | PayloadIndexType::Datetime => IndexData::Float(BTreeMap::new()),
            PayloadIndexType::Bool => IndexData::Bool {
                yes: RoaringBitmap::new(),
                no: RoaringBitmap::new(),
            },
            // Text indexes live in the state (`State::text`).
            PayloadIndexType::Text | PayloadIndexType::Geo => IndexData::Inert,
        };
        FieldIndex {
            key,
            kind,
            data,
            indexed_rows: RoaringBitmap::new(),
            other_numbers: RoaringBitmap::new(),
        }
    }

    /// Indexes every value of `payload` for `row`.
    pub fn insert(&mut self, row: u32, payload: &Payload) {
        self.update(row, payload, true)
    }

    /// Adds (`insert`) or removes every indexed value of `payload` for `row`.
    fn update(&mut self, row: u32, payload: &Payload, insert: bool) {
        let values = self.key.leaf_values(payload);
        let datetime = self.kind == PayloadIndexType::Datetime;
        let mut any = false;
        for v in values {
            if let (IndexData::Integer(_), Value::Number(n)) = (&self.data, v) {
                if n.as_i64().is_none_or(|i| i.unsigned_abs() > 1 << 53) {
                    if insert {
                        self.other_numbers.insert(row);
                    } else {
                        self.other_numbers.remove(row);
                    }
                }
            }
            let set: Option<&mut RoaringBitmap> = match (&mut self.data, v) {
                (IndexData::Keyword(m), Value::String(s)) => Some(m.entry(s.clone()).or_default()),
                (IndexData::Integer(m), Value::Number(n)) => n.as_i64().map(|i| m.entry(i).or_default()),
                (IndexData::Float(m), Value::Number(n)) if !datetime => n.as_f64().map(|x| m.entry(OrdF64::new(x)).or_default()),
                (IndexData::Float(m), Value::String(s)) if datetime => {
                    parse_datetime(s).map(|us| m.entry(OrdF64::new(us as f64)).or_default())
                }
                (IndexData::Bool { yes, no }, Value::Bool(b)) => Some(if *b { yes } else { no }),
                (IndexData::Inert, v) if self.kind == PayloadIndexType::Geo && crate::geo::GeoPoint::from_value(v).is_some() => {
                    any = true;
                    None
                }
                _ => None,
            };
            if let Some(set) = set {
                any = true;
                if insert {
                    set.insert(row);
                } else {
                    set.remove(row);
                }
            }
        }
        if any {
            if insert {
                self.indexed_rows.insert(row);
            } else {
                self.indexed_rows.remove(row);
                self.prune_empty();
            }
        }
    }

    fn prune_empty(&mut self) {
        match &mut self.data {
            IndexData::Keyword(m) => m.retain(|_, s| !s.is_empty()),
            IndexData::Integer(m) => m.retain(|_, s| !s.is_empty()),
            IndexData::Float(m) => m.retain(|_, s| !s.is_empty()),
            IndexData::Bool { .. } | IndexData::Inert => {}
        }
    }

    /// The rows whose value satisfies `check`, when this index can answer it, and whether that
    /// answer is exact (every row in it satisfies the check; the filter need not be evaluated).
    /// Equality on keywords, integers and booleans is exact: the index holds the same leaf
    /// values the filter compares, by the same equality. Ranges are exact on a float index, and
    /// on an integer index while it holds no number outside the integers an `f64` represents.
    fn lookup(&self, check: &FieldCheck) -> Option<(RoaringBitmap, bool)> {
        if matches!(self.kind, PayloadIndexType::Datetime | PayloadIndexType::Geo) {
            return None;
        }
        if matches!(check, FieldCheck::Range(r) if r.datetime) {
            // Datetime bounds against a numeric index: evaluated point by point.
            return None;
        }
        let set = self.lookup_set(check)?;
        let exact = match (&self.data, check) {
            (IndexData::Integer(_), FieldCheck::Range(_)) => self.other_numbers.is_empty(),
            (IndexData::Inert, _) => false,
            _ => true,
        };
        Some((set, exact))
    }

    fn lookup_set(&self, check: &FieldCheck) -> Option<RoaringBitmap> {
        match (&self.data, check) {
            (IndexData::Keyword(m), FieldCheck::Match(MatchValue::Keyword(s))) => Some(m.get(s).cloned().unwrap_or_default()),
            (IndexData::Keyword(m), FieldCheck::Any(list)) if list.iter().all(|v| matches!(v, MatchValue::Keyword(_))) => {
                Some(union_all(list.iter().filter_map(|v| match v {
                    MatchValue::Keyword(s) => m.get(s),
                    _ => None,
                })))
            }
            (IndexData::Integer(m), FieldCheck::Match(MatchValue::Integer(i))) => Some(m.get(i).cloned().unwrap_or_default()),
            (IndexData::Integer(m), FieldCheck::Any(list)) if list.iter().all(|v| matches!(v, MatchValue::Integer(_))) => {
                Some(union_all(list.iter().filter_map(|v| match v {
                    MatchValue::Integer(i) => m.get(i),
                    _ => None,
                })))
            }
            // Rows with non-integer numbers join the answer: the caller's exact check sorts them.
            (IndexData::Integer(m), FieldCheck::Range(r)) => Some(match integer_bounds(r) {
                Some((lo, hi)) => union_all(m.range(lo..=hi).map(|(_, s)| s)) | &self.other_numbers,
                None => self.other_numbers.clone(),
            }),
            (IndexData::Float(m), FieldCheck::Range(r)) => {
                let lower = match (r.gt, r.gte) {
                    (Some(a), Some(b)) if a >= b => Bound::Excluded(OrdF64::new(a)),
                    (_, Some(b)) => Bound::Included(OrdF64::new(b)),
                    (Some(a), None) => Bound::Excluded(OrdF64::new(a)),
                    (None, None) => Bound::Unbounded,
                };
                let upper = match (r.lt, r.lte) {
                    (Some(a), Some(b)) if a <= b => Bound::Excluded(OrdF64::new(a)),
                    (_, Some(b)) => Bound::Included(OrdF64::new(b)),
                    (Some(a), None) => Bound::Excluded(OrdF64::new(a)),
                    (None, None) => Bound::Unbounded,
                };
                let empty = match (lower, upper) {
                    (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                        a > b || (a == b && !(matches!(lower, Bound::Included(_)) && matches!(upper, Bound::Included(_))))
                    }
                    _ => false,
                };
                if empty {
                    return Some(RoaringBitmap::new());
                }
                Some(union_all(m.range((lower, upper)).map(|(_, s)| s)))
            }
            (IndexData::Bool { yes, no }, FieldCheck::Match(MatchValue::Bool(b))) => Some(if *b { yes.clone() } else { no.clone() }),
            _ => None,
        }
    }

    /// Distinct values held (for `quiver info`).
    /// Bytes the index holds in memory, estimated from its bitmaps' sizes and its keys.
    pub fn memory_bytes(&self) -> usize {
        const ENTRY: usize = 48; // a map entry's own overhead, roughly
        let maps = match &self.data {
            IndexData::Keyword(m) => m.iter().map(|(k, b)| k.len() + ENTRY + b.serialized_size()).sum(),
            IndexData::Integer(m) => m.values().map(|b| 8 + ENTRY + b.serialized_size()).sum(),
            IndexData::Float(m) => m.values().map(|b| 8 + ENTRY + b.serialized_size()).sum(),
            IndexData::Bool { yes, no } => yes.serialized_size() + no.serialized_size(),
            IndexData::Inert => 0,
        };
        maps + self.indexed_rows.serialized_size() + self.other_numbers.serialized_size()
    }

    pub fn distinct_values(&self) -> usize {
        match &self.data {
            IndexData::Keyword(m) => m.len(),
            IndexData::Integer(m) => m.len(),
            IndexData::Float(m) => m.len(),
            IndexData::Bool { yes, no } => (!yes.is_empty()) as usize + (!no.is_empty()) as usize,
            IndexData::Inert => 0,
        }
    }

    /// Rows with at least one indexed value.
    pub fn points(&self) -> u64 {
        self.indexed_rows.len()
    }
}

/// Every payload index of a collection.
#[derive(Debug, Default)]
pub struct PayloadIndexes {
    pub fields: Vec<FieldIndex>,
}

impl FieldIndex {
    /// The values of an integer or float index in order (descending when asked), from
    /// `start_from` on (inclusive), each with the rows holding it; `None` for other indexes.
    pub fn ordered_values(&self, descending: bool, start_from: Option<f64>) -> Option<Vec<(f64, &RoaringBitmap)>> {
        let keep = |x: f64| start_from.is_none_or(|s| if descending { x <= s } else { x >= s });
        let mut out: Vec<(f64, &RoaringBitmap)> = match &self.data {
            IndexData::Integer(m) => m.iter().map(|(k, b)| (*k as f64, b)).filter(|(x, _)| keep(*x)).collect(),
            IndexData::Float(m) => m.iter().map(|(k, b)| (k.get(), b)).filter(|(x, _)| keep(*x)).collect(),
            _ => return None,
        };
        if descending {
            out.reverse();
        }
        Some(out)
    }

    /// Each indexed value with the rows holding it, for keyword, integer and bool indexes
    /// (the ones facets count); `None` for the others.
    pub fn value_rows(&self) -> Option<Vec<(Value, &RoaringBitmap)>> {
        match &self.data {
            IndexData::Keyword(m) => Some(m.iter().map(|(k, b)| (Value::String(k.clone()), b)).collect()),
            IndexData::Integer(m) => Some(m.iter().map(|(k, b)| (Value::from(*k), b)).collect()),
            IndexData::Bool { yes, no } => Some(vec![(Value::Bool(true), yes), (Value::Bool(false), no)]),
            IndexData::Float(_) | IndexData::Inert => None,
        }
    }
}

impl PayloadIndexes {
    pub fn insert(&mut self, row: u32, payload: &Payload) {
        for f in &mut self.fields {
            f.update(row, payload, true);
        }
    }

    pub fn remove(&mut self, row: u32, payload: &Payload) {
        for f in &mut self.fields {
            f.update(row, payload, false);
        }
    }

    fn lookup(&self, key: &KeyPath, check: &FieldCheck) -> Option<(RoaringBitmap, bool)> {
        // Prefer a float index for ranges: it sees every number, integers included.
        let mut fields: Vec<&FieldIndex> = self.fields.iter().filter(|f| f.key == *key).collect();
        fields.sort_by_key(|f| f.kind != PayloadIndexType::Float);
        fields.iter().find_map(|f| f.lookup(check))
    }

    /// Candidates for one condition, and whether they are exact.
    fn condition_candidates(&self, c: &Condition) -> Option<(RoaringBitmap, bool)> {
        match c {
            Condition::Field(fc) => {
                let mut acc: Option<RoaringBitmap> = None;
                let mut all_exact = true;
                for check in &fc.checks {
                    match self.lookup(&fc.key, check) {
                        Some((set, exact)) => {
                            all_exact &= exact;
                            acc = Some(match acc {
                                Some(a) => a & set,
                                None => set,
                            });
                        }
                        None => all_exact = false,
                    }
                }
                acc.map(|set| (set, all_exact))
            }
            Condition::Filter(f) => self.candidates_at(f, false),
            _ => None,
        }
    }

    /// A superset of the rows `filter` can match, from the indexes, and whether it is exact:
    /// every row in it (if live) matches, so the caller need not evaluate the filter. Exact
    /// only when the filter is a conjunction (`must` alone) whose every condition the indexes
    /// answer exactly. `None` when no index helps (then the caller scans). `has_id` is resolved
    /// by the caller, which owns the id map.
    pub fn candidates(&self, filter: &Filter) -> Option<(RoaringBitmap, bool)> {
        self.candidates_at(filter, true)
    }

    fn candidates_at(&self, filter: &Filter, top_level: bool) -> Option<(RoaringBitmap, bool)> {
        let mut acc: Option<RoaringBitmap> = None;
        let mut exact = filter.should.is_empty() && filter.must_not.is_empty() && filter.min_should.is_none();
        for c in &filter.must {
            match self.condition_candidates(c) {
                Some((set, e)) => {
                    exact &= e;
                    acc = Some(match acc {
                        Some(a) => a & set,
                        None => set,
                    });
                }
                // A top-level `has_id` is exact and the caller intersects it; anything else
                // needs the filter evaluated.
                None => exact &= top_level && matches!(c, Condition::HasId(_)),
            }
        }
        if !filter.should.is_empty() {
            let sets: Option<Vec<RoaringBitmap>> = filter.should.iter().map(|c| self.condition_candidates(c).map(|(s, _)| s)).collect();
            if let Some(sets) = sets {
                let union = union_all(sets.iter());
                acc = Some(match acc {
                    Some(a) => a & union,
                    None => union,
                });
            }
        }
        acc.map(|set| (set, exact))
    }
}

/// Microseconds since the Unix epoch (UTC) of an RFC 3339 datetime (`2026-12-01T10:30:00Z`,
/// `2026-12-01 10:30:00.25+02:00`, no zone meaning UTC) or a plain date (`2026-12-01`).
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    // Not a char boundary at 10 (a multibyte character there): not a datetime.
    let (date, rest) = s.split_at_checked(s.len().min(10))?;
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) || date.len() != 10 {
        return None;
    }
    // Days from 1970-01-01 (Howard Hinnant's days-from-civil).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut micros = days * 86_400_000_000;
    if rest.is_empty() {
        return Some(micros);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (time, zone) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut hms = time.split(':');
    let (h, mi) = (num(hms.next()?)?, num(hms.next()?)?);
    let (sec, frac) = match hms.next() {
        Some(sf) => match sf.split_once('.') {
            Some((sec, frac)) => (num(sec)?, frac),
            None => (num(sf)?, ""),
        },
        None => (0, ""),
    };
    if hms.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let frac_us = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        num(&digits)?
    };
    micros += ((h * 60 + mi) * 60 + sec) * 1_000_000 + frac_us;
    let offset_min = match zone {
        "" | "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (oh, om) = z[1..].split_once(':').unwrap_or((&z[1..], "00"));
            sign * (num(oh)? * 60 + num(om)?)
        }
    };
    Some(micros - offset_min * 60_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_utc_microseconds() {
        assert_eq!(parse_datetime("1970-01-01"), Some(0));
        assert_eq!(parse_datetime("1970-01-02T00:00:00Z"), Some(86_400_000_000));
        assert_eq!(parse_datetime("2000-03-01T00:00:00Z"), Some(951_868_800_000_000));
        assert_eq!(
            parse_datetime("2026-12-01T10:30:00.25+02:00"),
            parse_datetime("2026-12-01T08:30:00.250Z")
        );
        assert_eq!(parse_datetime("2026-12-01 08:30:00"), parse_datetime("2026-12-01T08:30:00Z"));
        assert_eq!(parse_datetime("1969-12-31T23:59:59Z"), Some(-1_000_000));
        for bad in [
            "",
            "2026-13-01",
            "2026-12-01T25:00:00Z",
            "yesterday",
            "2026-12-01Tnoon",
            "ééééééé",
            "2026-12-0é",
            "2026-12-01T1é:00",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn float_order_is_numeric() {
        let xs = [-1e30, -2.5, -0.0, 0.0, 1e-9, 3.0, f64::INFINITY];
        for w in xs.windows(2) {
            assert!(OrdF64::new(w[0]) <= OrdF64::new(w[1]), "{w:?}");
        }
        assert!(OrdF64::new(f64::NEG_INFINITY) < OrdF64::new(-1e300));
    }

    #[test]
    fn integer_bounds_of_ranges() {
        let r = |gt, gte, lt, lte| Range {
            gt,
            gte,
            lt,
            lte,
            datetime: false,
        };
        assert_eq!(integer_bounds(&r(Some(1.5), None, Some(4.0), None)), Some((2, 3)));
        assert_eq!(integer_bounds(&r(None, Some(2.0), None, Some(2.0))), Some((2, 2)));
        assert_eq!(integer_bounds(&r(Some(2.0), None, Some(3.0), None)), None);
        assert_eq!(integer_bounds(&r(None, None, None, Some(-0.5))), Some((i64::MIN, -1)));
    }
}
