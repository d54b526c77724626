//! Strict mode: per-collection limits on what a request may ask for (Qdrant's
//! `strict_mode_config`), so that one careless client cannot make a shared collection slow or
//! huge: result limits, timeouts, exact scans, filters on keys without an index, batch sizes,
//! the collection's size, and read / write rates.
//!
//! The configuration lives in the collection's settings ([`crate::settings`]); the checks are
//! here, so the server and any other front end enforce the same rules with the same words.
//! Every check is a no-op unless strict mode is enabled. Rate limits are token buckets kept in
//! memory (they start full after a restart, as Qdrant's do).

use crate::error::{Error, Result};
use crate::filter::{Condition, FieldCheck, Filter, MatchValue};
use crate::payload_index::PayloadIndexType;
use crate::types::Point;
use crate::vector_model::VectorData;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A multivector space's limit: at most `max_vectors` rows per point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultivectorLimit {
    /// The most rows a point's multivector may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vectors: Option<usize>,
}

/// A sparse space's limit: at most `max_length` non-zero entries per vector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseLimit {
    /// The most non-zero entries a sparse vector may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
}

/// The limits of one collection; `None` means "no limit". Field names are Qdrant's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrictMode {
    /// Enforce the limits below at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The largest `limit` of a search, query, scroll, group or matrix request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_query_limit: Option<usize>,
    /// The largest `timeout` (seconds) a request may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timeout: Option<usize>,
    /// `false`: read filters may only use keys with a payload index that answers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unindexed_filtering_retrieve: Option<bool>,
    /// `false`: filtered updates and deletes may only use indexed keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unindexed_filtering_update: Option<bool>,
    /// The largest `hnsw_ef` a search may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_max_hnsw_ef: Option<usize>,
    /// `false`: `exact: true` searches are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_allow_exact: Option<bool>,
    /// The largest quantization `oversampling` a search may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_max_oversampling: Option<f64>,
    /// The most points (or vector updates) in one write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert_max_batchsize: Option<usize>,
    /// The most searches in one batch request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_max_batchsize: Option<usize>,
    /// Writes are refused once the vectors take this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_collection_vector_size_bytes: Option<usize>,
    /// Read operations (cost units) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_rate_limit: Option<usize>,
    /// Write operations (cost units) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_rate_limit: Option<usize>,
    /// Writes are refused once the payloads take this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_collection_payload_size_bytes: Option<usize>,
    /// Writes are refused once the collection holds this many points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_points_count: Option<usize>,
    /// The most conditions one filter may hold (nested ones included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_max_conditions: Option<usize>,
    /// The most values one condition may list (`match: {any}`, `has_id`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_max_size: Option<usize>,
    /// Per multivector space: the most rows a point may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivector_config: Option<BTreeMap<String, MultivectorLimit>>,
    /// Per sparse space: the most entries a vector may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_config: Option<BTreeMap<String, SparseLimit>>,
    /// The most payload indexes the collection may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_index_count: Option<usize>,
}

/// A strict-mode refusal in Qdrant's words: what was refused and how to get through.
fn refuse(what: impl Into<String>, help: impl Into<String>) -> Error {
    Error::StrictMode {
        message: what.into(),
        help: help.into(),
    }
}

/// `value <= limit`, else Qdrant's "Limit exceeded" refusal naming the parameter.
pub fn check_limit<T: PartialOrd + std::fmt::Display>(value: T, limit: Option<T>, name: &str) -> Result<()> {
    match limit {
        Some(limit) if value > limit => Err(refuse(
            format!("Limit exceeded {value} > {limit} for \"{name}\""),
            format!("Reduce the \"{name}\" parameter to or below {limit}."),
        )),
        _ => Ok(()),
    }
}

