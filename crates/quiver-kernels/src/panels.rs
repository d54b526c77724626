//! A linear layer's weights packed once, when the model loads, for the embedder's products
//! `out = x W^T` with a batch of token rows `x`.
//!
//! A general matrix product (the `gemm` crate) copies `W` into its own panel layout on every
//! call: 42 MB of MiniLM weights per forward pass, about 6% of embedding short sentences and as
//! much as the arithmetic for one search query. Here `W` is laid out once as panels of 16 output
//! columns (`k x 16`, column `j` of panel `p` holding row `16 p + j` of `W`), and each call packs
//! only the activations.
//!
//! The weights are kept in `f32` ([`F32Panels`]) or rounded to bfloat16 ([`Bf16Panels`], half
//! the bytes: for products over a few rows, which wait on reading the weights; activations and
//! sums stay `f32`, so only the weights' rounding, relative 2^-9, enters).
//!
//! The micro-kernel multiplies a strip of `R` token rows by one panel, keeping the `R x 16` sums
//! in registers: per input index, one panel row (16 weights, widened to `f32` as they load) and
//! `R` broadcasts of activations feed `R x 16` fused multiply-adds. It is written once, as plain
//! Rust over fixed-size arrays that the compiler turns into vector code, and compiled for
//! AVX2+FMA (6 rows x 16 columns: twelve 8-lane sums) and for AVX-512F (6 rows x two panels:
//! twelve 16-lane sums). Every
//! output is the same chain of fused multiply-adds over `k` in order, whatever the path, so the
//! paths equal the baseline build bit for bit; the tests check that, and the baseline against a
//! schoolbook product in `f64`. CPUs with neither ISA use the `gemm` crate instead
//! ([`Panels::fast`] says which).

use crate::matmul::Onto;
use crate::simd::Isa;
use rayon::prelude::*;

mod bf16dot;

/// Output columns per panel.
pub const PANEL: usize = 16;

/// A weight as stored in the panels, widened to `f32` when the micro-kernel loads it.
pub trait Weight: Copy + Default + Send + Sync + 'static {
    /// The stored form of `v`.
    fn narrow(v: f32) -> Self;
    /// The `f32` the products use.
    fn widen(self) -> f32;
}

