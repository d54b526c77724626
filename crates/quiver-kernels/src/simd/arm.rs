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
