//! The x86 paths of [`super`]: AVX2 and AVX-512 VNNI kernels, and AVX2 twins of the
//! quantizer and the epilogue. Each computes what its scalar twin in `super` does, bit for bit.

use super::{epilogue_scalar, Acts, Cols, RowParams, ACT_MAX, KG, NR};
use crate::matmul::Onto;
use std::arch::x86_64::*;

pub(super) fn epilogue_avx2(acc: &[i32], act: Acts<'_>, cols: Cols<'_>, out: &mut [f32], stride: usize, onto: Onto<'_>) {
    let rows = act.scale.len();
    if cols.scale.len() != NR || rows == 0 {
        return epilogue_scalar(acc, act, cols, out, stride, onto);
    }
    assert!(act.zero.len() == rows && acc.len() >= rows * NR && cols.sum.len() == NR && out.len() >= (rows - 1) * stride + NR);
    // SAFETY: chosen only when the CPU has AVX2; every row's 16 elements are in bounds
    // (asserted).
    unsafe { epilogue_avx2_16(acc, act, cols, out, stride, onto) }
}

/// The same operations as `epilogue_row`, in the same order, so the results are equal.
#[target_feature(enable = "avx2")]
unsafe fn epilogue_avx2_16(acc: &[i32], act: Acts<'_>, cols: Cols<'_>, out: &mut [f32], stride: usize, onto: Onto<'_>) {
    // SAFETY (every block below): 16 columns behind `cols`, `rows x 16` sums behind `acc`,
    // and row r's 16 outputs at `r * stride` (checked by the caller).
    let (cs, sw) = unsafe {
        (
            [
                _mm256_loadu_si256(cols.sum.as_ptr() as *const __m256i),
                _mm256_loadu_si256(cols.sum.as_ptr().add(8) as *const __m256i),
            ],
            [_mm256_loadu_ps(cols.scale.as_ptr()), _mm256_loadu_ps(cols.scale.as_ptr().add(8))],
        )
    };
    for (r, (&sa, &za)) in act.scale.iter().zip(act.zero).enumerate() {
        let (sa, za) = (_mm256_set1_ps(sa), _mm256_set1_epi32(za));
        let mut v = [0.0f32; NR];
        for h in 0..2 {
            // SAFETY: as above; `v` holds 16 floats.
            unsafe {
                let acc = _mm256_loadu_si256(acc.as_ptr().add(r * NR + 8 * h) as *const __m256i);
                let x = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, _mm256_mullo_epi32(za, cs[h])));
                _mm256_storeu_ps(v.as_mut_ptr().add(8 * h), _mm256_mul_ps(_mm256_mul_ps(sa, sw[h]), x));
            }
        }
        onto.store(&mut out[r * stride..][..NR], &v, r, stride);
    }
}

pub(super) fn quantize_row_avx2(row: &[f32], q: &mut [u8]) -> (f32, i32) {
    assert!(q.len() >= row.len());
    // SAFETY: chosen only when the CPU has AVX2; `q` is at least as long as `row`.
    unsafe { quantize_row_avx2_inner(row, q) }
}

/// `quantize_row_body` with explicit vectors: the same range, the same rounding (a multiply,
/// an add of `zero + 0.5`, a clamp, truncation), so the same bytes.
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2_inner(row: &[f32], q: &mut [u8]) -> (f32, i32) {
    let n8 = row.len() / 8 * 8;
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in (0..n8).step_by(8) {
        // SAFETY: i + 8 <= row.len().
        let v = unsafe { _mm256_loadu_ps(row.as_ptr().add(i)) };
        lo = _mm256_min_ps(v, lo);
        hi = _mm256_max_ps(v, hi);
    }
    let (mut l, mut h) = ([0.0f32; 8], [0.0f32; 8]);
    // SAFETY: 8 floats each.
    unsafe {
        _mm256_storeu_ps(l.as_mut_ptr(), lo);
        _mm256_storeu_ps(h.as_mut_ptr(), hi);
    }
    let (mut lo, mut hi) = (0.0f32, 0.0f32);
    for &v in l.iter().chain(&row[n8..]) {
        lo = if v < lo { v } else { lo };
    }
    for &v in h.iter().chain(&row[n8..]) {
        hi = if v > hi { v } else { hi };
    }
    let Some(p) = RowParams::of(lo, hi) else {
        q.fill(0);
        return (1.0, 0);
    };
    let (vinv, vzf, vmin, vmax) = (
        _mm256_set1_ps(p.inv),
        _mm256_set1_ps(p.zf),
        _mm256_setzero_ps(),
        _mm256_set1_ps(ACT_MAX as f32),
    );
    for i in (0..n8).step_by(8) {
        // SAFETY: i + 8 <= row.len() <= q.len().
        unsafe {
            let v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(row.as_ptr().add(i)), vinv), vzf);
            let v = _mm256_min_ps(_mm256_max_ps(v, vmin), vmax);
            let w = _mm256_cvttps_epi32(v);
            let w16 = _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
            let b = _mm_packus_epi16(w16, w16);
            _mm_storel_epi64(q.as_mut_ptr().add(i) as *mut __m128i, b);
        }
    }
    for (d, &v) in q[n8..].iter_mut().zip(&row[n8..]) {
        *d = p.code(v);
    }
    q[row.len()..].fill(p.zero as u8);
    (p.scale, p.zero)
}

