//! Quiver's approximate nearest-neighbour index: an HNSW graph ([`hnsw`]) over stored codes
//! ([`codes`]: full precision, int8 or binary), with persistence ([`persist`]) and a parallel
//! builder ([`build`]).
//!
//! The index knows nodes (dense `u32` numbers in insertion order) and vectors, nothing of point
//! ids, payloads or files: the library maps nodes to points, decides what is allowed (deletes,
//! filters) and rescores quantized candidates against full-precision vectors.

#![forbid(unsafe_code)]

pub mod cells;
pub mod codes;
mod half_rows;
pub mod hnsw;
pub mod persist;

pub use codes::{Codes, Prepared, Quantization};
pub use hnsw::{Hnsw, HnswParams, Scratch};

use quiver_kernels::ScoreKind;
use rayon::prelude::*;

/// Builds an index over `rows` (row-major, `dim` columns) on the current rayon pool.
pub fn build(dim: usize, kind: ScoreKind, quantization: Quantization, params: HnswParams, rows: &[f32]) -> Hnsw {
    let codes = Codes::new(dim, kind, quantization, rows);
    let mut index = Hnsw::new(params, codes);
    let first = index.add(rows);
    index.link_range(first, rows);
    index.finish_build();
    index
}

impl Hnsw {
    /// Links the nodes `first..first + rows.len() / dim` (already added) in parallel; `rows` are
    /// their full-precision vectors. Node `first` goes first so a new graph has an entry point.
    pub fn link_range(&self, first: u32, rows: &[f32]) {
        let dim = self.codes().dim;
        let n = rows.len() / dim;
        if n == 0 {
            return;
        }
        let mut scratch = Scratch::new();
        self.link(first, &rows[..dim], &mut scratch);
        (1..n).into_par_iter().with_min_len(64).for_each_init(Scratch::new, |s, i| {
            self.link(first + i as u32, &rows[i * dim..(i + 1) * dim], s);
        });
    }
}
