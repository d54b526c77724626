//! Element-wise kernels of the transformer embedder: softmax (with a polynomial `exp`), GELU and
//! layer normalisation.
//!
//! Each kernel is written once, as plain Rust over 16-lane arrays that the compiler turns into
//! vector code, and compiled three times: for the baseline target (the scalar twin, used by the
//! tests as the reference), for AVX2+FMA and for AVX-512F. [`NnKernels::best`] picks the widest the
//! CPU has. The three paths compute the same formulas, so they differ only by rounding (fused
//! multiply-adds and summation order); the tests check each path against the scalar twin and the
//! twin against `std`'s `exp` and a libm `erf`.

use crate::simd::Isa;
use std::sync::OnceLock;

const LANES: usize = 16;

/// `exp(x)` for `x <= 0` (larger inputs are clamped to 0, smaller than -87.3 to -87.3, whose exp,
/// about 1e-38, is negligible next to a softmax's largest term of 1): range
/// reduction `x = n ln 2 + r` with `|r| <= ln2 / 2`, a degree-6 Taylor polynomial for `e^r`
/// (relative error below 2e-7 on that interval), and `2^n` built from the exponent bits.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in a part with few mantissa bits (exact products with n) and a correction.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer in vector code.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 0.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    // The low mantissa bits of `t` hold n itself: integer lanes, no float-to-int conversion.
    let n_int = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // n is in [-126, 0]: 2^n is a normal float with biased exponent n + 127.
    let two_n = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    p * two_n
}

#[inline(always)]
fn softmax_body(row: &mut [f32], scale: f32) {
    // The tail that does not fill 16 lanes goes through a padded copy, so that every element,
    // the tail's too, takes the vector path (rows of attention scores are about 10 to 256 long,
    // and a scalar tail of up to 15 elements would cost as much as the rest).
    let tail_start = row.len() - row.len() % LANES;
    let mut tail = [f32::NEG_INFINITY; LANES];
    tail[..row.len() - tail_start].copy_from_slice(&row[tail_start..]);
    let mut acc = tail;
    for c in row[..tail_start].chunks_exact(LANES) {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    let mut max = f32::NEG_INFINITY;
    for &v in &acc {
        max = if v > max { v } else { max };
    }
    if !max.is_finite() {
        // Every entry -inf, or an infinity crept in: no distribution is defined, so give the
        // uniform one and keep the row finite.
        let u = 1.0 / row.len().max(1) as f32;
        row.iter_mut().for_each(|v| *v = u);
        return;
    }
    let shift = max * scale;
    let mut sums = [0.0f32; LANES];
    for c in row[..tail_start].chunks_exact_mut(LANES) {
        for i in 0..LANES {
            let e = exp_nonpositive(c[i] * scale - shift);
            c[i] = e;
            sums[i] += e;
        }
    }
    // Padding lanes hold -inf; their exp (about 1e-38 each) adds nothing visible to a sum >= 1.
    for i in 0..LANES {
        let e = exp_nonpositive(tail[i] * scale - shift);
        tail[i] = e;
        sums[i] += e;
    }
    let inv = 1.0 / sums.iter().sum::<f32>();
    for c in row[..tail_start].chunks_exact_mut(LANES) {
        for v in c {
            *v *= inv;
        }
    }
    let n_tail = row.len() - tail_start;
    for (v, t) in row[tail_start..].iter_mut().zip(&tail[..n_tail]) {
        *v = t * inv;
    }
}

/// `erf` for f32 as a rational function (odd degree-13 numerator over even degree-8 denominator,
/// x clamped to [-4, 4] where erf is within f32 rounding of +-1), the published minimax fit that
/// Eigen uses for its fast erf. Accurate to a few ulp.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_4e-5;
    p = x2 * p - 7.349_906_3e-4;
    p = x2 * p - 2.954_600_2e-3;
    p = x2 * p - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329e-3;
    q = x2 * q - 1.426_473_9e-2;
    x * p / q
}

#[inline(always)]
fn gelu_body(xs: &mut [f32]) {
    for v in xs.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn layer_norm_body(x: &mut [f32], h: usize, g: &[f32], b: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(h) {
        let mut sums = [0.0f32; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                sums[i] += c[i];
            }
        }
        let mean = (sums.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()) / h as f32;
        let mut sq = [0.0f32; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                let d = c[i] - mean;
                sq[i] += d * d;
            }
        }
        let var = (sq.iter().sum::<f32>() + chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum::<f32>()) / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, &gj), &bj) in row.iter_mut().zip(g).zip(b) {
            *v = (*v - mean) * inv * gj + bj;
        }
    }
}

/// The element-wise kernels of one ISA.
#[derive(Clone, Copy, Debug)]
pub struct NnKernels {
    pub isa: Isa,
    softmax: fn(&mut [f32], f32),
    gelu: fn(&mut [f32]),
    layer_norm: fn(&mut [f32], usize, &[f32], &[f32], f32),
}