/// Reads the 4 activation bytes of group `g` of row `r` as one lane value.
#[inline(always)]
unsafe fn lane(a: &[u8], at: usize) -> i32 {
    debug_assert!(at + 4 <= a.len());
    // SAFETY: the caller passes `at + 4 <= a.len()`.
    unsafe { (a.as_ptr().add(at) as *const i32).read_unaligned() }
}

#[target_feature(enable = "avx2")]
unsafe fn rows_avx2<const MR: usize>(panel: &[i8], a: &[u8], r0: usize, kp: usize, acc: &mut [i32]) {
    let ones = _mm256_set1_epi16(1);
    let mut c0 = [_mm256_setzero_si256(); MR];
    let mut c1 = [_mm256_setzero_si256(); MR];
    for g in 0..kp / KG {
        // SAFETY: `panel` holds `kp / 4` groups of 64 bytes (checked by the caller).
        let (w0, w1) = unsafe {
            let p = panel.as_ptr().add(g * NR * KG) as *const __m256i;
            (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
        };
        for i in 0..MR {
            // SAFETY: rows r0..r0 + MR of `a` exist (checked by the caller).
            let av = _mm256_set1_epi32(unsafe { lane(a, (r0 + i) * kp + g * KG) });
            c0[i] = _mm256_add_epi32(c0[i], _mm256_madd_epi16(_mm256_maddubs_epi16(av, w0), ones));
            c1[i] = _mm256_add_epi32(c1[i], _mm256_madd_epi16(_mm256_maddubs_epi16(av, w1), ones));
        }
    }
    for i in 0..MR {
        let o = &mut acc[(r0 + i) * NR..(r0 + i + 1) * NR];
        // SAFETY: `o` holds 16 i32, two 32-byte stores.
        unsafe {
            _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, c0[i]);
            _mm256_storeu_si256(o.as_mut_ptr().add(8) as *mut __m256i, c1[i]);
        }
    }
}

/// `acc (rows x 16) = a (rows x kp) * panel^T` with `vpmaddubsw`: exact only for weights of
/// at most 7 bits (the caller checks).
pub(super) fn panel_avx2(panel: &[i8], a: &[u8], rows: usize, kp: usize, acc: &mut [i32]) {
    assert!(panel.len() >= kp * NR && a.len() >= rows * kp && acc.len() >= rows * NR && kp.is_multiple_of(KG));
    let mut r = 0;
    // SAFETY: chosen only when the CPU has AVX2 (`Int8Weights::matmul_path`); the bounds
    // the bodies rely on are asserted above.
    unsafe {
        while rows - r >= 4 {
            rows_avx2::<4>(panel, a, r, kp, acc);
            r += 4;
        }
        while r < rows {
            rows_avx2::<1>(panel, a, r, kp, acc);
            r += 1;
        }
    }
}

#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn rows_vnni<const MR: usize>(panel: &[i8], a: &[u8], r0: usize, kp: usize, acc: &mut [i32]) {
    let mut c = [_mm512_setzero_si512(); MR];
    for g in 0..kp / KG {
        // SAFETY: as in `rows_avx2`.
        let w = unsafe { _mm512_loadu_si512(panel.as_ptr().add(g * NR * KG) as *const _) };
        for (i, ci) in c.iter_mut().enumerate() {
            // SAFETY: as in `rows_avx2`.
            let av = _mm512_set1_epi32(unsafe { lane(a, (r0 + i) * kp + g * KG) });
            *ci = _mm512_dpbusd_epi32(*ci, av, w);
        }
    }
    for (i, ci) in c.iter().enumerate() {
        // SAFETY: 16 i32 per row of `acc`.
        unsafe { _mm512_storeu_si512(acc.as_mut_ptr().add((r0 + i) * NR) as *mut _, *ci) };
    }
}

pub(super) fn panel_vnni(panel: &[i8], a: &[u8], rows: usize, kp: usize, acc: &mut [i32]) {
    assert!(panel.len() >= kp * NR && a.len() >= rows * kp && acc.len() >= rows * NR && kp.is_multiple_of(KG));
    let mut r = 0;
    // SAFETY: chosen only when the CPU has AVX-512F and VNNI; bounds asserted above.
    unsafe {
        while rows - r >= 8 {
            rows_vnni::<8>(panel, a, r, kp, acc);
            r += 8;
        }
        while rows - r >= 2 {
            rows_vnni::<2>(panel, a, r, kp, acc);
            r += 2;
        }
        while r < rows {
            rows_vnni::<1>(panel, a, r, kp, acc);
            r += 1;
        }
    }
}
