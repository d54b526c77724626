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
    // b^T: element (i, j) at b[j * k + i], so column stride k and row stride 1.
    gemm_into(threads, a, m, k, b, k, 1, n, out);
}

/// `out (m x n) = a (m x k) * b (k x n)`, all row-major.
pub fn matmul_nn(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, out: &mut [f32]) {
    assert!(a.len() == m * k && b.len() == k * n && out.len() == m * n, "matmul_nn shapes");
    gemm_into(Threads::One, a, m, k, b, 1, n, n, out);
}

/// `out = a * B` where `a` is m x k row-major, `out` m x n row-major, and element (i, j) of the
/// k x n matrix B is `b[i * b_rs + j * b_cs]`. Callers have checked that `b` holds every such
/// element (`matmul_nt_with` and `matmul_nn` assert the shapes).
#[allow(clippy::too_many_arguments)]
fn gemm_into(threads: Threads, a: &[f32], m: usize, k: usize, b: &[f32], b_cs: usize, b_rs: usize, n: usize, out: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    debug_assert!((k - 1) * b_rs + (n - 1) * b_cs < b.len());
    // SAFETY: `a` is m x k with row stride k and `out` m x n with row stride n (asserted by the
    // callers); every element of B read, (i, j) with i < k and j < n, lies at
    // i * b_rs + j * b_cs < b.len() by the callers' shape assertions.
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
            b_cs as isize,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            threads.gemm(),
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
