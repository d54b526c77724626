//! Panels for a bfloat16 dot-product instruction (AVX-512 BF16's `vdpbf16ps`): weights *and*
//! activations rounded to bfloat16, products summed in `f32`.
//!
//! `vdpbf16ps` takes, in each 32-bit lane, a pair of bfloat16 values from each source and adds
//! both products to an `f32` sum: 32 multiply-adds per 512-bit instruction, twice an `f32`
//! fused multiply-add, from half the bytes. So a unit here is a pair of consecutive input
//! indices (`2u` in the low half, `2u + 1` in the high half): a panel row is 16 such pairs, and
//! the micro-kernel broadcasts one pair of a row's activations against it.
//!
//! Rounding the activations as well as the weights costs accuracy the `f32` products do not
//! lose: with every MiniLM linear layer computed so, the worst cosine with the reference
//! embeddings was 0.99996 (the fixtures; the default's bar is 0.9999). Attention stays `f32`.
//!
//! The scalar twin follows Intel's description of the instruction: per lane, the high pair's
//! product is added first, then the low pair's, each as a fused multiply-add rounded to nearest
//! even, with subnormal inputs read as zero and subnormal results flushed to zero. The
//! instruction has never run on the machines this was written on (AMD Zen 3), so
//! [`Bf16Pairs`]'s fast path is only taken after [`hardware_agrees`] has checked it against the
//! twin once on the running CPU.

use super::{block_body_pairs_with, Bf16, BlockKernel, Format, Panels, Tile, Weight, PANEL, STRIP};
use crate::simd::Isa;
use std::sync::OnceLock;

/// The format of [`Bf16DotPanels`]: weights and activations as pairs of bfloat16 in a `u32`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bf16Pairs;

/// The weights as bfloat16 pairs, for `vdpbf16ps`: the embedder's default products on CPUs with
/// AVX-512 BF16.
pub type Bf16DotPanels = Panels<Bf16Pairs>;

/// Up to two values as bfloat16, the first in the low half.
fn pair(v: &[f32]) -> u32 {
    let half = |i: usize| v.get(i).map_or(0, |&x| Bf16::narrow(x).0 as u32);
    half(0) | (half(1) << 16)
}

impl Format for Bf16Pairs {
    type W = u32;
    type X = u32;
    const STEP: usize = 2;
    fn weight(w: &[f32]) -> u32 {
        pair(w)
    }
    fn activation(x: &[f32]) -> u32 {
        pair(x)
    }
    fn path(isa: Isa) -> Option<BlockKernel<Bf16Pairs>> {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if has_bf16() && hardware_agrees() => Some(x86::block),
            _ => None,
        }
    }
    fn baseline() -> BlockKernel<Bf16Pairs> {
        block_twin
    }
}

/// Whether this CPU has AVX-512F and AVX-512 BF16.
fn has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Once per process, on a CPU with AVX-512 BF16: the instruction path and the twin give the same
/// products (within a last bit of the sums) on a fixed product with an odd panel, a partial
/// strip and an odd input width. If not, the fast path is never taken and the embedder keeps
/// its `f32` products; a message says so on standard error.
pub fn hardware_agrees() -> bool {
    static AGREES: OnceLock<bool> = OnceLock::new();
    *AGREES.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if has_bf16() {
            let (n, k, m) = (48, 77, 13);
            let value = |i: usize| ((i * 7919 % 2003) as f32 / 1001.0 - 1.0) * 0.5;
            let w: Vec<f32> = (0..n * k).map(value).collect();
            let x: Vec<f32> = (0..m * k).map(|i| value(i + 17)).collect();
            let panels = Bf16DotPanels::pack(&w, n, k).expect("n is a multiple of 16");
            let run = |kernel: BlockKernel<Bf16Pairs>| {
                let mut packed = Vec::new();
                super::pack_strips::<Bf16Pairs>(&x, m, k, &mut packed);
                let mut out = vec![0.0f32; m * n];
                kernel(&panels.data, panels.units(), n, &packed, m, &mut out, crate::matmul::Onto::Nothing);
                out
            };
            let (got, want) = (run(x86::block), run(block_twin));
            let agrees = got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1e-5 * (1.0 + w.abs()));
            if !agrees {
                eprintln!("quiver: this CPU's vdpbf16ps disagrees with its description; embedding keeps f32 products");
            }
            return agrees;
        }
        false
    })
}

/// Reads a subnormal as a zero of the same sign (the instruction's inputs and results).
fn flush(v: f32) -> f32 {
    if v.is_subnormal() {
        0.0f32.copysign(v)
    } else {
        v
    }
}

/// One lane of `vdpbf16ps`: `acc` plus the products of the pairs `x` and `w`, the high halves
/// first.
#[inline(always)]
fn dot_pair(acc: f32, x: u32, w: u32) -> f32 {
    let half = |v: u32| flush(f32::from_bits(v << 16));
    let high = flush(half(x >> 16).mul_add(half(w >> 16), flush(acc)));
    flush(half(x & 0xffff).mul_add(half(w & 0xffff), high))
}