/// What the payload index on a key can answer: its type, and the switches Qdrant's index
/// options set (an integer index's `lookup` and `range`, a keyword index's `prefix`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexCaps {
    /// The index type.
    pub kind: PayloadIndexType,
    /// Equality lookups (integer indexes; on unless `lookup: false`).
    pub lookup: bool,
    /// Ranges (integer indexes; on unless `range: false`).
    pub range: bool,
    /// Prefix matches (keyword indexes with `prefix: true`).
    pub prefix: bool,
}

impl IndexCaps {
    /// An index of `kind` with Qdrant's default options.
    pub fn of(kind: PayloadIndexType) -> IndexCaps {
        IndexCaps {
            kind,
            lookup: true,
            range: true,
            prefix: false,
        }
    }
}

/// The size of a collection as the size limits see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SizeStats {
    /// Live points.
    pub points: usize,
    /// Bytes of every stored vector (dense, multi and sparse), as 32-bit floats.
    pub vector_bytes: usize,
    /// Bytes of every payload, as JSON.
    pub payload_bytes: usize,
}

/// The parameters of one search (or one query stage) that strict mode looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchShape<'a> {
    /// Results asked for (`None`: not a limited request).
    pub limit: Option<usize>,
    /// The filter, if any.
    pub filter: Option<&'a Filter>,
    /// `exact: true` asked for.
    pub exact: bool,
    /// `hnsw_ef` asked for.
    pub ef: Option<usize>,
    /// Quantization `oversampling` asked for.
    pub oversampling: Option<f64>,
}

