//! Int8 matrix products for the embedder's opt-in int8 precision ([`Precision::Int8`]).
//!
//! The scheme is ONNX Runtime's dynamic quantization: weights are quantized once, per output row
//! (symmetric, one scale per row); activations are quantized on the fly, per token row
//! (asymmetric: a scale and a zero point, so a row of mostly positive values uses all 256
//! levels). A product is then an exact integer sum,
//!
//! ```text
//! y[r][j] = sa[r] * sw[j] * (sum_k qa[r][k] * qw[j][k]  -  za[r] * sum_k qw[j][k])
//! ```
//!
//! whose integer part every path computes identically: the paths differ only in speed, and the
//! tests require equal sums bit for bit.
//!
//! Weights use 8 bits (`-127..=127`), except for the AVX2 path: its `vpmaddubsw` adds two
//! `u8 * i8` products into a saturating `i16`, and only with 7-bit weights (`-63..=63`) does the
//! pair stay below `2 * 255 * 63 = 32130 < 32767`, so that it never saturates and equals the
//! scalar twin. (ONNX Runtime calls this `reduce_range`.) Activations, the larger error of the
//! two, keep all 8 bits. The exact alternatives measured slower on AVX2 (Zen 3, paragraphs):
//! 16-bit `vpmaddwd` 64 texts/s and moving the weights' signs onto the activations
//! (`vpsignb`) 58, against 83 for 7-bit weights; their cosine with the reference was 0.9983
//! (mean) against 0.9962. VNNI's `vpdpbusd` sums into 32 bits and takes 8-bit weights.
//!
//! Paths: the scalar twin, AVX2 (`vpmaddubsw` + `vpmaddwd`, 32 products per pair of
//! instructions) and AVX-512 VNNI (`vpdpbusd`, 64 products in one instruction), chosen once per
//! process by the CPU's features.

use crate::matmul::Onto;
use rayon::prelude::*;
use std::sync::OnceLock;

/// How the embedder's linear layers compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 products (bfloat16-rounded weights for a few tokens on CPUs with AVX-512): the
    /// reference embeddings to cosine >= 0.9999.
    #[default]
    Float,
    /// Int8 weights and activations ([`Int8Weights`]): faster, a little less exact.
    Int8,
}