/// The twin's micro-kernel: `R` rows of pairs against one panel.
fn tile_twin<const R: usize>(panel: &[u32], strip: &[u32]) -> [[f32; PANEL]; R] {
    let mut acc = [[0.0f32; PANEL]; R];
    for (w, xs) in panel.chunks_exact(PANEL).zip(strip.chunks_exact(R)) {
        for r in 0..R {
            for j in 0..PANEL {
                acc[r][j] = dot_pair(acc[r][j], xs[r], w[j]);
            }
        }
    }
    acc
}

/// [`tile_twin`] as a micro-kernel.
struct Twin;

impl<const R: usize> Tile<u32, u32, R> for Twin {
    fn one(panel: &[u32], strip: &[u32]) -> [[f32; PANEL]; R] {
        tile_twin::<R>(panel, strip)
    }
    fn two(a: &[u32], b: &[u32], strip: &[u32]) -> [[[f32; PANEL]; R]; 2] {
        [tile_twin::<R>(a, strip), tile_twin::<R>(b, strip)]
    }
}

/// The scalar twin of the instruction path, with the same panel pairing.
fn block_twin(data: &[u32], units: usize, n: usize, strips: &[u32], rows: usize, out: &mut [f32], onto: crate::matmul::Onto<'_>) {
    block_body_pairs_with::<u32, u32, STRIP, Twin>(data, units, n, strips, rows, out, onto)
}

