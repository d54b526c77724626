//! SIMD kernels and their dispatch. The CPU's features are detected once per process
//! ([`isa`]); [`dot`], [`l2_squared`] and [`l1`] then call the widest path available.
//!
//! Paths: AVX-512F and AVX2+FMA on x86-64, NEON on aarch64, the scalar reference elsewhere.
//! Every path is checked against [`crate::scalar`] by property tests over random lengths
//! (`tests/kernels.rs`), with a tolerance for the different summation order.

use std::sync::OnceLock;

/// An instruction set a kernel can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    Scalar,
    Avx2Fma,
    Avx512,
    Neon,
}

impl Isa {
    /// Every ISA this CPU can run, the scalar reference first.
    pub fn available() -> Vec<Isa> {
        let mut out = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                out.push(Isa::Avx2Fma);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.push(Isa::Avx512);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                out.push(Isa::Neon);
            }
        }
        out
    }

    /// A short lowercase name for logs and `quiver info`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Avx512 => "avx512f",
            Isa::Neon => "neon",
        }
    }
}

/// The kernel signature: two slices of equal length in, one number out.
pub type Kernel = fn(&[f32], &[f32]) -> f32;

/// A block kernel: `out[i] = <query, row i>` for `out.len()` consecutive rows of
/// `query.len()` floats (`rows.len() == out.len() * query.len()`). One call scores a block, so
/// the per-row cost is the arithmetic, not a call and a horizontal sum each.
pub type RowsKernel = fn(&[f32], &[f32], &mut [f32]);

/// The kernels of one ISA.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub isa: Isa,
    pub dot: Kernel,
    pub l2_squared: Kernel,
    pub l1: Kernel,
    pub dot_rows: RowsKernel,
}

impl Kernels {
    /// The kernels of `isa`, or `None` when this CPU cannot run it.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        if !Isa::available().contains(&isa) {
            return None;
        }
        Some(match isa {
            Isa::Scalar => Kernels {
                isa,
                dot: crate::scalar::dot,
                l2_squared: crate::scalar::l2_squared,
                l1: crate::scalar::l1,
                dot_rows: crate::scalar::dot_rows,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => Kernels {
                isa,
                dot: x86::dot_avx2,
                l2_squared: x86::l2_squared_avx2,
                l1: x86::l1_avx2,
                dot_rows: x86::dot_rows_avx2,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Kernels {
                isa,
                dot: x86::dot_avx512,
                l2_squared: x86::l2_squared_avx512,
                l1: x86::l1_avx512,
                dot_rows: x86::dot_rows_avx512,
            },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Kernels {
                isa,
                dot: arm::dot_neon,
                l2_squared: arm::l2_squared_neon,
                l1: arm::l1_neon,
                dot_rows: arm::dot_rows_neon,
            },
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }

    /// The best kernels for this CPU, detected once.
    pub fn best() -> &'static Kernels {
        static BEST: OnceLock<Kernels> = OnceLock::new();
        BEST.get_or_init(|| {
            let isa = *Isa::available().last().expect("scalar is always available");
            Kernels::for_isa(isa).expect("an available ISA has kernels")
        })
    }
}

/// The ISA the dispatched kernels use on this CPU.
pub fn isa() -> Isa {
    Kernels::best().isa
}

/// `<a, b>` with the best kernel.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (Kernels::best().dot)(a, b)
}

/// `|a - b|^2` with the best kernel.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (Kernels::best().l2_squared)(a, b)
}

