//! Numbers in, numbers out: the distance kernels, top-k selection and the exact scans that
//! Quiver's search is built on.
//!
//! This crate knows nothing about ids, payloads or files. It sees a row-major matrix of `f32`
//! (`rows`, `dim` columns), a query, and which rows are allowed; it returns row indices with
//! scores. Every score here is "higher is better" (see [`ScoreKind`]): the library turns it back
//! into the user's metric.
//!
//! Each kernel has a scalar reference in [`scalar`]; the SIMD paths in [`simd`] are chosen once
//! per process from the CPU's features ([`isa`]) and are tested against the scalar twin.

pub mod f16;
pub mod matmul;
pub mod nn;
pub mod panels;
pub mod qmm;
pub mod quant;
pub mod scalar;
pub mod scan;
pub mod simd;
pub mod topk;

pub use qmm::Precision;
pub use scan::{batch_top_k, scan_rows, scan_top_k, Allowed};
pub use simd::{isa, Isa};
pub use topk::{Scored, TopK};

/// What a score means. All scores are "higher is better" so that one top-k serves every metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScoreKind {
    /// The inner product `<q, x>` (cosine is the inner product of normalised vectors).
    Dot,
    /// The negated squared Euclidean distance `-|q - x|^2`.
    NegL2Squared,
    /// The negated Manhattan distance `-sum |q_i - x_i|`.
    NegL1,
}

impl ScoreKind {
    /// The score of `query` against one `row`: exactly the score an exact scan
    /// ([`scan_rows`]) gives the row, whichever path reaches it (a block of allowed rows, a lone
    /// row, a list). Every other user of a row's full-precision score (rescoring after a graph
    /// or a prefilter, recommendation strategies, the distance matrix, diversity) goes through
    /// here too, so two ways of asking for one row's score agree bit for bit (Qdrant's tests
    /// compare, say, a relevance-feedback query without pairs to a plain nearest query). For dot
    /// products this is the block kernel's arithmetic (`Kernels::dot_one`), a last bit apart from
    /// [`simd::dot`].
    #[inline]
    pub fn score(self, query: &[f32], row: &[f32]) -> f32 {
        match self {
            ScoreKind::Dot => (simd::Kernels::best().dot_one)(query, row),
            ScoreKind::NegL2Squared => -simd::l2_squared(query, row),
            ScoreKind::NegL1 => -simd::l1(query, row),
        }
    }

    /// The same score computed by the scalar reference: the oracle for tests.
    pub fn score_scalar(self, query: &[f32], row: &[f32]) -> f32 {
        match self {
            ScoreKind::Dot => scalar::dot(query, row),
            ScoreKind::NegL2Squared => -scalar::l2_squared(query, row),
            ScoreKind::NegL1 => -scalar::l1(query, row),
        }
    }
}

/// Scales `vector` to unit Euclidean length in place. A zero vector stays zero (its cosine with
/// anything is then 0, which is what Qdrant does too). Returns the norm before scaling.
pub fn normalize(vector: &mut [f32]) -> f32 {
    let norm = simd::dot(vector, vector).sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inv = 1.0 / norm;
        for x in vector.iter_mut() {
            *x *= inv;
        }
    }
    norm
}