/// A single panel at a time, for the tests' check of the pairing.
#[cfg(test)]
fn block_twin_single(data: &[u32], units: usize, n: usize, strips: &[u32], rows: usize, out: &mut [f32], onto: crate::matmul::Onto<'_>) {
    super::block_body_with::<u32, u32, STRIP, Twin>(data, units, n, strips, rows, out, onto)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::matmul::Onto;
    use std::arch::x86_64::*;

    /// `R` rows against two panels: per pair of inputs, two panel rows (one register each) and
    /// `R` broadcasts feed `2R` dot-product instructions.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    fn tile_pair<const R: usize>(a: &[u32], b: &[u32], strip: &[u32]) -> [[[f32; PANEL]; R]; 2] {
        let mut acc = [[_mm512_setzero_ps(); R]; 2];
        for ((wa, wb), xs) in a.chunks_exact(PANEL).zip(b.chunks_exact(PANEL)).zip(strip.chunks_exact(R)) {
            // SAFETY: each chunk holds 16 u32, one unaligned 512-bit load.
            let (va, vb) = unsafe { (_mm512_loadu_si512(wa.as_ptr().cast()), _mm512_loadu_si512(wb.as_ptr().cast())) };
            let (va, vb) = (m512bh(va), m512bh(vb));
            for r in 0..R {
                let x = m512bh(_mm512_set1_epi32(xs[r] as i32));
                acc[0][r] = _mm512_dpbf16_ps(acc[0][r], x, va);
                acc[1][r] = _mm512_dpbf16_ps(acc[1][r], x, vb);
            }
        }
        let mut out = [[[0.0f32; PANEL]; R]; 2];
        for (o, a) in out.iter_mut().zip(&acc) {
            for (o, a) in o.iter_mut().zip(a) {
                // SAFETY: `o` holds 16 f32.
                unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *a) };
            }
        }
        out
    }

    /// `R` rows against one panel (an odd last panel).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    fn tile_one<const R: usize>(a: &[u32], strip: &[u32]) -> [[f32; PANEL]; R] {
        let mut acc = [_mm512_setzero_ps(); R];
        for (wa, xs) in a.chunks_exact(PANEL).zip(strip.chunks_exact(R)) {
            // SAFETY: each chunk holds 16 u32.
            let va = m512bh(unsafe { _mm512_loadu_si512(wa.as_ptr().cast()) });
            for r in 0..R {
                acc[r] = _mm512_dpbf16_ps(acc[r], m512bh(_mm512_set1_epi32(xs[r] as i32)), va);
            }
        }
        let mut out = [[0.0f32; PANEL]; R];
        for (o, a) in out.iter_mut().zip(&acc) {
            // SAFETY: `o` holds 16 f32.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *a) };
        }
        out
    }

    /// The same 512 bits, as 32 bfloat16.
    #[inline(always)]
    fn m512bh(v: __m512i) -> __m512bh {
        // SAFETY: both are 64 bytes of plain data.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }

    /// [`tile_one`] and [`tile_pair`] as a micro-kernel; only used inside [`block`]'s inner
    /// function, whose CPU check covers theirs.
    struct Dot;

    impl<const R: usize> Tile<u32, u32, R> for Dot {
        #[inline(always)]
        fn one(panel: &[u32], strip: &[u32]) -> [[f32; PANEL]; R] {
            // SAFETY: instantiated only in `block`, after its check of AVX-512 BF16.
            unsafe { tile_one::<R>(panel, strip) }
        }
        #[inline(always)]
        fn two(a: &[u32], b: &[u32], strip: &[u32]) -> [[[f32; PANEL]; R]; 2] {
            // SAFETY: as for `one`.
            unsafe { tile_pair::<R>(a, b, strip) }
        }
    }

    pub fn block(data: &[u32], units: usize, n: usize, strips: &[u32], rows: usize, out: &mut [f32], onto: Onto<'_>) {
        #[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
        fn inner(data: &[u32], units: usize, n: usize, strips: &[u32], rows: usize, out: &mut [f32], onto: Onto<'_>) {
            block_body_pairs_with::<u32, u32, STRIP, Dot>(data, units, n, strips, rows, out, onto)
        }
        // SAFETY: only chosen by `Bf16Pairs::path` (or the check behind it) after checking the
        // CPU has AVX-512F and AVX-512 BF16 (and so AVX2 and FMA).
        unsafe { inner(data, units, n, strips, rows, out, onto) }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_against_schoolbook, values};
    use super::*;
    use crate::matmul::Onto;

    fn round(v: f32) -> f32 {
        Bf16::narrow(v).widen()
    }

    /// Every path (the twin everywhere, the instruction where the CPU has it) against the
    /// product in `f64` of the rounded weights and activations, odd input widths included.
    #[test]
    fn bf16_pair_panels_match_the_schoolbook_product_of_the_rounded_values() {
        check_against_schoolbook::<Bf16Pairs>(round, round);
    }

    /// The pairing of panels and the odd last panel, the packing of an odd last input and a
    /// bias with a residual: the twin equals one panel at a time and a plain loop over
    /// `dot_pair`, bit for bit.
    #[test]
    fn the_twin_pairs_panels_and_packs_inputs_as_a_plain_loop_does() {
        for (n, m, k) in [(16, 7, 21), (48, 13, 20), (64, 1, 3), (80, 30, 1)] {
            let (w, x) = (values(n * k, 2), values(m * k, 4));
            let panels = Bf16DotPanels::pack(&w, n, k).unwrap();
            let (bias, res) = (values(n, 3), values(m * n, 8));
            let onto = Onto::Bias {
                bias: &bias,
                residual: Some(&res),
            };
            let mut packed = Vec::new();
            super::super::pack_strips::<Bf16Pairs>(&x, m, k, &mut packed);
            let (mut pairs, mut single) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            block_twin(&panels.data, panels.units(), n, &packed, m, &mut pairs, onto);
            block_twin_single(&panels.data, panels.units(), n, &packed, m, &mut single, onto);
            assert_eq!(pairs, single, "n={n} m={m} k={k}");
            for r in 0..m {
                for c in 0..n {
                    let mut acc = 0.0f32;
                    for u in 0..k.div_ceil(2) {
                        let at = 2 * u..(2 * u + 2).min(k);
                        acc = dot_pair(acc, pair(&x[r * k..][at.clone()]), pair(&w[c * k..][at]));
                    }
                    let want = (bias[c] + res[r * n + c]) + acc;
                    assert_eq!(pairs[r * n + c].to_bits(), want.to_bits(), "n={n} m={m} k={k} at ({r}, {c})");
                }
            }
        }
    }

    /// The twin's lane: the high products first, subnormals read and written as zero.
    #[test]
    fn a_lane_adds_the_high_pair_first_and_flushes_subnormals() {
        let p = |lo: f32, hi: f32| pair(&[lo, hi]);
        assert_eq!(dot_pair(1.0, p(2.0, 3.0), p(5.0, 7.0)), 1.0 + 21.0 + 10.0);
        // Around 2^24 the order shows: 2^24 + 1 rounds back to 2^24 (ties to even), and 2^24 - 1
        // is exact. High first: (2^24 + 1) - 1 = 2^24 - 1; low first it would be 2^24.
        let big = 16_777_216.0f32;
        assert_eq!(dot_pair(big, p(1.0, 1.0), p(-1.0, 1.0)), big - 1.0);
        assert_eq!(dot_pair(big, p(1.0, 1.0), p(1.0, -1.0)), big);
        // A subnormal bfloat16 input contributes nothing; a subnormal result becomes zero.
        let tiny = f32::from_bits(0x0001_0000);
        assert!(tiny.is_subnormal());
        assert_eq!(dot_pair(0.0, p(tiny, 0.0), p(1.0e30, 0.0)), 0.0);
        let small = f32::MIN_POSITIVE; // 2^-126, a bfloat16 as well
        assert_eq!(dot_pair(0.0, p(small, 0.0), p(0.5, 0.0)), 0.0);
        assert!(Bf16Pairs::path(Isa::Scalar).is_none());
    }

    /// On a CPU with AVX-512 BF16 the instruction path is taken, and agrees with the twin.
    #[test]
    fn the_instruction_path_is_taken_where_the_cpu_has_it() {
        if has_bf16() {
            assert!(hardware_agrees(), "vdpbf16ps disagrees with the twin");
        }
        assert_eq!(Bf16Pairs::path(Isa::Avx512).is_some(), has_bf16());
    }
}
