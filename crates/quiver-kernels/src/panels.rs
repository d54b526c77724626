//! A linear layer's weights packed once, when the model loads, for the embedder's products
//! `out = x W^T` with a batch of token rows `x`.
//!
//! A general matrix product (the `gemm` crate) copies `W` into its own panel layout on every
//! call: 42 MB of MiniLM weights per forward pass, about 6% of embedding short sentences. Here
//! `W` is laid out once as panels of 16 output columns (`k x 16`, column `j` of panel `p` holding
//! row `16 p + j` of `W`), and each call packs only the activations, which are far fewer bytes
//! than the weights for the batches the embedder runs.
//!
//! The micro-kernel multiplies a strip of `R` token rows by one panel, keeping the `R x 16` sums
//! in registers: per input index, one panel row (16 weights) and `R` broadcasts of activations
//! feed `R x 16` fused multiply-adds. It is written once, as plain Rust over fixed-size arrays
//! that the compiler turns into vector code, and compiled for AVX2+FMA (`R` = 6: twelve 8-lane
//! sums) and for AVX-512F (`R` = 12: twelve 16-lane sums). The two paths compute the same fused
//! sums in the same order, so they agree to the bit; the tests check both against a schoolbook
//! product in `f64`. CPUs with neither use the `gemm` crate ([`F32Panels::fast`] says which).

use crate::simd::Isa;
use rayon::prelude::*;

/// Output columns per panel.
pub const PANEL: usize = 16;

/// `W` (`n x k`, PyTorch's `Linear` layout: output by input) packed in panels of [`PANEL`]
/// output columns.
#[derive(Clone, Debug)]
pub struct F32Panels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

/// `R` activation rows, interleaved: element `(kk, r)` at `kk * R + r`, so that the micro-kernel
/// reads the `R` values it broadcasts for one input index from one place.
fn pack_strip<const R: usize>(x: &[f32], rows: usize, k: usize, strip: &mut [f32]) {
    debug_assert!(rows <= R && x.len() >= rows * k && strip.len() == k * R);
    for (kk, s) in strip.chunks_exact_mut(R).enumerate() {
        for (r, v) in s.iter_mut().enumerate() {
            *v = if r < rows { x[r * k + kk] } else { 0.0 };
        }
    }
}

/// The `R x 16` products of a packed strip and one panel.
#[inline(always)]
fn tile<const R: usize>(panel: &[f32], strip: &[f32]) -> [[f32; PANEL]; R] {
    let mut acc = [[0.0f32; PANEL]; R];
    for (w, xs) in panel.chunks_exact(PANEL).zip(strip.chunks_exact(R)) {
        for r in 0..R {
            for j in 0..PANEL {
                acc[r][j] = xs[r].mul_add(w[j], acc[r][j]);
            }
        }
    }
    acc
}

/// One block of strips (already packed, `k * R` values each) against every panel, into `out`
/// (the block's `rows` rows of the output, `n` wide).
#[inline(always)]
fn block_body<const R: usize>(data: &[f32], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
    for (p, panel) in data.chunks_exact(k * PANEL).enumerate() {
        for (s, strip) in strips.chunks_exact(k * R).enumerate() {
            let acc = tile::<R>(panel, strip);
            for (r, a) in acc.iter().enumerate().take(rows.saturating_sub(s * R)) {
                let o = &mut out[(s * R + r) * n + p * PANEL..][..PANEL];
                if accumulate {
                    o.iter_mut().zip(a).for_each(|(o, a)| *o += a);
                } else {
                    o.copy_from_slice(a);
                }
            }
        }
    }
}