impl StrictMode {
    /// `true` when the limits are enforced.
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }

    /// Applies a partial update: every limit `patch` gives replaces this one's (a missing or
    /// null field leaves the limit as it was, as in Qdrant); per-space limits merge by name.
    pub fn merge(&mut self, patch: StrictMode) {
        macro_rules! take {
            ($($f:ident),*) => {$(if patch.$f.is_some() { self.$f = patch.$f; })*};
        }
        take!(
            enabled,
            max_query_limit,
            max_timeout,
            unindexed_filtering_retrieve,
            unindexed_filtering_update,
            search_max_hnsw_ef,
            search_allow_exact,
            search_max_oversampling,
            upsert_max_batchsize,
            search_max_batchsize,
            max_collection_vector_size_bytes,
            read_rate_limit,
            write_rate_limit,
            max_collection_payload_size_bytes,
            max_points_count,
            filter_max_conditions,
            condition_max_size,
            max_payload_index_count
        );
        if let Some(m) = patch.multivector_config {
            self.multivector_config.get_or_insert_with(BTreeMap::new).extend(m);
        }
        if let Some(s) = patch.sparse_config {
            self.sparse_config.get_or_insert_with(BTreeMap::new).extend(s);
        }
    }

    /// Refuses limits that make no sense (a rate of zero per minute would refuse everything).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("read_rate_limit", self.read_rate_limit),
            ("write_rate_limit", self.write_rate_limit),
            ("max_query_limit", self.max_query_limit),
            ("max_timeout", self.max_timeout),
            ("upsert_max_batchsize", self.upsert_max_batchsize),
            ("search_max_batchsize", self.search_max_batchsize),
            ("search_max_hnsw_ef", self.search_max_hnsw_ef),
        ] {
            if v == Some(0) {
                return Err(Error::InvalidRequest(format!(
                    "strict_mode_config.{name}: value 0 invalid, must be 1 or larger"
                )));
            }
        }
        if self.search_max_oversampling.is_some_and(|o| !(o.is_finite() && o >= 1.0)) {
            return Err(Error::InvalidRequest(
                "strict_mode_config.search_max_oversampling must be 1 or larger".into(),
            ));
        }
        Ok(())
    }

    /// A request's `timeout` (seconds).
    pub fn check_timeout(&self, timeout: usize) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        check_limit(timeout, self.max_timeout, "timeout")
    }

    /// A batch of `n` searches.
    pub fn check_search_batch(&self, n: usize) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        check_limit(n, self.search_max_batchsize, "search batch size")
    }

    /// A limit of a request that is not a search (group sizes, matrix samples).
    pub fn check_query_limit(&self, value: usize, name: &str) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        check_limit(value, self.max_query_limit, name)
    }

    /// One search or query stage: its limit, filter, `exact`, `hnsw_ef` and oversampling.
    /// `index_of` says which payload index (if any) a key has.
    pub fn check_search(&self, s: &SearchShape<'_>, index_of: &dyn Fn(&str) -> Option<IndexCaps>) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        if let Some(limit) = s.limit {
            check_limit(limit, self.max_query_limit, "limit")?;
        }
        if let Some(f) = s.filter {
            self.check_filter(f, false, index_of)?;
        }
        if s.exact && self.search_allow_exact == Some(false) {
            return Err(refuse("Exact search disabled!", "Set exact=false."));
        }
        if let Some(ef) = s.ef {
            check_limit(ef, self.search_max_hnsw_ef, "hnsw_ef")?;
        }
        if let Some(o) = s.oversampling {
            check_limit(o, self.search_max_oversampling, "oversampling")?;
        }
        Ok(())
    }

    /// A filter of a read (`write == false`) or of a filtered update or delete: its size, and
    /// when unindexed filtering is off, that every key it reads has an index that answers it.
    pub fn check_filter(&self, f: &Filter, write: bool, index_of: &dyn Fn(&str) -> Option<IndexCaps>) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        let allow = if write {
            self.unindexed_filtering_update
        } else {
            self.unindexed_filtering_retrieve
        };
        if allow == Some(false) {
            if let Some((key, need, found)) = first_unindexed(f, index_of) {
                let help = format!("Create an index supporting `{need}` for this key.");
                return Err(match found {
                    None => refuse(format!("Index required but not found for \"{key}\""), help),
                    Some(kind) => refuse(format!("Index of type \"{}\" found for \"{key}\"", type_title(kind)), help),
                });
            }
        }
        if let Some(max) = self.filter_max_conditions {
            let n = condition_count(f);
            if n > max {
                return Err(refuse(
                    format!("Filter condition limit reached ({n} > {max})"),
                    "Reduce the amount of conditions of your filter.",
                ));
            }
        }
        if let Some(max) = self.condition_max_size {
            let n = max_condition_size(f);
            if n > max {
                return Err(refuse(
                    format!("Condition size limit reached ({n} > {max})"),
                    "Reduce the size of your condition.",
                ));
            }
        }
        Ok(())
    }

    /// A write of `points`: the batch size (`what` names it: "upsert limit" or "update
    /// limit"), the multivector and sparse limits, and the collection's size before it.
    pub fn check_write(&self, points: &[Point], what: &str, size: impl FnOnce() -> SizeStats) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        check_limit(points.len(), self.upsert_max_batchsize, what)?;
        self.check_size(size)?;
        for p in points {
            for (name, v) in &p.vectors {
                match v {
                    VectorData::Multi(rows) => self.check_multivector(name, rows.len())?,
                    VectorData::Sparse(s) => self.check_sparse(name, s.indices.len())?,
                    VectorData::Dense(_) => {}
                }
            }
        }
        Ok(())
    }

    /// A multivector of `rows` rows in space `name`.
    pub fn check_multivector(&self, name: &str, rows: usize) -> Result<()> {
        let max = self
            .multivector_config
            .as_ref()
            .and_then(|m| m.get(name))
            .and_then(|l| l.max_vectors);
        match max {
            Some(max) if self.is_enabled() && rows > max => Err(refuse(
                format!("Multivector '{name}' has a limit of {max} vectors, but {rows} were provided!"),
                format!("Reduce the number of vectors to {max}"),
            )),
            _ => Ok(()),
        }
    }

    /// A sparse vector of `len` entries in space `name`.
    pub fn check_sparse(&self, name: &str, len: usize) -> Result<()> {
        let max = self.sparse_config.as_ref().and_then(|m| m.get(name)).and_then(|l| l.max_length);
        match max {
            Some(max) if self.is_enabled() && len > max => Err(refuse(
                format!("Sparse vector '{name}' has a limit of {max} indices, but {len} were provided!"),
                format!("Reduce the number of indices to {max}"),
            )),
            _ => Ok(()),
        }
    }

    /// The collection's size limits, checked before a write that adds data (Qdrant refuses
    /// once a limit is reached, so the write that crosses it still lands).
    pub fn check_size(&self, size: impl FnOnce() -> SizeStats) -> Result<()> {
        if !self.is_enabled()
            || (
                self.max_collection_vector_size_bytes,
                self.max_collection_payload_size_bytes,
                self.max_points_count,
            ) == (None, None, None)
        {
            return Ok(());
        }
        let s = size();
        let mb = |b: usize| b as f32 / (1024.0 * 1024.0);
        if let Some(max) = self.max_collection_vector_size_bytes.filter(|&m| s.vector_bytes >= m) {
            return Err(Error::InvalidRequest(format!(
                "Max vector storage size limit of {}MB reached!",
                mb(max)
            )));
        }
        if let Some(max) = self.max_collection_payload_size_bytes.filter(|&m| s.payload_bytes >= m) {
            return Err(Error::InvalidRequest(format!(
                "Max payload storage size limit of {}MB reached!",
                mb(max)
            )));
        }
        if let Some(max) = self.max_points_count.filter(|&m| s.points >= m) {
            return Err(Error::InvalidRequest(format!("Max points count limit of {max} reached!")));
        }
        Ok(())
    }

    /// The payload keys a formula reads, with unindexed filtering off: each needs a numeric
    /// (or, for locations and datetimes, its own) payload index.
    pub fn check_formula(&self, f: &crate::formula::Formula, index_of: &dyn Fn(&str) -> Option<IndexCaps>) -> Result<()> {
        if !self.is_enabled() || self.unindexed_filtering_retrieve != Some(false) {
            return Ok(());
        }
        if let Some(key) = f.payload_keys().into_iter().find(|k| index_of(k).is_none()) {
            return Err(refuse(
                format!("Index required but not found for \"{key}\" of one of the following types: [float, integer]"),
                "Create an index for this key or use a different formula expression.",
            ));
        }
        Ok(())
    }

    /// Creating one more payload index when the collection has `current`.
    pub fn check_payload_index_count(&self, current: usize) -> Result<()> {
        match self.max_payload_index_count {
            Some(max) if self.is_enabled() && current >= max => Err(refuse(
                format!("Collection already has the maximum number of payload indices ({max})"),
                "Please delete an existing index before creating a new one.",
            )),
            _ => Ok(()),
        }
    }
}

