//! The scalar reference kernels: obviously correct, the oracle every SIMD path is tested against.
//! They accumulate in `f32` in index order, like the simplest loop a reader would write.

/// `sum a_i * b_i`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut sum = 0.0f32;
    for i in 0..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// `sum (a_i - b_i)^2`.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut sum = 0.0f32;
    for i in 0..a.len() {
        let d = a[i] - b[i];
        sum += d * d;
    }
    sum
}

/// `sum |a_i - b_i|`.
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut sum = 0.0f32;
    for i in 0..a.len() {
        sum += (a[i] - b[i]).abs();
    }
    sum
}

/// `out[i] = <query, row i>` for the rows of `rows` (row-major, `query.len()` columns).
pub fn dot_rows(query: &[f32], rows: &[f32], out: &mut [f32]) {
    let dim = query.len();
    debug_assert_eq!(rows.len(), out.len() * dim);
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(dim)) {
        *o = dot(query, row);
    }
}