/// `sum |a_i - b_i|` with the best kernel.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    (Kernels::best().l1)(a, b)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The safe wrappers check lengths and that the CPU has the feature (the wrappers are only
    //! handed out by `Kernels::for_isa` after detection, and assert it in debug builds).
    use std::arch::x86_64::*;

    pub fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        debug_assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
        // SAFETY: this function is only reachable through `Kernels::for_isa(Isa::Avx2Fma)`,
        // which checked that the CPU has AVX2 and FMA; lengths are equal (asserted above).
        unsafe { dot_avx2_impl(a, b) }
    }

    pub fn l2_squared_avx2(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        debug_assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
        // SAFETY: as in `dot_avx2`.
        unsafe { l2_squared_avx2_impl(a, b) }
    }

    pub fn l1_avx2(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        debug_assert!(is_x86_feature_detected!("avx2"));
        // SAFETY: as in `dot_avx2`.
        unsafe { l1_avx2_impl(a, b) }
    }

    pub fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        debug_assert!(is_x86_feature_detected!("avx512f"));
        // SAFETY: only reachable through `Kernels::for_isa(Isa::Avx512)`, which checked that
        // the CPU has AVX-512F; lengths are equal (asserted above).
        unsafe { dot_avx512_impl(a, b) }
    }

    pub fn dot_rows_avx2(query: &[f32], rows: &[f32], out: &mut [f32]) {
        let dim = query.len();
        assert_eq!(rows.len(), out.len() * dim, "rows must hold out.len() rows of the query's length");
        debug_assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
        // SAFETY: the wrapper is only handed out on CPUs with AVX2 and FMA (`Kernels::for_isa`),
        // and `rows` holds exactly `out.len()` rows of `query.len()` floats (asserted above).
        unsafe { dot_rows_avx2_impl(query, rows, out) }
    }

    pub fn dot_rows_avx512(query: &[f32], rows: &[f32], out: &mut [f32]) {
        assert_eq!(
            rows.len(),
            out.len() * query.len(),
            "rows must hold out.len() rows of the query's length"
        );
        debug_assert!(is_x86_feature_detected!("avx512f"));
        // SAFETY: the wrapper is only handed out on CPUs with AVX-512F (`Kernels::for_isa`),
        // and `rows` holds exactly `out.len()` rows of `query.len()` floats (asserted above).
        unsafe { dot_rows_avx512_impl(query, rows, out) }
    }

    pub fn l2_squared_avx512(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        debug_assert!(is_x86_feature_detected!("avx512f"));
        // SAFETY: as in `dot_avx512`.
        unsafe { l2_squared_avx512_impl(a, b) }
    }

    pub fn l1_avx512(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        debug_assert!(is_x86_feature_detected!("avx512f"));
        // SAFETY: as in `dot_avx512`.
        unsafe { l1_avx512_impl(a, b) }
    }

    /// Sums the eight lanes of `v`.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)), acc2);
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)), acc3);
            i += 32;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
        let acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        let mut sum = hsum256(acc);
        while i < n {
            sum += *pa.add(i) * *pb.add(i);
            i += 1;
        }
        sum
    }

    /// Eight rows at a time: the query's vectors are loaded once per block, eight accumulators
    /// run side by side (enough independent FMAs to cover their latency: with one row at a
    /// time a 50-d row is a chain of seven dependent FMAs and a horizontal sum), the row tails
    /// are masked loads, and the eight horizontal sums share one reduction (three rounds of
    /// pairwise adds, then the two halves).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and `rows.len() == out.len() * query.len()`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_rows_avx2_impl(query: &[f32], rows: &[f32], out: &mut [f32]) {
        let dim = query.len();
        let (q, r) = (query.as_ptr(), rows.as_ptr());
        let full = dim / 8 * 8;
        // Lanes below the tail's length have their sign bit set: `maskload` reads those only,
        // and never touches memory past the row.
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((dim - full) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        let blocks = out.len() / 8;
        for b in 0..blocks {
            let base = r.add(b * 8 * dim);
            let rows8: [*const f32; 8] = std::array::from_fn(|k| base.add(k * dim));
            let mut acc = [_mm256_setzero_ps(); 8];
            let mut i = 0;
            while i < full {
                let qv = _mm256_loadu_ps(q.add(i));
                for k in 0..8 {
                    acc[k] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows8[k].add(i)), acc[k]);
                }
                i += 8;
            }
            if full < dim {
                let qv = _mm256_maskload_ps(q.add(full), mask);
                for k in 0..8 {
                    acc[k] = _mm256_fmadd_ps(qv, _mm256_maskload_ps(rows8[k].add(full), mask), acc[k]);
                }
            }
            // hadd(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7]: two rounds
            // give rows 0-3 (and 4-7) as [low-half sums | high-half sums].
            let g0 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
            let g1 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
            let lo = _mm256_permute2f128_ps::<0x20>(g0, g1);
            let hi = _mm256_permute2f128_ps::<0x31>(g0, g1);
            _mm256_storeu_ps(out.as_mut_ptr().add(b * 8), _mm256_add_ps(lo, hi));
        }
        for (k, o) in out.iter_mut().enumerate().skip(blocks * 8) {
            *o = dot_avx2_impl(query, std::slice::from_raw_parts(r.add(k * dim), dim));
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn l2_squared_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            let d1 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)));
            acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            acc1 = _mm256_fmadd_ps(d1, d1, acc1);
            i += 16;
        }
        while i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc0 = _mm256_fmadd_ps(d, d, acc0);
            i += 8;
        }
        let mut sum = hsum256(_mm256_add_ps(acc0, acc1));
        while i < n {
            let d = *pa.add(i) - *pb.add(i);
            sum += d * d;
            i += 1;
        }
        sum
    }

    /// # Safety
    /// The CPU must support AVX2, and `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn l1_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        // Clearing the sign bit is the absolute value.
        let sign = _mm256_set1_ps(-0.0);
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            let d1 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)));
            acc0 = _mm256_add_ps(acc0, _mm256_andnot_ps(sign, d0));
            acc1 = _mm256_add_ps(acc1, _mm256_andnot_ps(sign, d1));
            i += 16;
        }
        while i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc0 = _mm256_add_ps(acc0, _mm256_andnot_ps(sign, d));
            i += 8;
        }
        let mut sum = hsum256(_mm256_add_ps(acc0, acc1));
        while i < n {
            sum += (*pa.add(i) - *pb.add(i)).abs();
            i += 1;
        }
        sum
    }

    /// A mask with the low `rest` (< 16) lanes set.
    #[inline(always)]
    fn tail_mask(rest: usize) -> __mmask16 {
        ((1u32 << rest) - 1) as __mmask16
    }

    /// # Safety
    /// The CPU must support AVX-512F, and `a.len() == b.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_avx512_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)), acc1);
            i += 32;
        }
        while i + 16 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            i += 16;
        }
        if i < n {
            // Masked loads never touch memory past the end of the slices.
            let m = tail_mask(n - i);
            acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)), acc1);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    /// Four rows at a time: the query's vectors are loaded once per block, four accumulators
    /// run side by side, and the four horizontal sums share one reduction (halves added, then
    /// two rounds of pairwise adds), instead of a call and a full reduction per row.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, and `rows.len() == out.len() * query.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_rows_avx512_impl(query: &[f32], rows: &[f32], out: &mut [f32]) {
        let dim = query.len();
        let (q, r) = (query.as_ptr(), rows.as_ptr());
        let full = dim / 16 * 16;
        let mask = tail_mask(dim - full);
        let blocks = out.len() / 4;
        for b in 0..blocks {
            let base = r.add(b * 4 * dim);
            let (r0, r1, r2, r3) = (base, base.add(dim), base.add(2 * dim), base.add(3 * dim));
            let (mut a0, mut a1, mut a2, mut a3) = (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
            let mut i = 0;
            while i < full {
                let qv = _mm512_loadu_ps(q.add(i));
                a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(r0.add(i)), a0);
                a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(r1.add(i)), a1);
                a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(r2.add(i)), a2);
                a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(r3.add(i)), a3);
                i += 16;
            }
            if full < dim {
                // Masked loads never touch memory past the row.
                let qv = _mm512_maskz_loadu_ps(mask, q.add(full));
                a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(mask, r0.add(full)), a0);
                a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(mask, r1.add(full)), a1);
                a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(mask, r2.add(full)), a2);
                a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(mask, r3.add(full)), a3);
            }
            // 16 lanes -> 8 -> 4 per accumulator, then the four rows' sums side by side.
            let h = |a: __m512| -> __m128 {
                // The upper half through the f64 view: `extractf32x8` would need AVX-512DQ.
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a)));
                let s8 = _mm256_add_ps(_mm512_castps512_ps256(a), hi);
                _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8))
            };
            let sums = _mm_hadd_ps(_mm_hadd_ps(h(a0), h(a1)), _mm_hadd_ps(h(a2), h(a3)));
            _mm_storeu_ps(out.as_mut_ptr().add(b * 4), sums);
        }
        for (k, o) in out.iter_mut().enumerate().skip(blocks * 4) {
            *o = dot_avx512_impl(query, std::slice::from_raw_parts(r.add(k * dim), dim));
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F, and `a.len() == b.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn l2_squared_avx512_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            let d1 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)));
            acc0 = _mm512_fmadd_ps(d0, d0, acc0);
            acc1 = _mm512_fmadd_ps(d1, d1, acc1);
            i += 32;
        }
        while i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            acc0 = _mm512_fmadd_ps(d, d, acc0);
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)));
            acc1 = _mm512_fmadd_ps(d, d, acc1);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    /// # Safety
    /// The CPU must support AVX-512F, and `a.len() == b.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn l1_avx512_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            let d1 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)));
            acc0 = _mm512_add_ps(acc0, _mm512_abs_ps(d0));
            acc1 = _mm512_add_ps(acc1, _mm512_abs_ps(d1));
            i += 32;
        }
        while i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            acc0 = _mm512_add_ps(acc0, _mm512_abs_ps(d));
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)));
            acc1 = _mm512_add_ps(acc1, _mm512_abs_ps(d));
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    //! NEON paths. NEON is part of the aarch64 baseline, so the feature is always present.
    use std::arch::aarch64::*;

    pub fn dot_neon(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        // SAFETY: NEON is mandatory on aarch64; lengths are equal (asserted above), and every
        // load below reads four floats at an index at most `len - 4`.
        unsafe {
            let n = a.len();
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc0 = vdupq_n_f32(0.0);
            let mut acc1 = vdupq_n_f32(0.0);
            let mut i = 0;
            while i + 8 <= n {
                acc0 = vfmaq_f32(acc0, vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
                acc1 = vfmaq_f32(acc1, vld1q_f32(pa.add(i + 4)), vld1q_f32(pb.add(i + 4)));
                i += 8;
            }
            while i + 4 <= n {
                acc0 = vfmaq_f32(acc0, vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
                i += 4;
            }
            let mut sum = vaddvq_f32(vaddq_f32(acc0, acc1));
            while i < n {
                sum += *pa.add(i) * *pb.add(i);
                i += 1;
            }
            sum
        }
    }

    pub fn dot_rows_neon(query: &[f32], rows: &[f32], out: &mut [f32]) {
        let dim = query.len();
        assert_eq!(rows.len(), out.len() * dim, "rows must hold out.len() rows of the query's length");
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(dim.max(1))) {
            *o = dot_neon(query, row);
        }
    }

    pub fn l2_squared_neon(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        // SAFETY: as in `dot_neon`.
        unsafe {
            let n = a.len();
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc0 = vdupq_n_f32(0.0);
            let mut i = 0;
            while i + 4 <= n {
                let d = vsubq_f32(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
                acc0 = vfmaq_f32(acc0, d, d);
                i += 4;
            }
            let mut sum = vaddvq_f32(acc0);
            while i < n {
                let d = *pa.add(i) - *pb.add(i);
                sum += d * d;
                i += 1;
            }
            sum
        }
    }

    pub fn l1_neon(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        // SAFETY: as in `dot_neon`.
        unsafe {
            let n = a.len();
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc0 = vdupq_n_f32(0.0);
            let mut i = 0;
            while i + 4 <= n {
                acc0 = vaddq_f32(acc0, vabdq_f32(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i))));
                i += 4;
            }
            let mut sum = vaddvq_f32(acc0);
            while i < n {
                sum += (*pa.add(i) - *pb.add(i)).abs();
                i += 1;
            }
            sum
        }
    }
}
