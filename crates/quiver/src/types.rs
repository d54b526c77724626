//! The vocabulary of the API: point ids, metrics, configurations, points and results, and the
//! limits every request is checked against.

use crate::error::{Error, Result};
use crate::vector_model::{NamedVectors, SparseVector, VectorData, VectorSchema};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// The largest vector dimension a collection may have.
pub const DIMENSION_MAX: usize = 65_536;
/// The most points one upsert may carry (the CLI's whole-file batch included).
pub const BATCH_POINTS_MAX: usize = 1 << 21;
/// The most results one search may ask for (`limit + offset`).
pub const SEARCH_LIMIT_MAX: usize = 100_000;
/// The largest payload of one point, as compact JSON.
pub const PAYLOAD_BYTES_MAX: usize = 1 << 20;
/// The longest collection name, in bytes.
pub const NAME_BYTES_MAX: usize = 128;
/// The largest search list size (`ef`) of a search or an index.
pub const EF_MAX: usize = 4096;
/// The largest Euclidean length of a stored or query vector: two such vectors have a dot
/// product, a squared distance (at most `4 * 1e36`) and a Manhattan distance (at most
/// `2 * sqrt(DIMENSION_MAX) * 1e18`) that are finite in f32, so every score is a number.
pub const VECTOR_NORM_MAX: f64 = 1e18;
const _: () = assert!(4.0 * VECTOR_NORM_MAX * VECTOR_NORM_MAX < f32::MAX as f64);
/// The deepest nesting of filters.
pub const FILTER_DEPTH_MAX: usize = 32;

const _: () = assert!(DIMENSION_MAX * 4 + PAYLOAD_BYTES_MAX + 64 < quiver_storage::wal::WAL_RECORD_BYTES_MAX);

/// A payload: a JSON object.
pub type Payload = Map<String, Value>;

/// A point id: an unsigned 64-bit integer or a UUID. Integers sort before UUIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PointId {
    /// An unsigned 64-bit integer.
    Num(u64),
    /// A UUID.
    Uuid(uuid::Uuid),
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => write!(f, "{u}"),
        }
    }
}

impl From<u64> for PointId {
    fn from(n: u64) -> PointId {
        PointId::Num(n)
    }
}

impl From<uuid::Uuid> for PointId {
    fn from(u: uuid::Uuid) -> PointId {
        PointId::Uuid(u)
    }
}

impl FromStr for PointId {
    type Err = Error;
    fn from_str(s: &str) -> Result<PointId> {
        if let Ok(n) = s.parse::<u64>() {
            return Ok(PointId::Num(n));
        }
        uuid::Uuid::parse_str(s)
            .map(PointId::Uuid)
            .map_err(|_| Error::InvalidId(format!("{s:?}")))
    }
}

impl PointId {
    /// Reads an id from JSON: a non-negative integer or a UUID string.
    pub fn from_json(v: &Value) -> Result<PointId> {
        match v {
            Value::Number(n) => n.as_u64().map(PointId::Num).ok_or_else(|| Error::InvalidId(n.to_string())),
            Value::String(s) => uuid::Uuid::parse_str(s)
                .map(PointId::Uuid)
                .map_err(|_| Error::InvalidId(format!("{s:?}"))),
            other => Err(Error::InvalidId(other.to_string())),
        }
    }

    /// The id as JSON: a number or a UUID string.
    pub fn to_json(&self) -> Value {
        match self {
            PointId::Num(n) => Value::from(*n),
            PointId::Uuid(u) => Value::String(u.to_string()),
        }
    }
}

/// How vectors are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine similarity; vectors are normalised when stored and queries when searched, so the
    /// score is their dot product. Higher is closer.
    Cosine,
    /// The inner product. Higher is closer.
    Dot,
    /// Euclidean distance. Lower is closer; the score is the distance.
    Euclid,
    /// Manhattan (L1) distance. Lower is closer; the score is the distance.
    Manhattan,
}