impl Weight for f32 {
    #[inline(always)]
    fn narrow(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

/// A bfloat16: the top 16 bits of an `f32`, rounded to nearest even.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bf16(u16);

impl Weight for Bf16 {
    fn narrow(v: f32) -> Bf16 {
        let b = v.to_bits();
        if v.is_nan() {
            return Bf16(((b >> 16) | 0x40) as u16);
        }
        Bf16(((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16)
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

/// `W` (`n x k`, PyTorch's `Linear` layout: output by input) packed in panels of [`PANEL`]
/// output columns, stored as `F` says.
#[derive(Clone, Debug)]
pub struct Panels<F: Format> {
    k: usize,
    n: usize,
    /// Per panel, `k.div_ceil(F::STEP)` rows of [`PANEL`] units.
    data: Vec<F::W>,
}

/// The weights in `f32`: the embedder's default products.
pub type F32Panels = Panels<f32>;
/// The weights in bfloat16: the embedder's products over a few tokens.
pub type Bf16Panels = Panels<Bf16>;
pub use bf16dot::{Bf16DotPanels, Bf16Pairs};

/// How a panel stores its weights and how the micro-kernel takes the activations: one element
/// per input index widened to `f32` ([`Weight`]: `f32`, [`Bf16`]), or two input indices per
/// unit for a dot-product instruction ([`Bf16Pairs`]).
pub trait Format: Send + Sync + 'static {
    /// One stored unit: the weights of `STEP` consecutive inputs of one output column.
    type W: Copy + Default + Send + Sync;
    /// One packed unit of activations: `STEP` consecutive inputs of one row.
    type X: Copy + Default + Send + Sync;
    /// Input indices per unit.
    const STEP: usize;
    /// The unit holding `w` (at most `STEP` weights; missing ones are 0).
    fn weight(w: &[f32]) -> Self::W;
    /// The unit holding `x` (at most `STEP` activations; missing ones are 0).
    fn activation(x: &[f32]) -> Self::X;
    /// The vector block kernel for `isa`; `None` where there is none.
    fn path(isa: Isa) -> Option<BlockKernel<Self>>;
    /// The scalar twin the tests compare the vector paths with.
    fn baseline() -> BlockKernel<Self>;
}

impl<T: Weight> Format for T {
    type W = T;
    type X = f32;
    const STEP: usize = 1;
    fn weight(w: &[f32]) -> T {
        T::narrow(w[0])
    }
    fn activation(x: &[f32]) -> f32 {
        x[0]
    }
    fn path(isa: Isa) -> Option<BlockKernel<T>> {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma if Isa::available().contains(&Isa::Avx2Fma) => Some(x86::block_avx2::<T>),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if Isa::available().contains(&Isa::Avx512) => Some(x86::block_avx512::<T>),
            _ => None,
        }
    }
    fn baseline() -> BlockKernel<T> {
        block_baseline::<T>
    }
}

/// `R` activation rows, interleaved: unit `(u, r)` (inputs `u * STEP..`) at `u * R + r`, so
/// that the micro-kernel reads the `R` units it broadcasts for one step from one place. Rows past
/// `rows` are 0.
fn pack_strip<F: Format, const R: usize>(x: &[f32], rows: usize, k: usize, strip: &mut [F::X]) {
    debug_assert!(rows <= R && x.len() >= rows * k && strip.len() == k.div_ceil(F::STEP) * R);
    for (u, s) in strip.chunks_exact_mut(R).enumerate() {
        let at = u * F::STEP;
        // One input per unit needs no clamp (and the plain index compiles as before).
        let len = if F::STEP == 1 { 1 } else { F::STEP.min(k - at) };
        for (r, v) in s.iter_mut().enumerate() {
            *v = if r < rows {
                F::activation(&x[r * k + at..r * k + at + len])
            } else {
                F::X::default()
            };
        }
    }
}

/// Rows per strip: with 16 columns (AVX2) or two panels (AVX-512), twelve vector sums.
const STRIP: usize = 6;

/// Every [`STRIP`]-row strip of `x` (`m x k`), packed one after the other into `packed`.
fn pack_strips<F: Format>(x: &[f32], m: usize, k: usize, packed: &mut Vec<F::X>) {
    let units = k.div_ceil(F::STEP);
    packed.clear();
    packed.resize(m.div_ceil(STRIP) * STRIP * units, F::X::default());
    for (s, strip) in packed.chunks_exact_mut(STRIP * units).enumerate() {
        let first = s * STRIP;
        let count = (m - first).min(STRIP);
        pack_strip::<F, STRIP>(&x[first * k..(first + count) * k], count, k, strip);
    }
}

/// The `R x 16` products of a packed strip and one panel.
#[inline(always)]
fn tile<T: Weight, const R: usize>(panel: &[T], strip: &[f32]) -> [[f32; PANEL]; R] {
    let mut acc = [[0.0f32; PANEL]; R];
    for (w, xs) in panel.chunks_exact(PANEL).zip(strip.chunks_exact(R)) {
        let mut wf = [0.0f32; PANEL];
        for (f, w) in wf.iter_mut().zip(w) {
            *f = w.widen();
        }
        for r in 0..R {
            for j in 0..PANEL {
                acc[r][j] = xs[r].mul_add(wf[j], acc[r][j]);
            }
        }
    }
    acc
}

/// Packed strips (`k * R` values each) of `rows` rows against every panel of `data`, onto `out`
/// (those rows of the output, whose row stride is `n`; `onto` starts at the same row).
#[inline(always)]
fn block_body<T: Weight, const R: usize>(data: &[T], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], onto: Onto<'_>) {
    block_body_with::<T, f32, R, Widened>(data, k, n, strips, rows, out, onto)
}

/// A micro-kernel: `R` rows of a packed strip against one panel, or two. A trait rather than a
/// closure so that it is inlined into each ISA's build of the block (a closure's call shim was
/// not, and ran without FMA).
trait Tile<W, X, const R: usize> {
    fn one(panel: &[W], strip: &[X]) -> [[f32; PANEL]; R];
    fn two(a: &[W], b: &[W], strip: &[X]) -> [[[f32; PANEL]; R]; 2];
}

/// [`tile`] and [`tile_pair`]: weights widened to `f32`.
struct Widened;

impl<T: Weight, const R: usize> Tile<T, f32, R> for Widened {
    #[inline(always)]
    fn one(panel: &[T], strip: &[f32]) -> [[f32; PANEL]; R] {
        tile::<T, R>(panel, strip)
    }
    #[inline(always)]
    fn two(a: &[T], b: &[T], strip: &[f32]) -> [[[f32; PANEL]; R]; 2] {
        tile_pair::<T, R>(a, b, strip)
    }
}

/// [`block_body`] for any unit types, `units` units per panel column and strip row, with the
/// micro-kernel `K`.
///
/// Before each tile, the lines its stores will read (`out` itself, or a residual) are
/// prefetched: a tile's arithmetic hides their latency, which otherwise stalls the store.
#[inline(always)]
fn block_body_with<W, X, const R: usize, K: Tile<W, X, R>>(
    data: &[W],
    units: usize,
    n: usize,
    strips: &[X],
    rows: usize,
    out: &mut [f32],
    onto: Onto<'_>,
) {
    for (p, panel) in data.chunks_exact(units * PANEL).enumerate() {
        let onto = onto.cols_from(p * PANEL);
        for (s, strip) in strips.chunks_exact(units * R).enumerate() {
            let here = rows.saturating_sub(s * R).min(R);
            for r in 0..here {
                onto.prefetch(&out[p * PANEL..], s * R + r, PANEL, n);
            }
            let acc = K::one(panel, strip);
            for (r, a) in acc.iter().enumerate().take(here) {
                let o = &mut out[(s * R + r) * n + p * PANEL..][..PANEL];
                onto.store(o, a, s * R + r, n);
            }
        }
    }
}

/// The `R x 32` products of a packed strip and two panels at once: on AVX-512 a panel row is one
/// register, and two panels give the micro-kernel twelve sums to interleave with 6 rows (a
/// 12-row strip of one panel made the compiler gather across rows instead).
#[inline(always)]
fn tile_pair<T: Weight, const R: usize>(a: &[T], b: &[T], strip: &[f32]) -> [[[f32; PANEL]; R]; 2] {
    let mut acc = [[[0.0f32; PANEL]; R]; 2];
    for ((wa, wb), xs) in a.chunks_exact(PANEL).zip(b.chunks_exact(PANEL)).zip(strip.chunks_exact(R)) {
        let mut wf = [[0.0f32; PANEL]; 2];
        for j in 0..PANEL {
            wf[0][j] = wa[j].widen();
            wf[1][j] = wb[j].widen();
        }
        for r in 0..R {
            for j in 0..PANEL {
                acc[0][r][j] = xs[r].mul_add(wf[0][j], acc[0][r][j]);
                acc[1][r][j] = xs[r].mul_add(wf[1][j], acc[1][r][j]);
            }
        }
    }
    acc
}

/// [`block_body`] with the panels taken two at a time ([`tile_pair`]); an odd last panel alone.
#[inline(always)]
fn block_body_pairs<T: Weight, const R: usize>(
    data: &[T],
    k: usize,
    n: usize,
    strips: &[f32],
    rows: usize,
    out: &mut [f32],
    onto: Onto<'_>,
) {
    block_body_pairs_with::<T, f32, R, Widened>(data, k, n, strips, rows, out, onto)
}

/// [`block_body_pairs`] for any unit types, with the micro-kernel `K`.
#[inline(always)]
fn block_body_pairs_with<W, X, const R: usize, K: Tile<W, X, R>>(
    data: &[W],
    k: usize,
    n: usize,
    strips: &[X],
    rows: usize,
    out: &mut [f32],
    onto: Onto<'_>,
) {
    let pairs = data.chunks_exact(2 * k * PANEL);
    let odd = pairs.remainder();
    for (p, pair) in pairs.enumerate() {
        let (a, b) = pair.split_at(k * PANEL);
        let (onto_a, onto_b) = (onto.cols_from(2 * p * PANEL), onto.cols_from((2 * p + 1) * PANEL));
        for (s, strip) in strips.chunks_exact(k * R).enumerate() {
            let here = rows.saturating_sub(s * R).min(R);
            for r in 0..here {
                onto_a.prefetch(&out[2 * p * PANEL..], s * R + r, 2 * PANEL, n);
            }
            let acc = K::two(a, b, strip);
            for r in 0..here {
                let o = &mut out[(s * R + r) * n + 2 * p * PANEL..][..2 * PANEL];
                let (oa, ob) = o.split_at_mut(PANEL);
                onto_a.store(oa, &acc[0][r], s * R + r, n);
                onto_b.store(ob, &acc[1][r], s * R + r, n);
            }
        }
    }
    if !odd.is_empty() {
        let first = (data.len() - odd.len()) / k;
        block_body_with::<W, X, R, K>(odd, k, n, strips, rows, &mut out[first..], onto.cols_from(first));
    }
}

/// A block kernel: packed panels (`units` units per column), output width `n`, packed strips,
/// the rows they hold, the output rows and what the products land onto.
pub type BlockKernel<F> = fn(&[<F as Format>::W], usize, usize, &[<F as Format>::X], usize, &mut [f32], Onto<'_>);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    pub fn block_avx2<T: Weight>(data: &[T], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], onto: Onto<'_>) {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn inner<T: Weight>(data: &[T], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], onto: Onto<'_>) {
            block_body::<T, STRIP>(data, k, n, strips, rows, out, onto)
        }
        // SAFETY: only chosen by `Panels::path` after checking the CPU has AVX2 and FMA; the
        // body is safe code.
        unsafe { inner(data, k, n, strips, rows, out, onto) }
    }

    pub fn block_avx512<T: Weight>(data: &[T], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], onto: Onto<'_>) {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn inner<T: Weight>(data: &[T], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], onto: Onto<'_>) {
            block_body_pairs::<T, STRIP>(data, k, n, strips, rows, out, onto)
        }
        // SAFETY: only chosen by `Panels::path` after checking the CPU has AVX-512F; the body
        // is safe code.
        unsafe { inner(data, k, n, strips, rows, out, onto) }
    }
}