type BlockKernel = fn(&[f32], usize, usize, &[f32], usize, &mut [f32], bool);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    /// AVX2+FMA: strips of 6 rows, sums in twelve `ymm` registers.
    pub const AVX2_ROWS: usize = 6;
    /// AVX-512F: strips of 12 rows, sums in twelve `zmm` registers.
    pub const AVX512_ROWS: usize = 12;

    pub fn block_avx2(data: &[f32], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn inner(data: &[f32], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
            block_body::<AVX2_ROWS>(data, k, n, strips, rows, out, accumulate)
        }
        // SAFETY: only chosen by `F32Panels::path` after checking the CPU has AVX2 and FMA; the
        // body is safe code.
        unsafe { inner(data, k, n, strips, rows, out, accumulate) }
    }

    pub fn block_avx512(data: &[f32], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn inner(data: &[f32], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
            block_body::<AVX512_ROWS>(data, k, n, strips, rows, out, accumulate)
        }
        // SAFETY: only chosen by `F32Panels::path` after checking the CPU has AVX-512F; the body
        // is safe code.
        unsafe { inner(data, k, n, strips, rows, out, accumulate) }
    }
}

/// The baseline build of the 6-row kernel: the twin the tests compare the vector paths with (slow
/// where `mul_add` has no instruction, so never dispatched to).
fn block_baseline(data: &[f32], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
    block_body::<6>(data, k, n, strips, rows, out, accumulate)
}

/// Most strips one task packs and multiplies: 8 strips of 6 rows of 1,536 inputs are 295 KB,
/// which stays in a core's L2 beside one panel while every panel passes over it.
const MAX_STRIPS_PER_BLOCK: usize = 8;