impl Metric {
    /// The metric's lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::Euclid => "euclid",
            Metric::Manhattan => "manhattan",
        }
    }

    /// Whether the kernels' score is a similarity or a distance.
    pub fn score_kind(self) -> quiver_kernels::ScoreKind {
        match self {
            Metric::Cosine | Metric::Dot => quiver_kernels::ScoreKind::Dot,
            Metric::Euclid => quiver_kernels::ScoreKind::NegL2Squared,
            Metric::Manhattan => quiver_kernels::ScoreKind::NegL1,
        }
    }

    /// Turns an internal "higher is better" score into the user's score.
    pub(crate) fn user_score(self, internal: f32) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => internal,
            Metric::Euclid => (-internal).max(0.0).sqrt(),
            Metric::Manhattan => -internal,
        }
    }

    /// `true` when a larger user score means closer.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Cosine | Metric::Dot)
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Metric::Cosine => 1,
            Metric::Dot => 2,
            Metric::Euclid => 3,
            Metric::Manhattan => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Metric> {
        Some(match code {
            1 => Metric::Cosine,
            2 => Metric::Dot,
            3 => Metric::Euclid,
            4 => Metric::Manhattan,
            _ => return None,
        })
    }
}

impl FromStr for Metric {
    type Err = Error;
    /// Accepts Quiver's and Qdrant's spellings, any case.
    fn from_str(s: &str) -> Result<Metric> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" => Ok(Metric::Cosine),
            "dot" => Ok(Metric::Dot),
            "euclid" | "euclidean" | "l2" => Ok(Metric::Euclid),
            "manhattan" | "l1" => Ok(Metric::Manhattan),
            _ => Err(Error::InvalidRequest(format!(
                "unknown metric {s:?}; use cosine, dot, euclid or manhattan"
            ))),
        }
    }
}

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every write is fsynced before it returns: it survives kill -9 and power loss.
    Immediate,
    /// Group commit: writes reach the operating system before they return (so they survive
    /// kill -9) and are fsynced together at most `interval_ms` later (so a power loss loses at
    /// most the last `interval_ms` of acknowledged writes).
    Periodic {
        /// The longest time between fsyncs, in milliseconds.
        interval_ms: u32,
    },
}

/// The longest group-commit interval allowed.
pub const PERIODIC_INTERVAL_MS_MAX: u32 = 10_000;

/// What a collection is, fixed at creation.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionConfig {
    /// The vector dimension.
    pub dim: usize,
    /// How vectors are compared.
    pub metric: Metric,
    /// When writes are fsynced.
    pub durability: Durability,
    /// The text embedder whose vectors this collection holds (for example
    /// `"all-minilm-l6-v2"`), when it takes text; the library only records the name, the
    /// command line and the server run the model.
    pub embedder: Option<String>,
    /// How the embedder computes (`float`, the default, or `int8`): recorded so that every
    /// text added and every text query of the collection is embedded alike.
    pub embed_precision: EmbedPrecision,
    /// The approximate index (HNSW) built once the collection is large enough.
    pub index: IndexConfig,
    /// The main vector's name and the named vectors beside it.
    pub vectors: VectorSchema,
}

/// How a text collection's embedder computes (see [`CollectionConfig::embed_precision`]).
pub use quiver_kernels::Precision as EmbedPrecision;

/// How a quantized index encodes vectors for traversal (rescoring always uses the full vectors).
pub use quiver_index::Quantization;