/// The baseline build of the AVX2 kernel: the twin the tests compare the vector paths with (slow
/// where `mul_add` has no instruction, so never dispatched to).
fn block_baseline<T: Weight>(data: &[T], k: usize, n: usize, strips: &[f32], rows: usize, out: &mut [f32], onto: Onto<'_>) {
    block_body::<T, STRIP>(data, k, n, strips, rows, out, onto)
}

/// Most bytes of packed activations one task multiplies: they stay in a core's L2 beside one
/// panel while every panel passes over them, and each task reads all the weights once, so the
/// larger the block, the fewer passes over the weights (42 MB for MiniLM, more than an L3).
const BLOCK_BYTES: usize = 256 * 1024;

impl<F: Format> Panels<F> {
    /// Packs `w`, `n x k` row-major. `None` unless `n` is a positive multiple of 16, `k > 0` and
    /// `w` holds `n * k` values.
    pub fn pack(w: &[f32], n: usize, k: usize) -> Option<Panels<F>> {
        if n == 0 || k == 0 || !n.is_multiple_of(PANEL) || w.len() != n * k {
            return None;
        }
        let units = k.div_ceil(F::STEP);
        let mut data = vec![F::W::default(); n * units];
        for (p, panel) in data.chunks_exact_mut(units * PANEL).enumerate() {
            for (u, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                let (at, len) = (u * F::STEP, F::STEP.min(k - u * F::STEP));
                for (j, v) in row.iter_mut().enumerate() {
                    *v = F::weight(&w[(p * PANEL + j) * k + at..][..len]);
                }
            }
        }
        Some(Panels { k, n, data })
    }