impl F32Panels {
    /// Packs `w`, `n x k` row-major. `None` unless `n` is a positive multiple of 16 and `k > 0`.
    pub fn pack(w: &[f32], n: usize, k: usize) -> Option<F32Panels> {
        if n == 0 || k == 0 || !n.is_multiple_of(PANEL) || w.len() != n * k {
            return None;
        }
        let mut data = vec![0.0f32; n * k];
        for (p, panel) in data.chunks_exact_mut(k * PANEL).enumerate() {
            for (kk, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = w[(p * PANEL + j) * k + kk];
                }
            }
        }
        Some(F32Panels { k, n, data })
    }

    /// Whether this CPU has a vector path for the panels (AVX2+FMA or AVX-512F). Elsewhere the
    /// `gemm` crate is the better choice and callers should use it.
    pub fn fast() -> bool {
        F32Panels::path(crate::isa()).is_some()
    }

    /// The kernel for `isa` and its strip height; `None` for ISAs without a fast path.
    fn path(isa: Isa) -> Option<(BlockKernel, usize)> {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma if Isa::available().contains(&Isa::Avx2Fma) => Some((x86::block_avx2, x86::AVX2_ROWS)),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if Isa::available().contains(&Isa::Avx512) => Some((x86::block_avx512, x86::AVX512_ROWS)),
            _ => None,
        }
    }

    /// Output width (`n`).
    pub fn outputs(&self) -> usize {
        self.n
    }

    /// Input width (`k`).
    pub fn inputs(&self) -> usize {
        self.k
    }

    /// `out (m x n) := [out +] x (m x k) * W^T` on every core, on this CPU's fastest path (the
    /// baseline kernel where there is none: call it only when [`F32Panels::fast`]).
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], accumulate: bool) {
        self.matmul_isa(crate::isa(), x, m, out, accumulate)
    }

    /// [`F32Panels::matmul`] on a chosen path (the tests compare the paths); an ISA without a
    /// fast path runs the baseline kernel.
    pub fn matmul_isa(&self, isa: Isa, x: &[f32], m: usize, out: &mut [f32], accumulate: bool) {
        let (k, n) = (self.k, self.n);
        assert!(x.len() == m * k && out.len() == m * n, "F32Panels::matmul shapes");
        if m == 0 {
            return;
        }
        let (kernel, rows) = F32Panels::path(isa).unwrap_or((block_baseline as BlockKernel, 6));
        // A multiple of the thread count of blocks of even size (the threads finish together),
        // none larger than the cache allows.
        let strips = m.div_ceil(rows);
        let threads = rayon::current_num_threads().max(1);
        let blocks = threads * strips.div_ceil(threads * MAX_STRIPS_PER_BLOCK);
        let per_block = strips.div_ceil(blocks);
        let block_rows = per_block * rows;
        out.par_chunks_mut(block_rows * n)
            .zip(x.par_chunks(block_rows * k))
            .for_each_init(Vec::new, |packed, (out, x)| {
                let rows_here = x.len() / k;
                let strips_here = rows_here.div_ceil(rows);
                packed.clear();
                packed.resize(strips_here * rows * k, 0.0);
                for (s, strip) in packed.chunks_exact_mut(rows * k).enumerate() {
                    let first = s * rows;
                    let count = (rows_here - first).min(rows);
                    let src = &x[first * k..(first + count) * k];
                    match rows {
                        6 => pack_strip::<6>(src, count, k, strip),
                        _ => pack_strip::<12>(src, count, k, strip),
                    }
                }
                kernel(&self.data, k, n, packed, rows_here, out, accumulate);
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schoolbook(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = (0..k).map(|t| x[r * k + t] as f64 * w[c * k + t] as f64).sum();
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i + seed) * 7919) % 2003) as f32 / 1001.0 - 1.0).collect()
    }

    /// Every path (the baseline twin included) against the product in `f64`, with and without
    /// accumulation, for row counts below, at and past each strip height and block size, and
    /// input widths that are not multiples of a vector.
    #[test]
    fn every_path_matches_the_schoolbook_product() {
        for (n, k) in [(16, 1), (48, 37), (32, 384), (16, 1536)] {
            let w = values(n * k, 3);
            let panels = F32Panels::pack(&w, n, k).unwrap();
            assert_eq!((panels.outputs(), panels.inputs()), (n, k));
            for m in [1, 2, 5, 6, 7, 11, 12, 13, 25, 48, 49, 97, 100] {
                if k == 1536 && m > 25 {
                    continue; // the baseline's software fused multiply-add is slow
                }
                let x = values(m * k, 11 * m);
                let want = schoolbook(&x, &w, m, n, k);
                let tolerance = |w: f64| 1e-5 * (k as f64).sqrt() * (1.0 + w.abs());
                for isa in Isa::available() {
                    let mut got = vec![0.5f32; m * n];
                    panels.matmul_isa(isa, &x, m, &mut got, true);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        let w = w + 0.5;
                        assert!(
                            (*g as f64 - w).abs() <= tolerance(w),
                            "{isa:?} n={n} k={k} m={m} at {i}: {g} vs {w}"
                        );
                    }
                    panels.matmul_isa(isa, &x, m, &mut got, false);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (*g as f64 - w).abs() <= tolerance(*w),
                            "{isa:?} n={n} k={k} m={m} at {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    /// Every path computes the same fused sums in the same order, whatever its strip height:
    /// each vector path equals the baseline kernel to the bit.
    #[test]
    fn every_path_equals_the_baseline_to_the_bit() {
        let (n, k, m) = (32, 100, 29);
        let (w, x) = (values(n * k, 5), values(m * k, 9));
        let panels = F32Panels::pack(&w, n, k).unwrap();
        let mut baseline = vec![0.0f32; m * n];
        panels.matmul_isa(Isa::Scalar, &x, m, &mut baseline, false);
        for isa in Isa::available() {
            let mut got = vec![0.0f32; m * n];
            panels.matmul_isa(isa, &x, m, &mut got, false);
            assert_eq!(baseline, got, "{isa:?}");
        }
    }

    #[test]
    fn shapes_that_cannot_be_packed_are_refused() {
        let w = values(40 * 8, 1);
        assert!(F32Panels::pack(&w, 40, 8).is_none(), "n must be a multiple of 16");
        assert!(F32Panels::pack(&w[..32 * 8], 32, 0).is_none());
        assert!(F32Panels::pack(&w[..10], 16, 8).is_none(), "length must be n * k");
        let panels = F32Panels::pack(&w[..32 * 8], 32, 8).unwrap();
        let mut out: Vec<f32> = vec![];
        panels.matmul(&[], 0, &mut out, true);
    }
}