/// The approximate index of a collection. Searches stay exact below `full_scan_threshold` live
/// points; above it an HNSW graph is built in the background, and until it is ready (and for
/// points added since) searches scan exactly, so results are always correct.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexConfig {
    /// Build an index at all.
    pub enabled: bool,
    /// HNSW neighbours per node (twice that on the bottom level).
    pub m: usize,
    /// The candidate list while building.
    pub ef_construct: usize,
    /// Search list size when a request does not give one.
    pub ef: usize,
    /// Below this many points no index is built: every search scans.
    pub full_scan_threshold: usize,
    /// The codes the graph is searched with (candidates are rescored with the full vectors).
    pub quantization: Quantization,
    /// The recall@k a search that names no `ef` should reach: the recall monitor measures the
    /// graph on sampled searches and such searches get the smallest `ef` that reached it (`ef`
    /// above until there are measurements). 0 turns the choice off (always `ef`).
    pub target_recall: f32,
    /// The most threads a build of this collection's graph uses (Qdrant's
    /// `max_indexing_threads`); 0, the default, uses every core. One thread builds the same
    /// graph every time for the same writes; more threads link nodes concurrently, so two builds
    /// differ a little. Not part of the graph's shape: changing it rebuilds nothing.
    pub build_threads: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            enabled: true,
            m: 16,
            ef_construct: 100,
            ef: 128,
            full_scan_threshold: 10_000,
            // int8 codes: the graph walk reads a quarter of the bytes and candidates are rescored
            // with the full vectors, so answers keep full precision; a float graph would hold a
            // second copy of every vector (on glove-50, 83 vs 137 MiB, and as fast). Manhattan
            // has no quantized kernel: see `default_for`.
            quantization: Quantization::Int8,
            target_recall: TARGET_RECALL_DEFAULT,
            build_threads: 0,
        }
    }
}

/// The recall a search with no `ef` aims for, by default.
pub const TARGET_RECALL_DEFAULT: f32 = 0.95;

/// The most build threads a configuration may name (more than any machine's cores are used as
/// every core).
pub const BUILD_THREADS_MAX: usize = 65_536;

impl IndexConfig {
    /// The defaults for a collection of this metric: int8 codes where quantization applies
    /// (cosine, dot, euclid), full-precision codes for manhattan.
    pub fn default_for(metric: Metric) -> IndexConfig {
        IndexConfig {
            quantization: if metric == Metric::Manhattan {
                Quantization::None
            } else {
                Quantization::Int8
            },
            ..IndexConfig::default()
        }
    }

    /// Checks the settings' ranges.
    pub fn validate(&self) -> Result<()> {
        if !(4..=64).contains(&self.m) || !(4..=4096).contains(&self.ef_construct) || !(1..=4096).contains(&self.ef) {
            return Err(Error::InvalidRequest(format!(
                "index parameters out of range: m {} (4..=64), ef_construct {} (4..=4096), ef {} (1..=4096)",
                self.m, self.ef_construct, self.ef
            )));
        }
        if !(0.0..=1.0).contains(&self.target_recall) {
            return Err(Error::InvalidRequest(format!(
                "target recall must be between 0 (off) and 1, got {}",
                self.target_recall
            )));
        }
        if self.build_threads > BUILD_THREADS_MAX {
            return Err(Error::InvalidRequest(format!(
                "build threads must be at most {BUILD_THREADS_MAX} (0: every core), got {}",
                self.build_threads
            )));
        }
        Ok(())
    }
}

impl CollectionConfig {
    /// A configuration with default durability and index for `metric`.
    pub fn new(dim: usize, metric: Metric) -> CollectionConfig {
        CollectionConfig {
            dim,
            metric,
            durability: Durability::Immediate,
            embedder: None,
            embed_precision: EmbedPrecision::Float,
            index: IndexConfig::default_for(metric),
            vectors: VectorSchema::default(),
        }
    }

    /// Checks the dimension, the durability and the index settings.
    pub fn validate(&self) -> Result<()> {
        self.index.validate()?;
        if self.index.quantization != Quantization::None && self.metric == Metric::Manhattan {
            return Err(Error::InvalidRequest(
                "quantization supports cosine, dot and euclid, not manhattan".into(),
            ));
        }
        if let Some(e) = &self.embedder {
            if e.is_empty() || e.len() > NAME_BYTES_MAX || !e.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                return Err(Error::InvalidRequest(format!("invalid embedder name {e:?}")));
            }
        }
        self.vectors.validate(self.dim)?;
        // A collection of named vectors only has no main vector (dimension 0).
        let no_main_ok = self.dim == 0 && !(self.vectors.dense.is_empty() && self.vectors.sparse.is_empty());
        if !no_main_ok && (self.dim == 0 || self.dim > DIMENSION_MAX) {
            return Err(Error::InvalidDimension {
                dim: self.dim,
                max: DIMENSION_MAX,
            });
        }
        if let Durability::Periodic { interval_ms } = self.durability {
            if interval_ms == 0 || interval_ms > PERIODIC_INTERVAL_MS_MAX {
                return Err(Error::InvalidRequest(format!(
                    "group-commit interval must be 1..={PERIODIC_INTERVAL_MS_MAX} ms, got {interval_ms}"
                )));
            }
        }
        Ok(())
    }
}

