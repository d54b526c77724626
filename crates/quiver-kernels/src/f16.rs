//! Rows in IEEE half precision (`u16` bit patterns): half the bytes of `f32` rows, 11
//! significant bits. The index keeps its build copy this way (see `quiver-index`'s codes):
//! linking reads rows scattered over the whole collection, so a build is bound by memory
//! rather than by arithmetic, and half the bytes is half the traffic.
//!
//! [`encode`] rounds to nearest-even (the `half` crate in scalar code, `vcvtps2ph` with F16C);
//! the kernels convert on load (`vcvtph2ps`) and accumulate in `f32`. Every path has a scalar
//! twin: the encodings are equal bit for bit, the sums within rounding of a different order.

/// `<a, b>` for an `f32` query and a half-precision row of the same length.
pub type DotHalf = fn(&[f32], &[u16]) -> f32;
/// `<a, b>` (or `|a - b|^2`) of two half-precision rows of the same length.
pub type HalfHalf = fn(&[u16], &[u16]) -> f32;

/// The half-precision kernels chosen for this CPU.
#[derive(Clone, Copy, Debug)]
pub struct HalfKernels {
    /// Appends the half-precision encoding of the first argument to the second.
    pub encode: fn(&[f32], &mut Vec<u16>),
    pub dot: DotHalf,
    pub l2_squared: DotHalf,
    pub dot_halves: HalfHalf,
    pub l2_squared_halves: HalfHalf,
}

impl HalfKernels {
    /// The scalar references.
    pub fn scalar() -> HalfKernels {
        HalfKernels {
            encode: encode_scalar,
            dot: dot_scalar,
            l2_squared: l2_squared_scalar,
            dot_halves: dot_halves_scalar,
            l2_squared_halves: l2_squared_halves_scalar,
        }
    }

    /// Every variant this CPU can run, the scalar references first and the fastest last: the
    /// tests check each against the references.
    pub fn available() -> Vec<HalfKernels> {
        #[allow(unused_mut)]
        let mut out = vec![HalfKernels::scalar()];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                out.push(HalfKernels {
                    encode: x86::encode_f16c,
                    dot: x86::dot_avx2,
                    l2_squared: x86::l2_squared_avx2,
                    dot_halves: x86::dot_halves_avx2,
                    l2_squared_halves: x86::l2_squared_halves_avx2,
                });
            }
        }
        out
    }

    /// The fastest variant this CPU runs, chosen once per process.
    pub fn best() -> &'static HalfKernels {
        static BEST: std::sync::OnceLock<HalfKernels> = std::sync::OnceLock::new();
        BEST.get_or_init(|| *HalfKernels::available().last().expect("the scalar kernels are always available"))
    }
}