impl Precision {
    /// The name settings and flags use: `float` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Float => "float",
            Precision::Int8 => "int8",
        }
    }

    /// Parses `float` (also `f32`, `fp32`) or `int8` (also `i8`), any case.
    pub fn parse(s: &str) -> Option<Precision> {
        match s.trim().to_ascii_lowercase().as_str() {
            "float" | "f32" | "fp32" => Some(Precision::Float),
            "int8" | "i8" => Some(Precision::Int8),
            _ => None,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Output columns per packed panel (one AVX-512 register of `i32`, two AVX2 registers).
const NR: usize = 16;
/// Consecutive `k` values summed into one 32-bit lane by `vpmaddwd` / `vpdpbusd`.
const KG: usize = 4;
/// The largest weight code: 8 bits.
pub const WEIGHT_MAX: i32 = 127;
/// The largest weight code for the AVX2 path: 7 bits (see the module documentation).
pub const WEIGHT_MAX_AVX2: i32 = 63;
/// The largest activation code.
pub const ACT_MAX: i32 = 255;

/// A way to compute the integer sums of one panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QmmPath {
    Scalar,
    Avx2,
    Avx512Vnni,
}

impl QmmPath {
    /// Every path this CPU can run, the scalar twin first.
    pub fn available() -> Vec<QmmPath> {
        let mut out = vec![QmmPath::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                out.push(QmmPath::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vnni") {
                out.push(QmmPath::Avx512Vnni);
            }
        }
        out
    }

    /// The fastest path of this CPU, found once.
    pub fn best() -> QmmPath {
        static BEST: OnceLock<QmmPath> = OnceLock::new();
        *BEST.get_or_init(|| *QmmPath::available().last().expect("scalar is always available"))
    }

    fn epilogue(self) -> Epilogue {
        match self {
            #[cfg(target_arch = "x86_64")]
            QmmPath::Avx2 | QmmPath::Avx512Vnni if QmmPath::available().contains(&QmmPath::Avx2) => x86::epilogue_avx2,
            _ => epilogue_scalar,
        }
    }

    fn quantize_row(self) -> QuantizeRow {
        match self {
            #[cfg(target_arch = "x86_64")]
            QmmPath::Avx2 | QmmPath::Avx512Vnni if QmmPath::available().contains(&QmmPath::Avx2) => x86::quantize_row_avx2,
            _ => quantize_row_scalar,
        }
    }

    /// The kernel of the integer sums (AVX2's is exact only on 7-bit weights: see
    /// [`Int8Weights::matmul_path`]).
    fn kernel(self) -> PanelKernel {
        match self {
            #[cfg(target_arch = "x86_64")]
            QmmPath::Avx2 if QmmPath::available().contains(&self) => x86::panel_avx2,
            #[cfg(target_arch = "x86_64")]
            QmmPath::Avx512Vnni if QmmPath::available().contains(&self) => x86::panel_vnni,
            _ => panel_scalar,
        }
    }
}

/// `acc (rows x NR) = a (rows x kp, u8) * panel^T`, the panel being `kp / 4` groups of `NR`
/// columns times 4 bytes.
type PanelKernel = fn(panel: &[i8], a: &[u8], rows: usize, kp: usize, acc: &mut [i32]);

/// The scalar twin: the oracle of the SIMD paths.
fn panel_scalar(panel: &[i8], a: &[u8], rows: usize, kp: usize, acc: &mut [i32]) {
    for r in 0..rows {
        let arow = &a[r * kp..(r + 1) * kp];
        let out = &mut acc[r * NR..(r + 1) * NR];
        out.fill(0);
        for (g, w) in panel.chunks_exact(NR * KG).enumerate().take(kp / KG) {
            for (j, o) in out.iter_mut().enumerate() {
                for t in 0..KG {
                    *o += arow[g * KG + t] as i32 * w[j * KG + t] as i32;
                }
            }
        }
    }
}

/// The weights of a linear layer (`n x k`, PyTorch's output-by-input), quantized and packed.
#[derive(Clone, Debug)]
pub struct Int8Weights {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of 4 (the padding weights are zero).
    kp: usize,
    /// `ceil(n / 16)` panels of `kp / 4` groups of 16 columns x 4 bytes; columns past `n` are
    /// zero.
    data: Vec<i8>,
    /// Per output row: the weight is `scale * q`.
    scale: Vec<f32>,
    /// Per output row: `sum_k q`, for the activations' zero point.
    colsum: Vec<i32>,
    /// The largest code magnitude: 127, or 63 where the weights are for the AVX2 path.
    max: i32,
}

/// Activations quantized per row: `x = scale * (q - zero)`.
struct Int8Rows {
    data: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

impl Int8Weights {
    /// Quantizes and packs `w`, `n x k` row-major, for this CPU's fastest path. Panics if
    /// `w.len() != n * k`.
    pub fn pack(w: &[f32], n: usize, k: usize) -> Int8Weights {
        Int8Weights::pack_for(QmmPath::best(), w, n, k)
    }

    /// Quantizes and packs `w` for `path`: 7-bit codes for AVX2, 8-bit for the others.
    pub fn pack_for(path: QmmPath, w: &[f32], n: usize, k: usize) -> Int8Weights {
        assert_eq!(w.len(), n * k, "Int8Weights::pack shape");
        let max_code = if path == QmmPath::Avx2 { WEIGHT_MAX_AVX2 } else { WEIGHT_MAX };
        let kp = round_up(k.max(1), KG);
        let panels = n.div_ceil(NR);
        let mut data = vec![0i8; panels * kp * NR];
        let mut scale = vec![0.0f32; n];
        let mut colsum = vec![0i32; n];
        for j in 0..n {
            let row = &w[j * k..(j + 1) * k];
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let s = if max > 0.0 && max.is_finite() { max / max_code as f32 } else { 1.0 };
            scale[j] = s;
            let (p, c) = (j / NR, j % NR);
            for (kk, &v) in row.iter().enumerate() {
                let q = (v / s).round().clamp(-max_code as f32, max_code as f32) as i8;
                colsum[j] += q as i32;
                let (g, t) = (kk / KG, kk % KG);
                data[p * kp * NR + g * NR * KG + c * KG + t] = q;
            }
        }
        Int8Weights {
            n,
            k,
            kp,
            data,
            scale,
            colsum,
            max: max_code,
        }
    }

    /// `out (m x n) := [out +] x (m x k) * W^T`, on the fastest path, rows split across rayon's
    /// pool.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], onto: Onto<'_>) {
        self.matmul_path(QmmPath::best(), x, m, out, onto)
    }

    /// [`Int8Weights::matmul`] on a chosen path (the tests and benchmarks compare the paths).
    pub fn matmul_path(&self, path: QmmPath, x: &[f32], m: usize, out: &mut [f32], onto: Onto<'_>) {
        let (n, k, kp) = (self.n, self.k, self.kp);
        assert!(x.len() == m * k && out.len() == m * n, "Int8Weights::matmul shapes");
        onto.check(m, n);
        if m == 0 || n == 0 {
            return;
        }
        assert!(
            path != QmmPath::Avx2 || self.max <= WEIGHT_MAX_AVX2,
            "8-bit weights would saturate the AVX2 path: pack them for it"
        );
        let a = quantize_rows(path, x, m, k, kp);
        let epilogue = path.epilogue();
        let kernel = path.kernel();
        self.drive(m, out, onto, &a, epilogue, |p, r0, rows, acc| {
            kernel(
                &self.data[p * kp * NR..(p + 1) * kp * NR],
                &a.data[r0 * kp..(r0 + rows) * kp],
                rows,
                kp,
                acc,
            )
        })
    }

    /// Runs `panel(p, r0, rows, acc)` (the integer sums of panel `p` for rows `r0..r0 + rows`)
    /// over blocks of rows in parallel, and turns the sums into `out`.
    fn drive(
        &self,
        m: usize,
        out: &mut [f32],
        onto: Onto<'_>,
        a: &Int8Rows,
        epilogue: Epilogue,
        panel: impl Fn(usize, usize, usize, &mut [i32]) + Sync,
    ) {
        let n = self.n;
        // Enough row blocks for every thread to have two, each a multiple of 8 rows (the widest
        // micro-kernel) and at most 128 (its activations stay in L2 while the panels stream by).
        let threads = rayon::current_num_threads().max(1);
        let rows_per = round_up(m.div_ceil(2 * threads), 8).clamp(8, 128);
        out.par_chunks_mut(rows_per * n).enumerate().for_each(|(b, out)| {
            let r0 = b * rows_per;
            let rows = out.len() / n;
            let onto = onto.rows_from(r0, n);
            let mut acc = vec![0i32; rows * NR];
            for p in 0..n.div_ceil(NR) {
                let (c0, c1) = (p * NR, ((p + 1) * NR).min(n));
                let onto = onto.cols_from(c0);
                // The lines the epilogue reads (a residual) arrive while the sums are computed.
                for r in 0..rows {
                    onto.prefetch(&out[c0..], r, c1 - c0, n);
                }
                panel(p, r0, rows, &mut acc);
                let cols = Cols {
                    scale: &self.scale[c0..c1],
                    sum: &self.colsum[c0..c1],
                };
                let act = Acts {
                    scale: &a.scale[r0..r0 + rows],
                    zero: &a.zero[r0..r0 + rows],
                };
                epilogue(&acc, act, cols, &mut out[c0..], n, onto);
            }
        });
    }

    /// The product computed in f64 from the dequantized weights and activations, one multiply
    /// at a time: what every path must equal to f32 rounding (a test oracle).
    #[cfg(test)]
    fn matmul_dequantized(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k, kp) = (self.n, self.k, self.kp);
        let a = quantize_rows(QmmPath::Scalar, x, m, k, kp);
        let mut out = vec![0.0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                let (p, c) = (j / NR, j % NR);
                let mut s = 0.0f64;
                for kk in 0..k {
                    let w = self.data[p * kp * NR + (kk / KG) * NR * KG + c * KG + kk % KG] as f64 * self.scale[j] as f64;
                    let xa = (a.data[r * kp + kk] as i32 - a.zero[r]) as f64 * a.scale[r] as f64;
                    s += w * xa;
                }
                out[r * n + j] = s as f32;
            }
        }
        out
    }
}