mod scalar_path {
    pub fn softmax(row: &mut [f32], scale: f32) {
        super::softmax_body(row, scale)
    }
    pub fn gelu(xs: &mut [f32]) {
        super::gelu_body(xs)
    }
    pub fn layer_norm(x: &mut [f32], h: usize, g: &[f32], b: &[f32], eps: f32) {
        super::layer_norm_body(x, h, g, b, eps)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    // Each wrapper compiles the shared body with wider vectors. The bodies are safe code; the
    // only obligation of the `unsafe` calls is that the CPU has the features, which
    // `NnKernels::for_isa` checks before handing out these function pointers.
    macro_rules! wrappers {
        ($modname:ident, $features:literal) => {
            pub mod $modname {
                #[target_feature(enable = $features)]
                unsafe fn softmax_tf(row: &mut [f32], scale: f32) {
                    super::super::softmax_body(row, scale)
                }
                #[target_feature(enable = $features)]
                unsafe fn gelu_tf(xs: &mut [f32]) {
                    super::super::gelu_body(xs)
                }
                #[target_feature(enable = $features)]
                unsafe fn layer_norm_tf(x: &mut [f32], h: usize, g: &[f32], b: &[f32], eps: f32) {
                    super::super::layer_norm_body(x, h, g, b, eps)
                }
                pub fn softmax(row: &mut [f32], scale: f32) {
                    // SAFETY: only reachable through NnKernels::for_isa, which checked the CPU.
                    unsafe { softmax_tf(row, scale) }
                }
                pub fn gelu(xs: &mut [f32]) {
                    // SAFETY: as above.
                    unsafe { gelu_tf(xs) }
                }
                pub fn layer_norm(x: &mut [f32], h: usize, g: &[f32], b: &[f32], eps: f32) {
                    // SAFETY: as above.
                    unsafe { layer_norm_tf(x, h, g, b, eps) }
                }
            }
        };
    }
    wrappers!(avx2, "avx2,fma");
    wrappers!(avx512, "avx512f,avx2,fma");
}

impl NnKernels {
    /// The kernels of `isa`, or `None` when this CPU cannot run it (NEON uses the scalar twin,
    /// which the baseline aarch64 target already vectorises).
    pub fn for_isa(isa: Isa) -> Option<NnKernels> {
        if !Isa::available().contains(&isa) {
            return None;
        }
        let scalar = NnKernels {
            isa,
            softmax: scalar_path::softmax,
            gelu: scalar_path::gelu,
            layer_norm: scalar_path::layer_norm,
        };
        Some(match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => NnKernels {
                isa,
                softmax: x86::avx2::softmax,
                gelu: x86::avx2::gelu,
                layer_norm: x86::avx2::layer_norm,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => NnKernels {
                isa,
                softmax: x86::avx512::softmax,
                gelu: x86::avx512::gelu,
                layer_norm: x86::avx512::layer_norm,
            },
            _ => scalar,
        })
    }

    /// Every path this CPU can run, the scalar twin first.
    pub fn available() -> Vec<NnKernels> {
        Isa::available().into_iter().filter_map(NnKernels::for_isa).collect()
    }

    /// The widest path, chosen once per process.
    pub fn best() -> NnKernels {
        static BEST: OnceLock<NnKernels> = OnceLock::new();
        *BEST.get_or_init(|| *NnKernels::available().last().expect("the scalar path is always available"))
    }

    /// `row := softmax(scale * row)`, in place. A row with no finite maximum becomes uniform.
    pub fn softmax(&self, row: &mut [f32], scale: f32) {
        (self.softmax)(row, scale)
    }

    /// `x := x * Phi(x)` (BERT's exact GELU through a rational `erf`), in place.
    pub fn gelu(&self, xs: &mut [f32]) {
        (self.gelu)(xs)
    }

    /// Normalises each row of `x` (`h` columns) to mean 0 and variance 1 (`eps` added to the
    /// variance), then scales by `g` and shifts by `b`. Rows are independent.
    pub fn layer_norm(&self, x: &mut [f32], h: usize, g: &[f32], b: &[f32], eps: f32) {
        assert!(
            h > 0 && x.len().is_multiple_of(h) && g.len() == h && b.len() == h,
            "layer_norm shapes"
        );
        (self.layer_norm)(x, h, g, b, eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_exp_matches_std() {
        let mut worst = 0.0f32;
        for i in 0..=200_000 {
            let x = -(i as f32) * 87.0 / 200_000.0;
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "max relative error {worst}");
        assert!(exp_nonpositive(-200.0) < 1e-37);
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn softmax_of_constant_and_degenerate_rows() {
        let k = NnKernels::best();
        let mut row = vec![3.0f32; 37];
        k.softmax(&mut row, 0.5);
        assert!(row.iter().all(|&v| (v - 1.0 / 37.0).abs() < 1e-7));
        let mut row = vec![f32::NEG_INFINITY; 5];
        k.softmax(&mut row, 1.0);
        assert!(row.iter().all(|&v| (v - 0.2).abs() < 1e-7));
        let mut empty: Vec<f32> = vec![];
        k.softmax(&mut empty, 1.0);
    }
}
