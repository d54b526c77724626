//! Qdrant's vector model: besides its main dense vector (`CollectionConfig::dim` and `metric`,
//! the one the HNSW graph indexes), a collection may declare *named* vectors: dense ones (each
//! with its own size and metric), multivectors (a matrix per point, scored by MaxSim, for late
//! interaction models such as ColBERT) and sparse ones (index -> weight maps, scored by dot
//! product through an inverted index, optionally weighted by IDF). A point may hold any subset
//! of them, the main vector included.
//!
//! The main vector has a name too (`VectorSchema::main`, `""` for Qdrant's unnamed vector); in a
//! [`crate::Point`] it is `vector` (empty when the point has none) and every other vector is in
//! `vectors`. A collection with no dense vector at all (sparse only) has `dim == 0`.

use crate::error::{Error, Result};
use crate::types::{Metric, DIMENSION_MAX, NAME_BYTES_MAX};
use std::collections::BTreeMap;

/// The most non-zero entries one sparse vector may hold.
pub const SPARSE_NNZ_MAX: usize = 65_536;
/// The most rows one multivector may hold.
pub const MULTIVECTOR_ROWS_MAX: usize = 4_096;
/// The most bytes one point's named vectors may take (4 per value, 8 per sparse entry), so a
/// point always fits in one WAL record beside its main vector and payload.
pub const POINT_VECTOR_BYTES_MAX: usize = 32 << 20;

const _: () = assert!(
    POINT_VECTOR_BYTES_MAX + crate::types::DIMENSION_MAX * 4 + crate::types::PAYLOAD_BYTES_MAX + (1 << 20)
        < quiver_storage::wal::WAL_RECORD_BYTES_MAX
);

/// The most named vectors (dense, multi and sparse together) a collection may declare.
pub const NAMED_VECTORS_MAX: usize = 64;

/// A sparse vector: weights at some indices, zero elsewhere. Stored sorted by index, each index
/// once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseVector {
    /// The indices, ascending and unique once validated.
    pub indices: Vec<u32>,
    /// One weight per index.
    pub values: Vec<f32>,
}

impl SparseVector {
    /// Checks equal lengths, unique indices and finite values, and sorts by index.
    pub fn validated(mut self, name: &str) -> Result<SparseVector> {
        let bad = |reason: String| Error::InvalidVector {
            name: name.to_string(),
            reason,
        };
        if self.indices.len() != self.values.len() {
            return Err(bad(format!(
                "indices and values must have the same length ({} vs {})",
                self.indices.len(),
                self.values.len()
            )));
        }
        if self.indices.len() > SPARSE_NNZ_MAX {
            return Err(bad(format!("{} entries exceed the limit of {SPARSE_NNZ_MAX}", self.indices.len())));
        }
        if let Some(v) = self.values.iter().find(|v| !v.is_finite()) {
            return Err(bad(format!("values must be finite, got {v}")));
        }
        if !self.indices.windows(2).all(|w| w[0] < w[1]) {
            let mut pairs: Vec<(u32, f32)> = self.indices.iter().copied().zip(self.values.iter().copied()).collect();
            pairs.sort_by_key(|p| p.0);
            if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(bad(format!("indices must be unique, {} appears twice", w[0].0)));
            }
            (self.indices, self.values) = pairs.into_iter().unzip();
        }
        Ok(self)
    }

    /// The dot product with another sparse vector (both sorted).
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut s) = (0, 0, 0.0f32);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    s += self.values[i] * other.values[j];
                    i += 1;
                    j += 1;
                }
            }
        }
        s
    }
}

/// One vector of a point other than its main one.
#[derive(Clone, Debug, PartialEq)]
pub enum VectorData {
    /// A dense vector of a named dense space.
    Dense(Vec<f32>),
    /// The rows of a multivector (each of the space's size).
    Multi(Vec<Vec<f32>>),
    /// A sparse vector.
    Sparse(SparseVector),
}