    /// Whether this CPU has a vector path for the panels (AVX2+FMA or AVX-512F; for
    /// [`Bf16Pairs`], AVX-512 BF16). Elsewhere callers should use another product.
    pub fn fast() -> bool {
        F::path(crate::isa()).is_some()
    }

    /// Units per panel column and strip row.
    fn units(&self) -> usize {
        self.k.div_ceil(F::STEP)
    }

    /// Output width (`n`).
    pub fn outputs(&self) -> usize {
        self.n
    }

    /// Input width (`k`).
    pub fn inputs(&self) -> usize {
        self.k
    }

    /// `out (m x n) := base + x (m x k) * W^T` on every core, with the base `onto`, on this
    /// CPU's fastest path (the baseline kernel where there is none: call it only when
    /// [`Panels::fast`]).
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], onto: Onto<'_>) {
        self.matmul_isa(crate::isa(), x, m, out, onto)
    }

    /// [`Panels::matmul`] on a chosen path (the tests compare the paths); an ISA without a
    /// fast path runs the baseline kernel.
    pub fn matmul_isa(&self, isa: Isa, x: &[f32], m: usize, out: &mut [f32], onto: Onto<'_>) {
        let (k, n, units) = (self.k, self.n, self.units());
        assert!(x.len() == m * k && out.len() == m * n, "Panels::matmul shapes");
        onto.check(m, n);
        if m == 0 {
            return;
        }
        let kernel = F::path(isa).unwrap_or(F::baseline());
        let strips = m.div_ceil(STRIP);
        let threads = rayon::current_num_threads().max(1);
        let panels = n / PANEL;
        if strips < 2 * threads && panels >= 2 * threads {
            self.few_rows(kernel, x, m, out, onto, threads);
            return;
        }
        // A multiple of the thread count of blocks of rows of even size (the threads finish
        // together), none larger than the cache allows.
        let max_strips = (BLOCK_BYTES / (STRIP * units * std::mem::size_of::<F::X>())).max(1);
        let blocks = threads * strips.div_ceil(threads * max_strips);
        let block_rows = strips.div_ceil(blocks) * STRIP;
        out.par_chunks_mut(block_rows * n)
            .zip(x.par_chunks(block_rows * k))
            .enumerate()
            .for_each_init(Vec::new, |packed, (b, (out, x))| {
                let rows_here = x.len() / k;
                pack_strips::<F>(x, rows_here, k, packed);
                kernel(&self.data, units, n, packed, rows_here, out, onto.rows_from(b * block_rows, n));
            });
    }

    /// A few rows (a search query's tokens): the threads split the panels rather than the rows,
    /// so each reads only its share of the weights, which is what such a product waits on.
    fn few_rows(&self, kernel: BlockKernel<F>, x: &[f32], m: usize, out: &mut [f32], onto: Onto<'_>, threads: usize) {
        let (k, n, units) = (self.k, self.n, self.units());
        let mut packed = Vec::new();
        pack_strips::<F>(x, m, k, &mut packed);
        let per_task = (n / PANEL).div_ceil(2 * threads);
        let parts: Vec<Vec<f32>> = self
            .data
            .par_chunks(per_task * PANEL * units)
            .map(|data| {
                let cols = data.len() / units;
                let mut part = vec![0.0f32; m * cols];
                kernel(data, units, cols, &packed, m, &mut part, Onto::Nothing);
                part
            })
            .collect();
        let cols = per_task * PANEL;
        for (p, part) in parts.iter().enumerate() {
            let width = part.len() / m;
            let onto = onto.cols_from(p * cols);
            for (r, src) in part.chunks_exact(width).enumerate() {
                onto.store(&mut out[r * n + p * cols..][..width], src, r, n);
            }
        }
    }
}

#[cfg(test)]
mod tests;