/// A point to store.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Its id.
    pub id: PointId,
    /// Its main vector; empty when the point has none (see [`crate::vector_model`]).
    pub vector: Vec<f32>,
    /// Its other vectors, by name. A write may also give the main vector here under its name.
    pub vectors: NamedVectors,
    /// Its payload, if any.
    pub payload: Option<Payload>,
}

impl Point {
    /// A point without a payload.
    pub fn new(id: impl Into<PointId>, vector: Vec<f32>) -> Point {
        Point {
            id: id.into(),
            vector,
            vectors: NamedVectors::new(),
            payload: None,
        }
    }

    /// The point with this named vector as well.
    pub fn with_named(mut self, name: impl Into<String>, v: VectorData) -> Point {
        self.vectors.insert(name.into(), v);
        self
    }

    /// The point with this payload.
    pub fn with_payload(mut self, payload: Payload) -> Point {
        self.payload = Some(payload);
        self
    }

    /// A point from its JSON form, `{"id": 1, "vector": [..], "payload": {..}}` (the form of the
    /// CLI's JSON lines and of Qdrant's `points` list). `vector` may also be a map of named
    /// vectors (`{"": [..], "text": {"indices": [..], "values": [..]}}`); the collection sorts
    /// out which one is its main vector. Unknown fields are refused, so a typo is an error
    /// rather than lost data.
    pub fn from_json(v: &Value) -> Result<Point> {
        let o = v
            .as_object()
            .ok_or_else(|| Error::InvalidRequest("a point must be an object with id and vector".into()))?;
        if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "id" | "vector" | "payload")) {
            return Err(Error::InvalidRequest(format!(
                "unknown field {k:?} in a point (expected id, vector, payload)"
            )));
        }
        let id = PointId::from_json(o.get("id").ok_or_else(|| Error::InvalidRequest("a point needs an id".into()))?)?;
        let (vector, vectors) = match o.get("vector") {
            None => return Err(Error::InvalidRequest(format!("point {id} has no vector"))),
            Some(Value::Object(map)) => (Vec::new(), named_vectors_from_json(map)?),
            Some(v) => (vector_from_json(v)?, NamedVectors::new()),
        };
        let payload = payload_from_json(o.get("payload"))?;
        Ok(Point {
            id,
            vector,
            vectors,
            payload,
        })
    }
}

/// Named vectors from JSON: each a list of numbers (dense), a list of lists (a multivector) or
/// `{"indices": [..], "values": [..]}` (sparse).
pub fn named_vectors_from_json(map: &serde_json::Map<String, Value>) -> Result<NamedVectors> {
    map.iter()
        .map(|(name, v)| Ok((name.clone(), vector_data_from_json(name, v)?)))
        .collect()
}

/// One vector of any kind from JSON (see [`named_vectors_from_json`]).
pub fn vector_data_from_json(name: &str, v: &Value) -> Result<VectorData> {
    match v {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => {
            Ok(VectorData::Multi(items.iter().map(vector_from_json).collect::<Result<Vec<_>>>()?))
        }
        Value::Array(_) => Ok(VectorData::Dense(vector_from_json(v)?)),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "indices" | "values")) {
                return Err(Error::InvalidVector {
                    name: name.into(),
                    reason: format!("unknown field {k:?} in a sparse vector (expected indices, values)"),
                });
            }
            let indices = match o.get("indices") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_u64().and_then(|i| u32::try_from(i).ok()).ok_or_else(|| Error::InvalidVector {
                            name: name.into(),
                            reason: format!("sparse indices must be integers from 0 to {}, got {x}", u32::MAX),
                        })
                    })
                    .collect::<Result<Vec<u32>>>()?,
                _ => {
                    return Err(Error::InvalidVector {
                        name: name.into(),
                        reason: "a sparse vector needs a list of indices".into(),
                    })
                }
            };
            let values = match o.get("values") {
                Some(v @ Value::Array(_)) => vector_from_json(v)?,
                _ => {
                    return Err(Error::InvalidVector {
                        name: name.into(),
                        reason: "a sparse vector needs a list of values".into(),
                    })
                }
            };
            if indices.len() != values.len() {
                return Err(Error::Validation {
                    field: format!("{name}.values"),
                    problem: format!("must be the same length as indices ({} vs {})", values.len(), indices.len()),
                });
            }
            Ok(VectorData::Sparse(SparseVector { indices, values }))
        }
        other => Err(Error::InvalidVector {
            name: name.into(),
            reason: format!(
                "expected a list of numbers, a list of lists or a sparse vector, got {}",
                short_json(other)
            ),
        }),
    }
}

