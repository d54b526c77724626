//! Exact scans: one query against many rows ([`scan_top_k`]), and many queries at once as a
//! matrix product ([`batch_top_k`]). These are the oracle for every approximate index.

use crate::simd::{Kernel, Kernels};
use crate::topk::{Scored, TopK};
use crate::ScoreKind;
use rayon::prelude::*;

/// Which rows a scan may return.
#[derive(Clone, Copy, Debug)]
pub enum Allowed<'a> {
    /// A bitset over rows: bit `r % 64` of word `r / 64` set means row `r` is allowed. Rows past
    /// the end of the mask are not allowed.
    Mask(&'a [u64]),
    /// An explicit list of allowed rows (used when a filter is selective: only these are scored).
    List(&'a [u32]),
}

fn kernel_of(kind: ScoreKind, kernels: &Kernels) -> Kernel {
    match kind {
        ScoreKind::Dot => kernels.dot,
        ScoreKind::NegL2Squared => kernels.l2_squared,
        ScoreKind::NegL1 => kernels.l1,
    }
}

/// Calls `f(row)` for every allowed row below `n_rows`, in increasing order for masks.
#[inline]
pub fn for_each_allowed(allowed: Allowed<'_>, n_rows: usize, mut f: impl FnMut(u32)) {
    match allowed {
        Allowed::Mask(words) => {
            for (w, &word) in words.iter().enumerate() {
                let base = w * 64;
                if base >= n_rows {
                    break;
                }
                if word == u64::MAX && base + 64 <= n_rows {
                    for r in base..base + 64 {
                        f(r as u32);
                    }
                    continue;
                }
                let mut bits = word;
                while bits != 0 {
                    let r = base + bits.trailing_zeros() as usize;
                    if r >= n_rows {
                        break;
                    }
                    f(r as u32);
                    bits &= bits - 1;
                }
            }
        }
        Allowed::List(list) => {
            for &r in list {
                if (r as usize) < n_rows {
                    f(r);
                }
            }
        }
    }
}

/// Scores `query` against every allowed row and pushes each into `top`. `rows` is row-major with
/// `dim` columns. Uses the best kernels of this CPU.
pub fn scan_rows(kind: ScoreKind, query: &[f32], rows: &[f32], dim: usize, allowed: Allowed<'_>, top: &mut TopK) {
    scan_rows_with(Kernels::best(), kind, query, rows, dim, allowed, top)
}

/// [`scan_rows`] with the kernels of a chosen ISA (tests compare ISAs with this).
pub fn scan_rows_with(kernels: &Kernels, kind: ScoreKind, query: &[f32], rows: &[f32], dim: usize, allowed: Allowed<'_>, top: &mut TopK) {
    assert_eq!(query.len(), dim, "query length must equal dim");
    assert!(dim > 0 && rows.len().is_multiple_of(dim), "rows must be a whole number of rows");
    let n_rows = rows.len() / dim;
    let kernel = kernel_of(kind, kernels);
    let negate = kind != ScoreKind::Dot;
    for_each_allowed(allowed, n_rows, |r| {
        let start = r as usize * dim;
        let raw = kernel(query, &rows[start..start + dim]);
        let score = if negate { -raw } else { raw };
        if score >= top.threshold() {
            top.push(r, score);
        }
    });
}

/// The `k` best allowed rows for one query, best first.
pub fn scan_top_k(kind: ScoreKind, query: &[f32], rows: &[f32], dim: usize, allowed: Allowed<'_>, k: usize) -> Vec<Scored> {
    let mut top = TopK::new(k);
    scan_rows(kind, query, rows, dim, allowed, &mut top);
    top.into_sorted()
}

/// Queries per block of the batched path: each block streams the whole matrix once, so larger
/// blocks mean less memory traffic; 256 x `ROW_BLOCK` scores stay within L2.
const QUERY_BLOCK: usize = 256;
/// Rows per tile of the batched path.
const ROW_BLOCK: usize = 1024;

/// The `k` best allowed rows for each of many queries (`queries` is row-major, `dim` columns),
/// computed in parallel on rayon's pool. Dot and L2 go through a matrix product
/// (`|q - x|^2 = |q|^2 + |x|^2 - 2<q, x>`), tile by tile, so the full score matrix never exists;
/// L1 and explicit row lists fall back to one scan per query.
pub fn batch_top_k(kind: ScoreKind, queries: &[f32], rows: &[f32], dim: usize, allowed: Allowed<'_>, k: usize) -> Vec<Vec<Scored>> {
    assert!(dim > 0 && queries.len().is_multiple_of(dim) && rows.len().is_multiple_of(dim));
    let n_queries = queries.len() / dim;
    let use_gemm = matches!(allowed, Allowed::Mask(_)) && kind != ScoreKind::NegL1;
    if !use_gemm {
        return queries
            .par_chunks(dim)
            .map(|q| scan_top_k(kind, q, rows, dim, allowed, k))
            .collect();
    }
    let mut out: Vec<Vec<Scored>> = Vec::with_capacity(n_queries);
    let blocks: Vec<Vec<Vec<Scored>>> = queries
        .par_chunks(QUERY_BLOCK * dim)
        .map(|block| gemm_block_top_k(kind, block, rows, dim, allowed, k))
        .collect();
    for block in blocks {
        out.extend(block);
    }
    out
}

fn gemm_block_top_k(kind: ScoreKind, queries: &[f32], rows: &[f32], dim: usize, allowed: Allowed<'_>, k: usize) -> Vec<Vec<Scored>> {
    let n_queries = queries.len() / dim;
    let n_rows = rows.len() / dim;
    let mask = match allowed {
        Allowed::Mask(m) => m,
        Allowed::List(_) => unreachable!("lists take the per-query path"),
    };
    let l2 = kind == ScoreKind::NegL2Squared;
    let query_norms: Vec<f32> = if l2 {
        queries.chunks(dim).map(|q| crate::simd::dot(q, q)).collect()
    } else {
        Vec::new()
    };
    let mut tops: Vec<TopK> = (0..n_queries).map(|_| TopK::new(k)).collect();
    let mut tile = vec![0.0f32; n_queries * ROW_BLOCK];
    let mut row_norms = vec![0.0f32; ROW_BLOCK];
    let mut start = 0;
    while start < n_rows {
        let n = ROW_BLOCK.min(n_rows - start);
        // Skip tiles with no allowed row at all (a very selective mask).
        let first_word = start / 64;
        let last_word = (start + n).div_ceil(64).min(mask.len());
        if first_word >= last_word || mask[first_word..last_word].iter().all(|&w| w == 0) {
            start += n;
            continue;
        }
        let block = &rows[start * dim..(start + n) * dim];
        if l2 {
            for (j, r) in block.chunks(dim).enumerate() {
                row_norms[j] = crate::simd::dot(r, r);
            }
        }
        // SAFETY: `tile` holds n_queries x ROW_BLOCK floats, and we write an n_queries x n
        // matrix with row stride ROW_BLOCK (n <= ROW_BLOCK). `queries` is n_queries x dim
        // row-major (column stride 1, row stride dim). The right-hand side is `block`
        // transposed: element (i, j) is block[j * dim + i], so row stride 1, column stride dim;
        // block holds n x dim floats. No pointer is read or written past those bounds.
        unsafe {
            gemm::gemm(
                n_queries,
                n,
                dim,
                tile.as_mut_ptr(),
                1,
                ROW_BLOCK as isize,
                false,
                queries.as_ptr(),
                1,
                dim as isize,
                block.as_ptr(),
                dim as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (qi, top) in tops.iter_mut().enumerate() {
            let scores = &tile[qi * ROW_BLOCK..qi * ROW_BLOCK + n];
            let qn = if l2 { query_norms[qi] } else { 0.0 };
            for (j, &dot) in scores.iter().enumerate() {
                let r = start + j;
                if mask.get(r / 64).is_none_or(|w| w >> (r % 64) & 1 == 0) {
                    continue;
                }
                let score = if l2 { -(qn + row_norms[j] - 2.0 * dot).max(0.0) } else { dot };
                if score >= top.threshold() {
                    top.push(r as u32, score);
                }
            }
        }
        start += n;
    }
    tops.into_iter().map(TopK::into_sorted).collect()
}