impl VectorData {
    /// The bytes it takes in the WAL and in segments (values only).
    pub fn bytes(&self) -> usize {
        match self {
            VectorData::Dense(v) => v.len() * 4,
            VectorData::Multi(rows) => rows.iter().map(|r| r.len() * 4).sum(),
            VectorData::Sparse(s) => s.indices.len() * 8,
        }
    }

    /// What kind of vector this is, in words.
    pub fn kind(&self) -> &'static str {
        match self {
            VectorData::Dense(_) => "dense",
            VectorData::Multi(_) => "multi",
            VectorData::Sparse(_) => "sparse",
        }
    }
}

/// A point's vectors other than the main one, by name.
pub type NamedVectors = BTreeMap<String, VectorData>;

/// A named dense space (or a multivector space when `multivector`).
#[derive(Clone, Debug, PartialEq)]
pub struct DenseParams {
    /// The size of each vector (each row, for a multivector).
    pub dim: usize,
    /// How vectors are compared (for a multivector: rows, then MaxSim sums the best per row).
    pub metric: Metric,
    /// Each point holds a matrix, scored by MaxSim.
    pub multivector: bool,
}

/// A named sparse space.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseParams {
    /// Queries are weighted by each index's inverse document frequency in the collection
    /// (`ln((n - df + 0.5) / (df + 0.5) + 1)`, as Qdrant and BM25 compute it).
    pub idf: bool,
}

/// The named vectors of a collection, beside its main vector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VectorSchema {
    /// The main vector's name (`""`: Qdrant's unnamed vector).
    pub main: String,
    /// Named dense and multivector spaces (not the main one).
    pub dense: BTreeMap<String, DenseParams>,
    /// Named sparse spaces.
    pub sparse: BTreeMap<String, SparseParams>,
}

impl VectorSchema {
    /// True when the collection has nothing but its main vector.
    pub fn is_plain(&self) -> bool {
        self.main.is_empty() && self.dense.is_empty() && self.sparse.is_empty()
    }

    /// Checks names, sizes and that no name is used twice.
    pub fn validate(&self, main_dim: usize) -> Result<()> {
        if self.dense.len() + self.sparse.len() > NAMED_VECTORS_MAX {
            return Err(Error::InvalidRequest(format!(
                "at most {NAMED_VECTORS_MAX} named vectors, got {}",
                self.dense.len() + self.sparse.len()
            )));
        }
        for name in self
            .dense
            .keys()
            .chain(self.sparse.keys())
            .chain((!self.main.is_empty()).then_some(&self.main))
        {
            if name.len() > NAME_BYTES_MAX {
                return Err(Error::InvalidRequest(format!("vector name longer than {NAME_BYTES_MAX} bytes")));
            }
        }
        for (name, p) in &self.dense {
            if *name == self.main && main_dim > 0 {
                return Err(Error::InvalidRequest(format!("vector name {name:?} is used twice")));
            }
            if p.dim == 0 || p.dim > DIMENSION_MAX {
                return Err(Error::InvalidDimension {
                    dim: p.dim,
                    max: DIMENSION_MAX,
                });
            }
        }
        for name in self.sparse.keys() {
            if self.dense.contains_key(name) || (*name == self.main && main_dim > 0) {
                return Err(Error::InvalidRequest(format!("vector name {name:?} is used twice")));
            }
        }
        Ok(())
    }

    /// A collection's vectors from its dense spaces (in the order given) and sparse spaces:
    /// the main vector (the one the HNSW graph indexes) is the unnamed one (`""`), else the
    /// first dense one that is not a multivector. Returns its size and metric (0 and dot when
    /// every space is sparse or multi) and the schema.
    pub fn from_spaces(dense: Vec<(String, DenseParams)>, sparse: BTreeMap<String, SparseParams>) -> Result<(usize, Metric, VectorSchema)> {
        let main_at = dense
            .iter()
            .position(|(n, p)| n.is_empty() && !p.multivector)
            .or_else(|| dense.iter().position(|(_, p)| !p.multivector));
        let mut schema = VectorSchema {
            sparse,
            ..VectorSchema::default()
        };
        let (mut dim, mut metric) = (0, Metric::Dot);
        for (i, (name, p)) in dense.into_iter().enumerate() {
            if Some(i) == main_at {
                (dim, metric) = (p.dim, p.metric);
                schema.main = name;
            } else if schema.dense.insert(name.clone(), p).is_some() {
                return Err(Error::InvalidRequest(format!("vector name {name:?} is used twice")));
            }
        }
        if schema.sparse.contains_key(&schema.main) && dim > 0 || schema.dense.keys().any(|k| schema.sparse.contains_key(k)) {
            return Err(Error::InvalidRequest("a vector name is used by a dense and a sparse vector".into()));
        }
        schema.validate(dim)?;
        Ok((dim, metric, schema))
    }

