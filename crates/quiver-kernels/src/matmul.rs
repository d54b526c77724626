//! Dense matrix products for the transformer embedder and the batched scans, through the `gemm`
//! crate. Matrices are strided views ([`MatRef`], [`MatMut`]) whose bounds are checked when they
//! are made, so the one `unsafe` call needs no further argument than the views themselves.

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

/// `out (m x n) = a (m x k) * b^T` where `b` is `n x k` row-major (a PyTorch `Linear` weight,
/// or a block of stored vectors), on the calling thread.
pub fn matmul_nt(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, out: &mut [f32]) {
    gemm(
        Threads::One,
        MatMut::row_major(out, m, n),
        false,
        MatRef::row_major(a, m, k),
        MatRef::row_major(b, n, k).t(),
    );
}

/// What the outputs of the packed products ([`crate::panels::Panels`],
/// [`crate::qmm::Int8Weights`]) are added to: `out := base + x W^T`.
///
/// A linear layer's bias and residual are added as each tile of outputs is stored, rather than
/// written into `out` first and read back: a first pass over `out` would fetch every line twice,
/// and the output of a large layer does not stay in cache between the passes.
#[derive(Clone, Copy, Debug)]
pub enum Onto<'a> {
    /// Nothing: `out := x W^T`.
    Nothing,
    /// `out`'s own values: `out += x W^T`.
    Out,
    /// `out := (bias + residual) + x W^T`, or `bias + x W^T` without a residual. `bias` holds
    /// one value per output column; `residual` is `m x n` row-major, like `out`.
    Bias {
        /// One value per output column.
        bias: &'a [f32],
        /// Added to the bias before the product, row by row.
        residual: Option<&'a [f32]>,
    },
}

impl<'a> Onto<'a> {
    /// Panics unless the base fits an output of `m x n`.
    pub(crate) fn check(self, m: usize, n: usize) {
        if let Onto::Bias { bias, residual } = self {
            assert_eq!(bias.len(), n, "one bias per output column");
            assert!(residual.is_none_or(|r| r.len() == m * n), "the residual is m x n");
        }
    }

    /// The same base for the rows from `r0` on, of an output `n` columns wide.
    pub(crate) fn rows_from(self, r0: usize, n: usize) -> Onto<'a> {
        match self {
            Onto::Bias { bias, residual } => Onto::Bias {
                bias,
                residual: residual.map(|r| &r[r0 * n..]),
            },
            other => other,
        }
    }

    /// The same base for the columns from `c0` on (row stride unchanged).
    pub(crate) fn cols_from(self, c0: usize) -> Onto<'a> {
        match self {
            Onto::Bias { bias, residual } => Onto::Bias {
                bias: &bias[c0..],
                residual: residual.map(|r| &r[c0..]),
            },
            other => other,
        }
    }

    /// Stores `acc` (products for row `r`, from this base's first column on) into `out`, adding
    /// the base; `n` is the residual's row stride.
    #[inline(always)]
    pub(crate) fn store(self, out: &mut [f32], acc: &[f32], r: usize, n: usize) {
        match self {
            Onto::Nothing => out.copy_from_slice(acc),
            Onto::Out => out.iter_mut().zip(acc).for_each(|(o, a)| *o += a),
            Onto::Bias { bias, residual: None } => {
                out.iter_mut().zip(bias).zip(acc).for_each(|((o, b), a)| *o = b + a);
            }
            Onto::Bias { bias, residual: Some(res) } => {
                let res = &res[r * n..][..out.len()];
                out.iter_mut()
                    .zip(bias)
                    .zip(res)
                    .zip(acc)
                    .for_each(|(((o, b), v), a)| *o = (b + v) + a);
            }
        }
    }

    /// Asks for the lines that [`Onto::store`] will read for row `r` (`len` columns), so that
    /// they arrive while the products are computed.
    #[inline(always)]
    pub(crate) fn prefetch(self, out: &[f32], r: usize, len: usize, n: usize) {
        match self {
            Onto::Out => crate::quant::prefetch(&out[r * n..][..len]),
            Onto::Bias { residual: Some(res), .. } => crate::quant::prefetch(&res[r * n..][..len]),
            _ => {}
        }
    }
}