/// Qdrant's name of an index type in strict-mode messages ("Keyword", "Geo", ...).
fn type_title(kind: PayloadIndexType) -> String {
    let name = kind.name();
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Whether an index answers a check, and the check's name in the help text.
fn answering(check: &FieldCheck, caps: Option<IndexCaps>) -> (&'static str, bool) {
    use PayloadIndexType as T;
    let name = match check {
        FieldCheck::Match(_) | FieldCheck::Any(_) | FieldCheck::Except(_) => "match",
        FieldCheck::Range(_) => "range",
        FieldCheck::ValuesCount(_) => "values_count",
        FieldCheck::Text(_) => "text",
        FieldCheck::Phrase(_) => "phrase",
        FieldCheck::TextAny(_) => "text_any",
        FieldCheck::Prefix(_) => "prefix",
        FieldCheck::Geo(_) => "geo",
    };
    let Some(c) = caps else { return (name, false) };
    let answers = match check {
        FieldCheck::Match(MatchValue::Keyword(_)) | FieldCheck::Any(_) | FieldCheck::Except(_) => {
            matches!(c.kind, T::Keyword | T::Uuid) || (c.kind == T::Integer && c.lookup)
        }
        FieldCheck::Match(MatchValue::Integer(_)) => c.kind == T::Integer && c.lookup,
        FieldCheck::Match(MatchValue::Bool(_)) => c.kind == T::Bool,
        FieldCheck::Range(_) => (c.kind == T::Integer && c.range) || matches!(c.kind, T::Float | T::Datetime),
        FieldCheck::ValuesCount(_) => true,
        FieldCheck::Text(_) | FieldCheck::Phrase(_) | FieldCheck::TextAny(_) => c.kind == T::Text,
        FieldCheck::Prefix(_) => c.kind == T::Keyword && c.prefix,
        FieldCheck::Geo(_) => c.kind == T::Geo,
    };
    (name, answers)
}

/// The first key `f` reads without an index that answers the check: (key, the check's name,
/// the index the key has instead).
fn first_unindexed(f: &Filter, index_of: &dyn Fn(&str) -> Option<IndexCaps>) -> Option<(String, &'static str, Option<PayloadIndexType>)> {
    let conds = f
        .must
        .iter()
        .chain(&f.should)
        .chain(&f.must_not)
        .chain(f.min_should.iter().flat_map(|m| &m.conditions));
    for c in conds {
        let found = match c {
            Condition::Field(fc) => fc.checks.iter().find_map(|check| {
                let key = fc.key.text.clone();
                let have = index_of(&key);
                let (need, answers) = answering(check, have);
                // An index of the right type with the capability switched off counts as
                // missing (Qdrant's wording); one of another type is named.
                let full = have.map(|h| IndexCaps {
                    lookup: true,
                    range: true,
                    prefix: true,
                    ..h
                });
                let other_type = have.filter(|_| !answering(check, full).1).map(|h| h.kind);
                (!answers).then_some((key, need, other_type))
            }),
            Condition::IsEmpty(k) | Condition::IsNull(k) => {
                let key = k.text.clone();
                index_of(&key).is_none().then_some((key, "is_empty", None))
            }
            Condition::Filter(inner) => first_unindexed(inner, index_of),
            Condition::Nested { key, filter } => {
                // Keys inside a nested filter are read as `key[].inner`.
                let prefix = key.text.clone();
                let nested = |k: &str| index_of(&format!("{prefix}[].{k}"));
                first_unindexed(filter, &nested).map(|(k, need, have)| (format!("{prefix}[].{k}"), need, have))
            }
            Condition::HasId(_) | Condition::HasVector(_) | Condition::Slice { .. } => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Conditions in a filter, nested ones counted one by one (a nested filter is not itself one).
pub fn condition_count(f: &Filter) -> usize {
    let conds = f
        .must
        .iter()
        .chain(&f.should)
        .chain(&f.must_not)
        .chain(f.min_should.iter().flat_map(|m| &m.conditions));
    conds
        .map(|c| match c {
            Condition::Filter(inner) => condition_count(inner),
            Condition::Nested { filter, .. } => condition_count(filter),
            _ => 1,
        })
        .sum()
}

/// The largest number of values any one condition lists.
fn max_condition_size(f: &Filter) -> usize {
    let conds = f
        .must
        .iter()
        .chain(&f.should)
        .chain(&f.must_not)
        .chain(f.min_should.iter().flat_map(|m| &m.conditions));
    conds
        .map(|c| match c {
            Condition::Field(fc) => fc
                .checks
                .iter()
                .map(|ch| match ch {
                    FieldCheck::Any(v) | FieldCheck::Except(v) => v.len(),
                    _ => 0,
                })
                .max()
                .unwrap_or(0),
            Condition::HasId(ids) => ids.len(),
            Condition::Filter(inner) => max_condition_size(inner),
            Condition::Nested { filter, .. } => max_condition_size(filter),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// The rate cost of a read with this filter: one, plus one per condition (Qdrant's rule).
pub fn read_cost(filter: Option<&Filter>) -> usize {
    1 + filter.map_or(0, condition_count)
}

/// Which bucket a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateKind {
    /// Searches, queries, scrolls, counts, retrievals.
    Read,
    /// Upserts, deletes, payload and vector updates.
    Write,
}

/// A token bucket: `per_minute` tokens, refilled continuously, starting full.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: usize,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket of `per_minute` tokens.
    pub fn new(per_minute: usize) -> RateLimiter {
        RateLimiter {
            per_minute,
            tokens: per_minute as f64,
            last: Instant::now(),
        }
    }

    /// The configured rate.
    pub fn per_minute(&self) -> usize {
        self.per_minute
    }

    /// Takes `cost` tokens at time `now`, or says why not (in Qdrant's words).
    pub fn take_at(&mut self, cost: usize, now: Instant, kind: RateKind) -> Result<()> {
        let who = match kind {
            RateKind::Read => "Read",
            RateKind::Write => "Write",
        };
        if cost > self.per_minute {
            return Err(Error::RateLimited {
                message: format!("{who} rate limit exceeded, request larger than rate limiter capacity, please try to split your request"),
                retry_after: None,
            });
        }
        let per_sec = self.per_minute as f64 / 60.0;
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + per_sec * elapsed.as_secs_f64()).min(self.per_minute as f64);
        if self.tokens >= cost as f64 {
            self.tokens -= cost as f64;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((cost as f64 - self.tokens) / per_sec).as_secs_f32().ceil() as u32;
        Err(Error::RateLimited {
            message: format!(
                "{who} rate limit exceeded: Operation requires {cost} tokens but only {:.1} were available. Retry after {wait}s",
                self.tokens
            ),
            retry_after: Some(wait),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> StrictMode {
        StrictMode {
            enabled: Some(true),
            ..StrictMode::default()
        }
    }

    #[test]
    fn nothing_is_checked_while_disabled() {
        let s = StrictMode {
            max_query_limit: Some(1),
            search_allow_exact: Some(false),
            ..StrictMode::default()
        };
        let shape = SearchShape {
            limit: Some(100),
            exact: true,
            ..SearchShape::default()
        };
        assert!(s.check_search(&shape, &|_| None).is_ok());
        let _ = IndexCaps::of(PayloadIndexType::Keyword);
    }

    #[test]
    fn limits_name_the_parameter_and_the_bound() {
        let s = StrictMode {
            max_query_limit: Some(3),
            search_max_hnsw_ef: Some(8),
            ..on()
        };
        let e = s
            .check_search(
                &SearchShape {
                    limit: Some(4),
                    ..SearchShape::default()
                },
                &|_| None,
            )
            .unwrap_err();
        assert!(e.to_string().contains("Limit exceeded 4 > 3 for \"limit\""), "{e}");
        assert!(s
            .check_search(
                &SearchShape {
                    limit: Some(3),
                    ef: Some(8),
                    ..SearchShape::default()
                },
                &|_| None
            )
            .is_ok());
        let e = s
            .check_search(
                &SearchShape {
                    ef: Some(9),
                    ..SearchShape::default()
                },
                &|_| None,
            )
            .unwrap_err();
        assert!(e.to_string().contains("hnsw_ef"), "{e}");
    }

    #[test]
    fn unindexed_keys_are_refused_until_an_index_answers_them() {
        let s = StrictMode {
            unindexed_filtering_retrieve: Some(false),
            ..on()
        };
        let f = Filter::from_json(&serde_json::json!({"must": [{"key": "city", "match": {"value": "Berlin"}}]})).unwrap();
        let e = s.check_filter(&f, false, &|_| None).unwrap_err();
        assert!(e.to_string().contains("Index required but not found for \"city\""), "{e}");
        let e = s
            .check_filter(&f, false, &|_| Some(IndexCaps::of(PayloadIndexType::Float)))
            .unwrap_err();
        assert!(e.to_string().contains("Index of type \"Float\" found for \"city\""), "{e}");
        assert!(s
            .check_filter(&f, false, &|_| Some(IndexCaps::of(PayloadIndexType::Keyword)))
            .is_ok());
        // Capabilities switched off by index options count as missing.
        let n = Filter::from_json(&serde_json::json!({"must": [{"key": "n", "match": {"value": 1}}]})).unwrap();
        let no_lookup = IndexCaps {
            lookup: false,
            ..IndexCaps::of(PayloadIndexType::Integer)
        };
        assert!(s.check_filter(&n, false, &|_| Some(no_lookup)).is_err());
        assert!(s
            .check_filter(&n, false, &|_| Some(IndexCaps::of(PayloadIndexType::Integer)))
            .is_ok());
        let p = Filter::from_json(&serde_json::json!({"must": [{"key": "u", "match": {"prefix": "ht"}}]})).unwrap();
        assert!(s
            .check_filter(&p, false, &|_| Some(IndexCaps::of(PayloadIndexType::Keyword)))
            .is_err());
        let with_prefix = IndexCaps {
            prefix: true,
            ..IndexCaps::of(PayloadIndexType::Keyword)
        };
        assert!(s.check_filter(&p, false, &|_| Some(with_prefix)).is_ok());
        // Writes are governed by the other switch.
        assert!(s.check_filter(&f, true, &|_| None).is_ok());
    }

    #[test]
    fn filter_size_counts_nested_conditions() {
        let s = StrictMode {
            filter_max_conditions: Some(2),
            condition_max_size: Some(2),
            ..on()
        };
        let f = Filter::from_json(&serde_json::json!({"must": [{"key": "a", "match": {"value": 1}}, {"must": [{"key": "b", "match": {"value": 2}}, {"key": "c", "match": {"value": 3}}]}]})).unwrap();
        assert_eq!(condition_count(&f), 3);
        assert!(s
            .check_filter(&f, false, &|_| None)
            .unwrap_err()
            .to_string()
            .contains("Filter condition limit reached (3 > 2)"));
        let f = Filter::from_json(&serde_json::json!({"must": [{"key": "a", "match": {"any": [1, 2, 3]}}]})).unwrap();
        assert!(s
            .check_filter(&f, false, &|_| None)
            .unwrap_err()
            .to_string()
            .contains("Condition size limit reached (3 > 2)"));
    }

    #[test]
    fn merge_keeps_what_the_patch_leaves_out() {
        let mut s = StrictMode {
            write_rate_limit: Some(1),
            ..on()
        };
        s.merge(StrictMode {
            read_rate_limit: Some(2),
            ..StrictMode::default()
        });
        assert_eq!((s.enabled, s.read_rate_limit, s.write_rate_limit), (Some(true), Some(2), Some(1)));
    }

    #[test]
    fn the_bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = RateLimiter::new(60); // one token a second
        assert!(b.take_at(60, t0, RateKind::Read).is_ok());
        let e = b.take_at(2, t0, RateKind::Read).unwrap_err().to_string();
        assert!(
            e.contains("Operation requires 2 tokens but only 0.0 were available. Retry after 2s"),
            "{e}"
        );
        assert!(b.take_at(2, t0 + Duration::from_secs(2), RateKind::Read).is_ok());
        let e = b.take_at(61, t0, RateKind::Write).unwrap_err().to_string();
        assert!(
            e.contains("Write rate limit exceeded, request larger than rate limiter capacity"),
            "{e}"
        );
    }

    #[test]
    fn size_limits_refuse_once_reached() {
        let s = StrictMode {
            max_points_count: Some(10),
            ..on()
        };
        let size = |points| {
            move || SizeStats {
                points,
                ..SizeStats::default()
            }
        };
        assert!(s.check_size(size(9)).is_ok());
        assert!(s
            .check_size(size(10))
            .unwrap_err()
            .to_string()
            .contains("Max points count limit of 10 reached!"));
    }
}
