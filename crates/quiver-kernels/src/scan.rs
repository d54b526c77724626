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

/// The kernel for one row. Dot products use the block kernel's arithmetic (`dot_one`), so a
/// row's score is the same whether it was scored in a block or alone.
fn kernel_of(kind: ScoreKind, kernels: &Kernels) -> Kernel {
    match kind {
        ScoreKind::Dot => kernels.dot_one,
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

/// How many rows ahead a list scan prefetches: rows of a list are scattered, so each one is a
/// cache miss unless it is asked for early.
const LIST_PREFETCH: usize = 8;

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
    if let Allowed::List(list) = allowed {
        for (i, &r) in list.iter().enumerate() {
            if let Some(&ahead) = list.get(i + LIST_PREFETCH) {
                if let Some(row) = rows.get(ahead as usize * dim..(ahead as usize + 1) * dim) {
                    crate::quant::prefetch(row);
                }
            }
            let Some(row) = rows.get(r as usize * dim..(r as usize + 1) * dim) else {
                continue;
            };
            let raw = kernel(query, row);
            let score = if negate { -raw } else { raw };
            if score >= top.threshold() {
                top.push(r, score);
            }
        }
        return;
    }
    if let (ScoreKind::Dot, Allowed::Mask(words)) = (kind, allowed) {
        // Runs of allowed rows are scored 64 at a time by the block kernel.
        let mut scores = [0.0f32; 64];
        for (w, &word) in words.iter().enumerate() {
            let base = w * 64;
            if base >= n_rows {
                break;
            }
            if word == u64::MAX && base + 64 <= n_rows {
                (kernels.dot_rows)(query, &rows[base * dim..(base + 64) * dim], &mut scores);
                for (i, &score) in scores.iter().enumerate() {
                    if score >= top.threshold() {
                        top.push((base + i) as u32, score);
                    }
                }
                continue;
            }
            let mut bits = word;
            while bits != 0 {
                let r = base + bits.trailing_zeros() as usize;
                if r >= n_rows {
                    break;
                }
                let score = kernel(query, &rows[r * dim..(r + 1) * dim]);
                if score >= top.threshold() {
                    top.push(r as u32, score);
                }
                bits &= bits - 1;
            }
        }
        return;
    }
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

/// Queries per matrix product in the batched path. With 64 queries (and 1,024 rows) per
/// product, the gemm crate packed each tile of rows again for every 64 queries; 256 made
/// batches of 384-d queries 1.22x faster and of 50-d ones 1.07x on an AMD EPYC (Zen 3, 512
/// KiB of L2; `quiver bench exact`, 2,000 x 50,000 and 10,000 x 390,000, three runs each).
const QUERY_SUB_BLOCK: usize = 256;
/// The fewest queries of a batch a thread takes (smaller batches use fewer threads).
const SHARE_MIN: usize = 64;
/// Bytes of rows per tile of the batched path: they stay in L2 (512 KiB and more) while
/// every query of the thread's share is multiplied against them.
const ROW_BLOCK_BYTES: usize = 256 << 10;

/// Rows per tile for vectors of `dim` floats: `ROW_BLOCK_BYTES` of them, a multiple of 64
/// (whole words of the allowed mask) from 64 to 1,024.
fn row_block(dim: usize) -> usize {
    (ROW_BLOCK_BYTES / (dim * 4).max(1)).clamp(64, 1024) / 64 * 64
}

/// Scores checked against the threshold at once before any is looked at one by one.
const THRESHOLD_CHUNK: usize = 32;

/// The `k` best allowed rows for each of many queries (`queries` is row-major, `dim` columns),
/// computed in parallel on rayon's pool. Dot and L2 go through a matrix product
/// (`|q - x|^2 = |q|^2 + |x|^2 - 2<q, x>`), tile by tile, so the full score matrix never exists;
/// L1 and explicit row lists fall back to one scan per query.
///
/// Loop order: each thread takes a contiguous share of the queries; for each tile of rows (kept
/// in cache) it multiplies all of its queries, 64 at a time, and feeds the scores to the per-query
/// top-k, whose threshold rejects whole chunks of scores with one vectorised comparison.
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
    let threads = rayon::current_num_threads().max(1);
    let share = n_queries.div_ceil(threads).max(SHARE_MIN);
    let parts: Vec<Vec<Vec<Scored>>> = queries
        .par_chunks(share * dim)
        .map(|part| gemm_top_k(kind, part, rows, dim, allowed, k))
        .collect();
    parts.into_iter().flatten().collect()
}

fn gemm_top_k(kind: ScoreKind, queries: &[f32], rows: &[f32], dim: usize, allowed: Allowed<'_>, k: usize) -> Vec<Vec<Scored>> {
    let row_block = row_block(dim);
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
        vec![0.0; n_queries]
    };
    let mut tops: Vec<TopK> = (0..n_queries).map(|_| TopK::new(k)).collect();
    let mut tile = vec![0.0f32; QUERY_SUB_BLOCK * row_block];
    let mut row_norms = vec![0.0f32; row_block];
    let mut start = 0;
    while start < n_rows {
        let n = row_block.min(n_rows - start);
        let first_word = start / 64;
        let last_word = (start + n).div_ceil(64).min(mask.len());
        let words = if first_word < last_word {
            &mask[first_word..last_word]
        } else {
            &[][..]
        };
        // Skip tiles with no allowed row; note tiles where every row is allowed (the common
        // case) so the inner loop need not test the mask.
        if words.iter().all(|&w| w == 0) {
            start += n;
            continue;
        }
        let full = words.len() * 64 >= n
            && (0..n).all(|j| {
                let r = start + j;
                words[r / 64 - first_word] >> (r % 64) & 1 == 1
            });
        let block = &rows[start * dim..(start + n) * dim];
        if l2 {
            for (j, r) in block.chunks(dim).enumerate() {
                row_norms[j] = crate::simd::dot(r, r);
            }
        }
        let mut q0 = 0;
        while q0 < n_queries {
            let m = QUERY_SUB_BLOCK.min(n_queries - q0);
            let sub = &queries[q0 * dim..(q0 + m) * dim];
            crate::matmul::matmul_nt(sub, m, dim, block, n, &mut tile[..m * n]);
            for qi in 0..m {
                let top = &mut tops[q0 + qi];
                let qn = query_norms[q0 + qi];
                let dots = &tile[qi * n..(qi + 1) * n];
                let norms = &row_norms[..n];
                let mut c0 = 0;
                while c0 < n {
                    let c1 = (c0 + THRESHOLD_CHUNK).min(n);
                    // One vectorisable pass: does any score of the chunk reach the threshold?
                    // For L2, score >= t  <=>  2<q,x> - |x|^2 >= t + |q|^2.
                    let threshold = top.threshold();
                    let any = if l2 {
                        let t = threshold + qn;
                        dots[c0..c1]
                            .iter()
                            .zip(&norms[c0..c1])
                            .fold(false, |acc, (&d, &xn)| acc | (2.0 * d - xn >= t))
                    } else {
                        dots[c0..c1].iter().fold(false, |acc, &d| acc | (d >= threshold))
                    };
                    if any {
                        for j in c0..c1 {
                            let r = start + j;
                            if !full && mask[r / 64] >> (r % 64) & 1 == 0 {
                                continue;
                            }
                            let score = if l2 { -(qn + norms[j] - 2.0 * dots[j]).max(0.0) } else { dots[j] };
                            if score >= top.threshold() {
                                top.push(r as u32, score);
                            }
                        }
                    }
                    c0 = c1;
                }
            }
            q0 += m;
        }
        start += n;
    }
    tops.into_iter().map(TopK::into_sorted).collect()
}
