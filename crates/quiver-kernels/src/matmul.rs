//! Dense matrix products for the transformer embedder, through the `gemm` crate (the only
//! `unsafe` is the call itself; shapes are asserted first).

/// How many threads one product may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// The calling thread only (for products inside an already parallel loop).
    One,
    /// Rayon's pool, all of it.
    All,
}

impl Threads {
    fn gemm(self) -> gemm::Parallelism {
        match self {
            Threads::One => gemm::Parallelism::None,
            Threads::All => gemm::Parallelism::Rayon(rayon::current_num_threads().max(1)),
        }
    }
}

/// `out (m x n) = a (m x k) * b^T` where `b` is `n x k` row-major (a PyTorch `Linear` weight).
pub fn matmul_nt(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, out: &mut [f32]) {
    matmul_nt_with(Threads::One, a, m, k, b, n, out)
}

/// [`matmul_nt`] on a chosen number of threads.
pub fn matmul_nt_with(threads: Threads, a: &[f32], m: usize, k: usize, b: &[f32], n: usize, out: &mut [f32]) {
    assert!(a.len() == m * k && b.len() == n * k && out.len() == m * n, "matmul_nt shapes");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: the assertions above bound every access: `a` is m x k with row stride k, the
    // right-hand side is b transposed (element (i, j) at b[j * k + i]: row stride 1, column
    // stride k) over n x k floats, and `out` is m x n with row stride n.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            threads.gemm(),
        );
    }
}

/// `out (m x n) = a (m x k) * b (k x n)`, all row-major.
pub fn matmul_nn(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, out: &mut [f32]) {
    assert!(a.len() == m * k && b.len() == k * n && out.len() == m * n, "matmul_nn shapes");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: as above, with `b` read as k x n row-major (column stride 1, row stride n).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_match_the_schoolbook_loop() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.31).sin()).collect();
        let b_nk: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.17).cos()).collect();
        let b_kn: Vec<f32> = (0..k * n).map(|i| b_nk[(i % n) * k + i / n]).collect();
        let mut nt = vec![0.0; m * n];
        let mut nn = vec![0.0; m * n];
        matmul_nt(&a, m, k, &b_nk, n, &mut nt);
        matmul_nn(&a, m, k, &b_kn, n, &mut nn);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * b_nk[j * k + t]).sum();
                assert!((nt[i * n + j] - want).abs() < 1e-5);
                assert!((nn[i * n + j] - want).abs() < 1e-5);
            }
        }
    }
}