    /// Every vector name the collection knows, the main one first (when it has one).
    pub fn names(&self, main_dim: usize) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        if main_dim > 0 {
            out.push(&self.main);
        }
        out.extend(self.dense.keys().map(String::as_str));
        out.extend(self.sparse.keys().map(String::as_str));
        out
    }
}

/// A query against one vector space.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryVector {
    /// A dense vector (for a multivector space: a one-row query).
    Dense(Vec<f32>),
    /// A multivector query (MaxSim).
    Multi(Vec<Vec<f32>>),
    /// A sparse query.
    Sparse(SparseVector),
}

/// MaxSim: for each query row, its best similarity to a document row, summed. `score` gives
/// "higher is better" similarities (the kernel's score kind).
pub fn max_sim(query: &[Vec<f32>], doc: &[Vec<f32>], score: impl Fn(&[f32], &[f32]) -> f32) -> f32 {
    query
        .iter()
        .map(|q| doc.iter().map(|d| score(q, d)).fold(f32::NEG_INFINITY, f32::max))
        .filter(|s| s.is_finite())
        .sum()
}

/// The IDF weight of an index held by `df` of `n` points.
pub fn idf(n: usize, df: usize) -> f32 {
    let (n, df) = (n as f64, df as f64);
    (((n - df + 0.5) / (df + 0.5)) + 1.0).ln() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_vectors_are_sorted_and_checked() {
        let v = SparseVector {
            indices: vec![5, 1, 3],
            values: vec![0.5, 0.1, 0.3],
        }
        .validated("s")
        .unwrap();
        assert_eq!(v.indices, vec![1, 3, 5]);
        assert_eq!(v.values, vec![0.1, 0.3, 0.5]);
        let dup = SparseVector {
            indices: vec![2, 1, 2],
            values: vec![1.0, 1.0, 1.0],
        };
        assert!(dup.validated("s").unwrap_err().to_string().contains("unique"));
        let short = SparseVector {
            indices: vec![1, 2],
            values: vec![1.0],
        };
        assert!(short.validated("s").is_err());
        let nan = SparseVector {
            indices: vec![1],
            values: vec![f32::NAN],
        };
        assert!(nan.validated("s").is_err());
    }

    #[test]
    fn sparse_dot_matches_a_dense_dot() {
        let a = SparseVector {
            indices: vec![1, 4, 9],
            values: vec![1.0, 2.0, 3.0],
        };
        let b = SparseVector {
            indices: vec![0, 4, 9, 12],
            values: vec![7.0, 0.5, -1.0, 2.0],
        };
        assert_eq!(a.dot(&b), 2.0 * 0.5 - 3.0);
        assert_eq!(b.dot(&a), a.dot(&b));
    }

    #[test]
    fn idf_is_bm25s() {
        // One document of ten holds the term.
        assert!((idf(10, 1) - ((9.5f64 / 1.5 + 1.0).ln() as f32)).abs() < 1e-6);
        assert!(idf(10, 10) > 0.0, "never negative, even for a term in every document");
    }

    #[test]
    fn max_sim_sums_the_best_match_per_query_row() {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let q = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let d = vec![vec![0.5, 0.1], vec![0.2, 0.9], vec![-1.0, 0.0]];
        assert_eq!(max_sim(&q, &d, dot), 0.5 + 0.9);
    }
}