/// The scales and sums of one panel's output columns (16, fewer in the last panel).
#[derive(Clone, Copy)]
struct Cols<'a> {
    scale: &'a [f32],
    sum: &'a [i32],
}

/// The scales and zero points of a block of activation rows.
#[derive(Clone, Copy)]
struct Acts<'a> {
    scale: &'a [f32],
    zero: &'a [i32],
}

/// `out[r][j] (+)= sa[r] * sw[j] * (acc[r][j] - za[r] * colsum[j])` over a block of rows of one
/// panel; `acc` is `rows x 16`, row `r` of `out` starts at `r * stride`.
type Epilogue = fn(acc: &[i32], act: Acts<'_>, cols: Cols<'_>, out: &mut [f32], stride: usize, onto: Onto<'_>);

fn epilogue_scalar(acc: &[i32], act: Acts<'_>, cols: Cols<'_>, out: &mut [f32], stride: usize, onto: Onto<'_>) {
    for (r, (&sa, &za)) in act.scale.iter().zip(act.zero).enumerate() {
        let orow = &mut out[r * stride..r * stride + cols.scale.len()];
        epilogue_row(&acc[r * NR..(r + 1) * NR], sa, za, cols, orow, onto, r, stride);
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn epilogue_row(acc: &[i32], sa: f32, za: i32, cols: Cols<'_>, out: &mut [f32], onto: Onto<'_>, r: usize, stride: usize) {
    if out.len() == NR {
        // The common case in fixed-size arrays, so that it compiles to a few vector operations.
        let (acc, sw, cs): (&[i32; NR], &[f32; NR], &[i32; NR]) = (
            acc[..NR].try_into().expect("16"),
            cols.scale.try_into().expect("16"),
            cols.sum.try_into().expect("16"),
        );
        let mut v = [0.0f32; NR];
        for j in 0..NR {
            v[j] = sa * sw[j] * (acc[j] - za * cs[j]) as f32;
        }
        onto.store(out, &v, r, stride);
        return;
    }
    // A narrower last panel: the same values in the first `out.len()` lanes.
    let mut v = [0.0f32; NR];
    for (j, v) in v.iter_mut().enumerate().take(out.len()) {
        *v = sa * cols.scale[j] * (acc[j] - za * cols.sum[j]) as f32;
    }
    onto.store(out, &v[..out.len()], r, stride);
}

/// Quantizes one row of `k` values into `q` (`kp >= k` bytes); returns (scale, zero point).
type QuantizeRow = fn(row: &[f32], q: &mut [u8]) -> (f32, i32);

/// Per row: the range `[min(0, min x), max(0, max x)]` onto the codes `0..=255`, zero exactly
/// representable (so zero padding and ReLU-like zeros cost nothing). Rounds half up (`+ 0.5`,
/// then truncation of a non-negative number), the same on every path.
#[inline(always)]
fn quantize_row_body(row: &[f32], q: &mut [u8]) -> (f32, i32) {
    // Eight running minima and maxima, so that the loop vectorizes.
    let (mut lo, mut hi) = ([0.0f32; 8], [0.0f32; 8]);
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    for &v in chunks.remainder() {
        lo[0] = if v < lo[0] { v } else { lo[0] };
        hi[0] = if v > hi[0] { v } else { hi[0] };
    }
    let lo = lo.iter().fold(0.0f32, |a, &b| if b < a { b } else { a });
    let hi = hi.iter().fold(0.0f32, |a, &b| if b > a { b } else { a });
    let Some(p) = RowParams::of(lo, hi) else {
        q.fill(0);
        return (1.0, 0);
    };
    for (d, &v) in q.iter_mut().zip(row) {
        *d = p.code(v);
    }
    q[row.len()..].fill(p.zero as u8);
    (p.scale, p.zero)
}

/// How one activation row maps onto the codes.
struct RowParams {
    scale: f32,
    inv: f32,
    zero: i32,
    /// `zero + 0.5`: added before truncation, it rounds half up.
    zf: f32,
}

impl RowParams {
    /// For a row whose range is `[lo, hi]` (`lo <= 0 <= hi`); `None` when the range is empty
    /// (all zeros) or not finite (the product is then meaningless anyway): the row is coded 0.
    #[inline(always)]
    fn of(lo: f32, hi: f32) -> Option<RowParams> {
        let range = hi - lo;
        if range <= 0.0 || !range.is_finite() {
            return None;
        }
        let scale = range / ACT_MAX as f32;
        let inv = 1.0 / scale;
        let zero = ((-lo * inv + 0.5) as i32).clamp(0, ACT_MAX);
        Some(RowParams {
            scale,
            inv,
            zero,
            zf: zero as f32 + 0.5,
        })
    }

    /// The code of one value.
    #[inline(always)]
    fn code(&self, v: f32) -> u8 {
        (v * self.inv + self.zf).clamp(0.0, ACT_MAX as f32) as u8
    }
}

fn quantize_row_scalar(row: &[f32], q: &mut [u8]) -> (f32, i32) {
    quantize_row_body(row, q)
}

fn quantize_rows(path: QmmPath, x: &[f32], m: usize, k: usize, kp: usize) -> Int8Rows {
    let mut data = vec![0u8; m * kp];
    let mut scale = vec![1.0f32; m];
    let mut zero = vec![0i32; m];
    let quantize = path.quantize_row();
    data.par_chunks_mut(kp)
        .zip(scale.par_iter_mut().zip(zero.par_iter_mut()))
        .enumerate()
        .with_min_len(16)
        .for_each(|(r, (q, (s, z)))| (*s, *z) = quantize(&x[r * k..(r + 1) * k], q));
    Int8Rows { data, scale, zero }
}

pub mod wide;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn matrix(rng: &mut rand_chacha::ChaCha8Rng, len: usize, spread: f32) -> Vec<f32> {
        (0..len).map(|_| rng.gen_range(-1.0f32..1.0) * spread).collect()
    }

    /// Every path's integer sums equal the scalar twin's, for shapes that use every micro-kernel
    /// height, a `k` that is not a multiple of 4 and an `n` that is not a multiple of 16, with
    /// activations at the extremes of their range (where a saturating pair sum would show).
    #[test]
    fn every_path_equals_the_scalar_twin_exactly() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (m, k, n) in [(1, 3, 5), (7, 37, 48), (19, 384, 40), (33, 130, 16), (130, 64, 33)] {
            let w = matrix(&mut rng, n * k, 0.3);
            let mut x = matrix(&mut rng, m * k, 2.0);
            // Row 0 all at its maximum: every quantized activation is 255, so each pair of
            // same-signed large weights meets the largest pair sum (where saturation would show).
            x[..k].fill(5.0);
            for path in QmmPath::available() {
                // Each path with the weights packed for it (7 or 8 bits), against the scalar
                // twin on the same codes.
                let q = Int8Weights::pack_for(path, &w, n, k);
                let mut want = vec![0.25f32; m * n];
                q.matmul_path(QmmPath::Scalar, &x, m, &mut want, Onto::Out);
                let mut got = vec![0.25f32; m * n];
                q.matmul_path(path, &x, m, &mut got, Onto::Out);
                assert_eq!(got, want, "{path:?} m={m} k={k} n={n}");
                q.matmul_path(path, &x, m, &mut got, Onto::Nothing);
                assert!((got[0] + 0.25 - want[0]).abs() <= 1e-5 * (1.0 + want[0].abs()));
            }
        }
    }

    /// A bias and a residual added as the outputs are stored give, on every path, the same bits as
    /// writing them into the output first and accumulating onto it, for one row block and for
    /// several, and an `n` that is not a multiple of 16 (the scalar epilogue's tail).
    #[test]
    fn a_bias_and_residual_equal_writing_them_first() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for (m, k, n) in [(1, 40, 48), (9, 64, 33), (200, 96, 32)] {
            let (w, x) = (matrix(&mut rng, n * k, 0.3), matrix(&mut rng, m * k, 2.0));
            let (bias, res) = (matrix(&mut rng, n, 1.0), matrix(&mut rng, m * n, 1.0));
            for path in QmmPath::available() {
                let q = Int8Weights::pack_for(path, &w, n, k);
                for residual in [None, Some(&res[..])] {
                    let mut want: Vec<f32> = (0..m * n).map(|i| bias[i % n] + residual.map_or(0.0, |r| r[i])).collect();
                    q.matmul_path(path, &x, m, &mut want, Onto::Out);
                    let mut got = vec![f32::NAN; m * n];
                    q.matmul_path(path, &x, m, &mut got, Onto::Bias { bias: &bias, residual });
                    assert_eq!(got, want, "{path:?} m={m} n={n} residual={}", residual.is_some());
                }
            }
        }
    }

    /// The integer identity (zero point, column sums, scales) against the dequantized product in
    /// f64, and the dequantized product against the f32 product within what 7-bit weights and
    /// 8-bit activations allow.
    #[test]
    fn the_integer_sums_are_the_dequantized_product() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (m, k, n) = (9, 96, 32);
        let w = matrix(&mut rng, n * k, 0.2);
        let mut x = matrix(&mut rng, m * k, 1.0);
        // A row that is all positive (zero point 0) and one that is all zero.
        x[k..2 * k].iter_mut().for_each(|v| *v = v.abs() + 0.1);
        x[2 * k..3 * k].fill(0.0);
        let q = Int8Weights::pack(&w, n, k);
        let mut got = vec![0.0f32; m * n];
        q.matmul(&x, m, &mut got, Onto::Nothing);
        let deq = q.matmul_dequantized(&x, m);
        let mut worst = 0.0f32;
        for r in 0..m {
            for j in 0..n {
                let (g, d) = (got[r * n + j], deq[r * n + j]);
                assert!((g - d).abs() <= 1e-4 * (1.0 + d.abs()), "({r},{j}): {g} vs {d}");
                let exact: f32 = (0..k).map(|t| x[r * k + t] * w[j * k + t]).sum();
                let scale: f32 = (0..k).map(|t| (x[r * k + t] * w[j * k + t]).abs()).sum();
                worst = worst.max((g - exact).abs() / scale.max(1e-6));
            }
        }
        assert!(got[2 * n..3 * n].iter().all(|&v| v == 0.0), "a zero row gives zeros");
        // 7-bit weights: relative rounding up to 1/126 per product, far less on a sum.
        assert!(worst < 0.02, "relative error {worst}");
        assert!(worst > 0.0, "quantization must show somewhere");
    }

    /// 8-bit weights on AVX2 would saturate `vpmaddubsw`: refused rather than wrong.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn eight_bit_weights_are_refused_by_the_avx2_path() {
        if !QmmPath::available().contains(&QmmPath::Avx2) {
            return;
        }
        let q = Int8Weights::pack_for(QmmPath::Scalar, &[1.0; 8], 2, 4);
        let mut out = [0.0f32; 2];
        let r = std::panic::catch_unwind(move || q.matmul_path(QmmPath::Avx2, &[1.0; 4], 1, &mut out, Onto::Nothing));
        assert!(r.is_err());
    }

    #[test]
    fn precision_names_round_trip() {
        for p in [Precision::Float, Precision::Int8] {
            assert_eq!(Precision::parse(p.name()), Some(p));
        }
        assert_eq!(Precision::parse(" INT8 "), Some(Precision::Int8));
        assert_eq!(Precision::parse("f32"), Some(Precision::Float));
        assert_eq!(Precision::parse("int4"), None);
        assert_eq!(Precision::default(), Precision::Float);
    }
}