/// A read-only strided view of a matrix inside a slice: element (i, j) is
/// `data[i * row_stride + j * col_stride]`. Construction checks that every element is in bounds.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A view with explicit strides. Panics if an element would fall outside `data`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> MatRef<'a> {
        assert!(
            rows == 0 || cols == 0 || (rows - 1) * row_stride + (cols - 1) * col_stride < data.len(),
            "MatRef out of bounds"
        );
        MatRef {
            data,
            rows,
            cols,
            rs: row_stride,
            cs: col_stride,
        }
    }

    /// A contiguous row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> MatRef<'a> {
        assert_eq!(data.len(), rows * cols, "MatRef shape");
        MatRef::strided(data, rows, cols, cols, 1)
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// A writable view of a matrix whose rows are contiguous: element (i, j) is
/// `data[i * row_stride + j]`, with `row_stride >= cols` so that no two elements share a place.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    rs: usize,
}

impl<'a> MatMut<'a> {
    /// Rows of `cols` elements, `row_stride` apart. Panics if an element would fall outside
    /// `data` or rows would overlap.
    pub fn strided(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> MatMut<'a> {
        assert!(rows <= 1 || row_stride >= cols, "MatMut rows overlap");
        assert!(
            rows == 0 || cols == 0 || (rows - 1) * row_stride + cols <= data.len(),
            "MatMut out of bounds"
        );
        MatMut {
            data,
            rows,
            cols,
            rs: row_stride,
        }
    }

    /// A contiguous row-major `rows x cols` matrix.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> MatMut<'a> {
        assert_eq!(data.len(), rows * cols, "MatMut shape");
        MatMut::strided(data, rows, cols, cols)
    }
}

/// `dst := a * b`, or `dst := dst + a * b` when `accumulate` (which is how a bias or a residual,
/// written into `dst` beforehand, costs nothing extra). Panics on mismatched shapes.
pub fn gemm(threads: Threads, dst: MatMut<'_>, accumulate: bool, a: MatRef<'_>, b: MatRef<'_>) {
    assert!(
        a.rows == dst.rows && b.cols == dst.cols && a.cols == b.rows,
        "gemm shapes: {}x{} * {}x{} into {}x{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        dst.rows,
        dst.cols
    );
    let (m, n, k) = (dst.rows, dst.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst.data[i * dst.rs..i * dst.rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the constructors checked that every element (i, j) of each view, at
    // i * rs + j * cs, lies inside its slice, and that the rows of `dst` do not overlap; `dst`
    // is borrowed mutably, so it aliases neither input. The strides fit in isize because they
    // index existing slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
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
        gemm(
            Threads::All,
            MatMut::row_major(&mut nn, m, n),
            false,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b_kn, k, n),
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * b_nk[j * k + t]).sum();
                assert!((nt[i * n + j] - want).abs() < 1e-5);
                assert!((nn[i * n + j] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn strided_views_and_accumulation_match_the_schoolbook_loop() {
        // a: 4 x 3 taken as every other column of a 4 x 6 buffer; b: 3 x 5 as the transpose of
        // a 5 x 3 matrix; dst: 4 x 5 inside rows of 7 with an offset, accumulating onto 1.0.
        let (m, k, n) = (4, 3, 5);
        let abuf: Vec<f32> = (0..m * 6).map(|i| (i as f32 * 0.37).sin()).collect();
        let bbuf: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.23).cos()).collect();
        let mut dbuf = vec![1.0f32; 2 + m * 7];
        let a = MatRef::strided(&abuf, m, k, 6, 2);
        let b = MatRef::row_major(&bbuf, n, k).t();
        gemm(Threads::One, MatMut::strided(&mut dbuf[2..], m, n, 7), true, a, b);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|t| abuf[i * 6 + 2 * t] * bbuf[j * k + t]).sum::<f32>();
                assert!((dbuf[2 + i * 7 + j] - want).abs() < 1e-5);
            }
            // The gap between rows is untouched.
            assert!(dbuf[2 + i * 7 + n..2 + i * 7 + 7].iter().all(|&v| v == 1.0));
        }
        assert_eq!(&dbuf[..2], &[1.0, 1.0]);
        gemm(Threads::All, MatMut::strided(&mut dbuf[2..], m, n, 7), false, a, b);
        let want: f32 = (0..k).map(|t| abuf[2 * t] * bbuf[t]).sum();
        assert!((dbuf[2] - want).abs() < 1e-5);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let buf = vec![0.0f32; 10];
        let _ = MatRef::strided(&buf, 3, 3, 4, 1);
    }
}