/// The value of one half-precision bit pattern.
#[inline]
pub fn to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// The half-precision bit pattern nearest to `x` (ties to even; beyond 65,504 infinity).
#[inline]
pub fn from_f32(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

fn encode_scalar(src: &[f32], out: &mut Vec<u16>) {
    out.extend(src.iter().map(|&x| from_f32(x)));
}

fn dot_scalar(a: &[f32], b: &[u16]) -> f32 {
    assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
    a.iter().zip(b).map(|(&x, &h)| x * to_f32(h)).sum()
}

fn l2_squared_scalar(a: &[f32], b: &[u16]) -> f32 {
    assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
    a.iter()
        .zip(b)
        .map(|(&x, &h)| {
            let d = x - to_f32(h);
            d * d
        })
        .sum()
}

fn dot_halves_scalar(a: &[u16], b: &[u16]) -> f32 {
    assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
    a.iter().zip(b).map(|(&x, &y)| to_f32(x) * to_f32(y)).sum()
}

fn l2_squared_halves_scalar(a: &[u16], b: &[u16]) -> f32 {
    assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = to_f32(x) - to_f32(y);
            d * d
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 + FMA + F16C. The safe wrappers are only handed out by `HalfKernels::available`
    //! after detection; they check lengths.
    use std::arch::x86_64::*;

    pub fn encode_f16c(src: &[f32], out: &mut Vec<u16>) {
        let start = out.len();
        out.resize(start + src.len(), 0);
        // SAFETY: reachable only after F16C and AVX2 were detected; `out[start..]` has room
        // for `src.len()` values.
        unsafe { encode_impl(src, &mut out[start..]) }
    }

    /// # Safety
    /// AVX2 and F16C; `out.len() == src.len()`.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn encode_impl(src: &[f32], out: &mut [u16]) {
        let n = src.len();
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
            _mm_storeu_si128(out.as_mut_ptr().add(i) as *mut __m128i, h);
            i += 8;
        }
        for (o, &x) in out[i..].iter_mut().zip(&src[i..]) {
            *o = super::from_f32(x);
        }
    }

    /// Eight halves as eight floats.
    #[inline(always)]
    unsafe fn load_h(p: *const u16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    /// One kernel body for the four products, and its safe wrapper: `load_a` / `load_b` read eight lanes at an
    /// offset, `step` folds a pair of lanes into an accumulator, `get_a` / `get_b` read one
    /// value and `scalar` folds one pair (rows shorter than eight). The last `n % 8` values
    /// are read as the last eight, with the lanes already counted masked to zero (zeros add
    /// nothing to a dot product or a squared distance): no copy, no read past the rows.
    macro_rules! kernel {
        ($wrapper:ident, $name:ident, $ta:ty, $tb:ty, $load_a:expr, $load_b:expr, $step:expr, $get_a:expr, $get_b:expr, $scalar:expr) => {
            pub fn $wrapper(a: &[$ta], b: &[$tb]) -> f32 {
                assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
                // SAFETY: reachable only after AVX2, FMA and F16C were detected; lengths are
                // equal.
                unsafe { $name(a, b) }
            }

            /// # Safety
            /// AVX2, FMA and F16C; `a.len() == b.len()`.
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn $name(a: &[$ta], b: &[$tb]) -> f32 {
                let n = a.len();
                if n < 8 {
                    return (0..n).fold(0.0f32, |acc, j| $scalar($get_a(a, j), $get_b(b, j), acc));
                }
                let (pa, pb) = (a.as_ptr(), b.as_ptr());
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                while i + 32 <= n {
                    for (k, acc) in acc.iter_mut().enumerate() {
                        *acc = $step($load_a(pa.add(i + 8 * k)), $load_b(pb.add(i + 8 * k)), *acc);
                    }
                    i += 32;
                }
                while i + 8 <= n {
                    acc[0] = $step($load_a(pa.add(i)), $load_b(pb.add(i)), acc[0]);
                    i += 8;
                }
                if i < n {
                    let start = n - 8;
                    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                    let fresh = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lanes, _mm256_set1_epi32((i - start) as i32 - 1)));
                    let x = _mm256_and_ps($load_a(pa.add(start)), fresh);
                    let y = _mm256_and_ps($load_b(pb.add(start)), fresh);
                    acc[1] = $step(x, y, acc[1]);
                }
                hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
            }
        };
    }

    #[inline(always)]
    unsafe fn fma(x: __m256, y: __m256, acc: __m256) -> __m256 {
        _mm256_fmadd_ps(x, y, acc)
    }

    #[inline(always)]
    unsafe fn sq_diff(x: __m256, y: __m256, acc: __m256) -> __m256 {
        let d = _mm256_sub_ps(x, y);
        _mm256_fmadd_ps(d, d, acc)
    }

    fn fma1(x: f32, y: f32, acc: f32) -> f32 {
        acc + x * y
    }

    fn sq_diff1(x: f32, y: f32, acc: f32) -> f32 {
        acc + (x - y) * (x - y)
    }

    fn get_f(a: &[f32], j: usize) -> f32 {
        a[j]
    }

    fn get_h(b: &[u16], j: usize) -> f32 {
        super::to_f32(b[j])
    }

    kernel!(
        dot_avx2,
        dot_impl,
        f32,
        u16,
        |p| _mm256_loadu_ps(p),
        |p| load_h(p),
        fma,
        get_f,
        get_h,
        fma1
    );
    kernel!(
        l2_squared_avx2,
        l2_impl,
        f32,
        u16,
        |p| _mm256_loadu_ps(p),
        |p| load_h(p),
        sq_diff,
        get_f,
        get_h,
        sq_diff1
    );
    kernel!(
        dot_halves_avx2,
        dot_halves_impl,
        u16,
        u16,
        |p| load_h(p),
        |p| load_h(p),
        fma,
        get_h,
        get_h,
        fma1
    );
    kernel!(
        l2_squared_halves_avx2,
        l2_halves_impl,
        u16,
        u16,
        |p| load_h(p),
        |p| load_h(p),
        sq_diff,
        get_h,
        get_h,
        sq_diff1
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn close(x: f32, y: f32, scale: f32) -> bool {
        (x - y).abs() <= 1e-5 * scale.max(1.0)
    }

    /// Every variant against the scalar references, over lengths around the vector widths and
    /// values of several magnitudes; the encodings bit for bit, including the extremes.
    #[test]
    fn every_variant_matches_the_scalar_twins() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let reference = HalfKernels::scalar();
        let variants = HalfKernels::available();
        eprintln!("{} variants", variants.len());
        for k in &variants {
            for len in (0..70).chain([127, 128, 129, 384, 385, 1536]) {
                for magnitude in [1e-3f32, 1.0, 300.0] {
                    let a: Vec<f32> = (0..len).map(|_| rng.gen_range(-1.0..1.0) * magnitude).collect();
                    let b: Vec<f32> = (0..len).map(|_| rng.gen_range(-1.0..1.0) * magnitude).collect();
                    let (mut ha, mut hb, mut want) = (vec![7u16], Vec::new(), vec![7u16]);
                    (k.encode)(&a, &mut ha);
                    (k.encode)(&b, &mut hb);
                    (reference.encode)(&a, &mut want);
                    assert_eq!(ha, want, "encode, len {len}: appends, and rounds as the reference does");
                    let ha = &ha[1..];
                    let scale = a.iter().zip(&b).map(|(x, y)| (x * y).abs() + (x - y) * (x - y)).sum::<f32>();
                    let pairs = [
                        ((k.dot)(&a, &hb), (reference.dot)(&a, &hb)),
                        ((k.l2_squared)(&a, &hb), (reference.l2_squared)(&a, &hb)),
                        ((k.dot_halves)(ha, &hb), (reference.dot_halves)(ha, &hb)),
                        ((k.l2_squared_halves)(ha, &hb), (reference.l2_squared_halves)(ha, &hb)),
                    ];
                    for (i, (got, want)) in pairs.into_iter().enumerate() {
                        assert!(
                            close(got, want, scale),
                            "kernel {i}, len {len}, magnitude {magnitude}: {got} vs {want}"
                        );
                    }
                }
            }
            // The extremes: the largest half, beyond it (infinity), ties between two halves,
            // subnormals, signed zeros.
            let edge = [
                65504.0f32,
                65520.0,
                -1e9,
                1.0 + 1.0 / 2048.0,
                1.0 + 3.0 / 2048.0,
                6e-8,
                -3e-5,
                0.0,
                -0.0,
                2.5e-10,
            ];
            let (mut got, mut want) = (Vec::new(), Vec::new());
            let mut all = edge.to_vec();
            all.extend_from_slice(&edge);
            (k.encode)(&all, &mut got);
            (reference.encode)(&all, &mut want);
            assert_eq!(got, want);
        }
    }

    /// The scalar twins are what they claim: the products of the rounded values.
    #[test]
    fn scalar_twins_compute_the_products_of_rounded_values() {
        let a = [1.0f32, -2.0, 0.5];
        let b = [3.0f32, 0.25, -4.0];
        let mut hb = Vec::new();
        encode_scalar(&b, &mut hb);
        assert_eq!(dot_scalar(&a, &hb), 3.0 - 0.5 - 2.0);
        assert_eq!(l2_squared_scalar(&a, &hb), 4.0 + 2.25 * 2.25 + 4.5 * 4.5);
        let mut ha = Vec::new();
        encode_scalar(&a, &mut ha);
        assert_eq!(dot_halves_scalar(&ha, &hb), 3.0 - 0.5 - 2.0);
        assert_eq!(l2_squared_halves_scalar(&ha, &hb), 4.0 + 2.25 * 2.25 + 4.5 * 4.5);
        // 1 + 1/4096 lies halfway between two halves and rounds to the even one, 1.0.
        assert_eq!(to_f32(from_f32(1.0 + 1.0 / 4096.0)), 1.0);
        assert_eq!(from_f32(1e6), 0x7c00, "beyond the range: infinity");
    }
}