/// A vector from JSON: an array of numbers (each read as f32).
pub fn vector_from_json(v: &Value) -> Result<Vec<f32>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|x| {
                x.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| Error::InvalidRequest(format!("vector elements must be numbers, got {x}")))
            })
            .collect(),
        other => Err(Error::InvalidRequest(format!(
            "a vector must be a list of numbers, got {}",
            short_json(other)
        ))),
    }
}

/// A payload from JSON: an object, or nothing (`null` or absent).
pub fn payload_from_json(v: Option<&Value>) -> Result<Option<Payload>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(p)) => Ok(Some(p.clone())),
        Some(other) => Err(Error::InvalidPayload {
            reason: format!("a payload must be a JSON object, got {}", short_json(other)),
            point: None,
        }),
    }
}

/// A JSON value for an error message: cut at 40 characters.
fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 40 {
        s
    } else {
        format!("{}…", s.chars().take(39).collect::<String>())
    }
}

/// A stored point as returned by get and scroll.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Its id.
    pub id: PointId,
    /// Its payload, when asked for.
    pub payload: Option<Payload>,
    /// Its main vector, when asked for (empty when the point has none).
    pub vector: Option<Vec<f32>>,
    /// Its named vectors, when asked for (a named main vector is here too, under its name).
    pub vectors: NamedVectors,
}

impl Record {
    /// This record as a search hit with `score`.
    pub fn scored(self, score: f32) -> ScoredPoint {
        ScoredPoint {
            id: self.id,
            score,
            payload: self.payload,
            vector: self.vector,
            vectors: self.vectors,
        }
    }
}

/// A search hit. `score` is in the collection's metric (a distance for euclid and manhattan).
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredPoint {
    /// Its id.
    pub id: PointId,
    /// Its score in the collection's metric.
    pub score: f32,
    /// Its payload, when asked for.
    pub payload: Option<Payload>,
    /// Its main vector, when asked for (empty when the point has none).
    pub vector: Option<Vec<f32>>,
    /// Its named vectors, when asked for (a named main vector is here too, under its name).
    pub vectors: NamedVectors,
}

/// Checks a vector's length and values.
pub(crate) fn validate_vector(v: &[f32], dim: usize, point: Option<&PointId>) -> Result<()> {
    if v.len() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            got: v.len(),
            point: point.map(|p| p.to_string()),
        });
    }
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        let what = if v[index].is_nan() { "NaN" } else { "an infinity" };
        return Err(Error::NonFiniteVector {
            what,
            index,
            point: point.map(|p| p.to_string()),
        });
    }
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if norm > VECTOR_NORM_MAX {
        return Err(Error::VectorTooLarge {
            norm,
            max: VECTOR_NORM_MAX,
            point: point.map(|p| p.to_string()),
        });
    }
    Ok(())
}

/// Checks a collection name: 1..=128 bytes of ASCII letters, digits, `_`, `-` and `.`, not
/// starting with `.` (so no `..`, no `/`, no control characters, and no clash with the
/// temporary folders, which start with `.`).
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > NAME_BYTES_MAX {
        return bad("it is longer than 128 bytes");
    }
    if name.starts_with('.') {
        return bad("it starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return bad("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    Ok(())
}
