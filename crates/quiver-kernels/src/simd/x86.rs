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

pub fn dot_one_avx2(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
    debug_assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
    // SAFETY: as in `dot_avx2`.
    unsafe { dot_one_avx2_impl(a, b) }
}

pub fn dot_one_avx512(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
    debug_assert!(is_x86_feature_detected!("avx512f"));
    // SAFETY: as in `dot_avx512`.
    unsafe { dot_one_avx512_impl(a, b) }
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
    if dim < 8 {
        // Shorter than one vector: `dot`'s arithmetic (a plain sum in index order, the sum
        // Qdrant's scores for such vectors show), so that every path agrees with it.
        for (k, o) in out.iter_mut().enumerate() {
            *o = dot_avx2_impl(query, std::slice::from_raw_parts(r.add(k * dim), dim));
        }
        return;
    }
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
        *o = dot_one_avx2_impl(query, std::slice::from_raw_parts(r.add(k * dim), dim));
    }
}

/// One row with exactly the arithmetic `dot_rows_avx2_impl` gives each row of a block: one
/// accumulator over whole vectors, the tail as a masked load, and the lanes summed as the
/// block's reduction sums them, `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_one_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
    let dim = a.len();
    if dim < 8 {
        return dot_avx2_impl(a, b); // as `dot_rows_avx2_impl` does
    }
    let (q, r) = (a.as_ptr(), b.as_ptr());
    let full = dim / 8 * 8;
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < full {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i)), _mm256_loadu_ps(r.add(i)), acc);
        i += 8;
    }
    if full < dim {
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((dim - full) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(q.add(full), mask), _mm256_maskload_ps(r.add(full), mask), acc);
    }
    let mut l = [0.0f32; 8];
    _mm256_storeu_ps(l.as_mut_ptr(), acc);
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
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
    if dim < 16 {
        // Shorter than one vector: `dot`'s arithmetic, so that every path agrees with it.
        for (k, o) in out.iter_mut().enumerate() {
            *o = dot_avx512_impl(query, std::slice::from_raw_parts(r.add(k * dim), dim));
        }
        return;
    }
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
        *o = dot_one_avx512_impl(query, std::slice::from_raw_parts(r.add(k * dim), dim));
    }
}

/// One row with exactly the arithmetic `dot_rows_avx512_impl` gives each row of a block: one
/// accumulator over whole vectors, the tail as a masked load, then lane `i` plus lane `i + 8`,
/// those plus the ones four further, and the four sums as `(t0 + t1) + (t2 + t3)`.
///
/// # Safety
/// The CPU must support AVX-512F, and `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
unsafe fn dot_one_avx512_impl(a: &[f32], b: &[f32]) -> f32 {
    let dim = a.len();
    if dim < 16 {
        return dot_avx512_impl(a, b); // as `dot_rows_avx512_impl` does
    }
    let (q, r) = (a.as_ptr(), b.as_ptr());
    let full = dim / 16 * 16;
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < full {
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q.add(i)), _mm512_loadu_ps(r.add(i)), acc);
        i += 16;
    }
    if full < dim {
        let mask = tail_mask(dim - full);
        acc = _mm512_fmadd_ps(
            _mm512_maskz_loadu_ps(mask, q.add(full)),
            _mm512_maskz_loadu_ps(mask, r.add(full)),
            acc,
        );
    }
    let mut l = [0.0f32; 16];
    _mm512_storeu_ps(l.as_mut_ptr(), acc);
    let t: [f32; 4] = std::array::from_fn(|i| (l[i] + l[i + 8]) + (l[i + 4] + l[i + 12]));
    (t[0] + t[1]) + (t[2] + t[3])
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
