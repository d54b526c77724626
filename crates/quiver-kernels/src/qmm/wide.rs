//! Wide integer products for exact search in batches: many queries, quantized to 16 bits,
//! against rows stored as 8-bit codes.
//!
//! Exact search reads its rows' int8 codes first and scores in full only the rows a proven
//! bound cannot rule out (`quiver`'s `state/prefilter.rs`). For one query that pass is a
//! float-times-byte dot product; for a batch it is this matrix product, in integers:
//!
//! ```text
//! acc[q][j] = sum_k w[q][k] * c[j][k]      w: i16 (|w| <= query_max(kp)),  c: i8 (code - 128)
//! ```
//!
//! Queries keep 15 bits or so: their rounding adds little to a row's bound, while a 7-bit
//! query (what `vpmaddubsw` would need) would add about twice the codes' own error (estimated
//! from the bound's terms on 384-d unit vectors, not measured), and every row whose bound grows
//! past the floor is one more to score in full. `vpmaddwd` multiplies 16 pairs of 16-bit values
//! and adds them in pairs into 32 bits, as many products per instruction as `vpmaddubsw` +
//! `vpmaddwd` give on bytes, and exactly: every sum here fits an `i32` (`query_max` sees to it),
//! so every path equals the scalar twin bit for bit.
//!
//! Rows are packed a tile at a time into panels of 16 rows x 2 consecutive `k` (the lanes of
//! `vpmaddwd`); a micro-kernel computes 4 queries x 16 rows, broadcasting each query's pair.

/// Rows per packed panel.
pub const PANEL_ROWS: usize = 16;
/// Consecutive `k` values per 32-bit lane.
const KG: usize = 2;
/// Queries per micro-kernel call.
const MR: usize = 4;

/// `k` rounded up to a whole number of lanes (padding is zero on both sides).
pub fn padded(k: usize) -> usize {
    k.max(1).div_ceil(KG) * KG
}

/// The largest query code for `kp` dimensions: every sum of `kp` products of a code of at most
/// 128 in magnitude stays inside an `i32`.
pub fn query_max(kp: usize) -> i32 {
    (i32::MAX as i64 / (128 * kp.max(1) as i64)).min(i16::MAX as i64) as i32
}

/// Rows packed for [`WidePath::panels`]: `ceil(n / 16)` panels of `kp / 2` groups of 16 rows
/// x 2 codes, as `i16` (rows past `n` are zero). The buffer is reused tile after tile.
#[derive(Default)]
pub struct PackedRows {
    kp: usize,
    n: usize,
    data: Vec<i16>,
}

impl PackedRows {
    /// Packs `n` rows of `k` unsigned codes (`codes` row-major), each centred to `code - 128`.
    pub fn pack(&mut self, codes: &[u8], k: usize, n: usize) {
        assert!(codes.len() >= n * k, "PackedRows::pack: too few codes");
        let kp = padded(k);
        let panels = n.div_ceil(PANEL_ROWS);
        self.kp = kp;
        self.n = n;
        self.data.clear();
        self.data.resize(panels * kp * PANEL_ROWS, 0);
        for j in 0..n {
            let (p, c) = (j / PANEL_ROWS, j % PANEL_ROWS);
            let base = p * kp * PANEL_ROWS + c * KG;
            for (kk, &code) in codes[j * k..(j + 1) * k].iter().enumerate() {
                let (g, t) = (kk / KG, kk % KG);
                self.data[base + g * PANEL_ROWS * KG + t] = code as i16 - 128;
            }
        }
    }

    /// Rows packed.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Panels packed.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(PANEL_ROWS)
    }

    fn panel(&self, p: usize) -> &[i16] {
        &self.data[p * self.kp * PANEL_ROWS..(p + 1) * self.kp * PANEL_ROWS]
    }
}

/// A way to compute the sums of a panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WidePath {
    Scalar,
    Avx2,
}

impl WidePath {
    /// Every path this CPU can run, the scalar twin first.
    pub fn available() -> Vec<WidePath> {
        let mut out = vec![WidePath::Scalar];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            out.push(WidePath::Avx2);
        }
        out
    }

    /// The fastest path of this CPU.
    pub fn best() -> WidePath {
        *WidePath::available().last().expect("scalar is always available")
    }

    /// `acc[i * 16 + j] = sum_k queries[i][k] * row j of panel p`, for the `mq` queries of
    /// `queries` (row-major, `kp` codes each, `|w| <= query_max(kp)`): the sums of panel `p` of
    /// `rows` with every query.
    pub fn panels(self, rows: &PackedRows, p: usize, queries: &[i16], mq: usize, acc: &mut [i32]) {
        let kp = rows.kp;
        assert!(queries.len() >= mq * kp && acc.len() >= mq * PANEL_ROWS && p < rows.panels());
        let panel = rows.panel(p);
        match self {
            #[cfg(target_arch = "x86_64")]
            WidePath::Avx2 if std::arch::is_x86_feature_detected!("avx2") => {
                let mut i = 0;
                // SAFETY: AVX2 was just detected; the shapes were asserted above.
                unsafe {
                    while mq - i >= MR {
                        x86::rows::<MR>(panel, queries, i, kp, acc);
                        i += MR;
                    }
                    while i < mq {
                        x86::rows::<1>(panel, queries, i, kp, acc);
                        i += 1;
                    }
                }
            }
            _ => panel_scalar(panel, queries, mq, kp, acc),
        }
    }
}

/// The scalar twin: the oracle of the SIMD path.
fn panel_scalar(panel: &[i16], queries: &[i16], mq: usize, kp: usize, acc: &mut [i32]) {
    for i in 0..mq {
        let q = &queries[i * kp..(i + 1) * kp];
        let out = &mut acc[i * PANEL_ROWS..(i + 1) * PANEL_ROWS];
        out.fill(0);
        for (g, group) in panel.chunks_exact(PANEL_ROWS * KG).enumerate() {
            for (j, o) in out.iter_mut().enumerate() {
                for t in 0..KG {
                    *o += q[g * KG + t] as i32 * group[j * KG + t] as i32;
                }
            }
        }
    }
}

/// What a screen needs of one query: a row's upper bound is
/// `a * sum + norm * residual + rounding * code_norm + offset`, plus terms the same for every
/// row, which the caller folds into `cut`.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryTerms {
    pub a: f32,
    pub norm: f32,
    pub rounding: f32,
    /// A row may pass when its bound, less the query's constant terms, reaches this.
    pub cut: f32,
}

/// What a screen needs of the 16 rows of a panel (rows that must not pass have an offset of
/// `-inf`).
#[derive(Clone, Copy, Debug)]
pub struct PanelTerms {
    pub residual: [f32; PANEL_ROWS],
    pub code_norm: [f32; PANEL_ROWS],
    pub offset: [f32; PANEL_ROWS],
}

impl WidePath {
    /// For each of the `mq` queries (their sums in `acc`, 16 each), the rows of the panel
    /// whose bound reaches the query's cut, as bit `j` of `passed[i]`. Every path computes each
    /// bound with the same fused multiply-adds in the same order, so they agree bit for bit.
    pub fn screen(self, acc: &[i32], queries: &[QueryTerms], rows: &PanelTerms, passed: &mut [u16]) {
        let mq = queries.len();
        assert!(acc.len() >= mq * PANEL_ROWS && passed.len() >= mq);
        match self {
            #[cfg(target_arch = "x86_64")]
            WidePath::Avx2 if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") => {
                // SAFETY: AVX2 and FMA were just detected; the shapes were asserted above.
                unsafe { x86::screen(acc, queries, rows, passed) }
            }
            _ => screen_scalar(acc, queries, rows, passed),
        }
    }
}

/// One row's bound, as every path computes it.
#[inline(always)]
pub fn bound(sum: i32, q: &QueryTerms, residual: f32, code_norm: f32, offset: f32) -> f32 {
    let b = q.a.mul_add(sum as f32, offset);
    let b = q.norm.mul_add(residual, b);
    q.rounding.mul_add(code_norm, b)
}

fn screen_scalar(acc: &[i32], queries: &[QueryTerms], rows: &PanelTerms, passed: &mut [u16]) {
    for (i, q) in queries.iter().enumerate() {
        let mut bits = 0u16;
        for j in 0..PANEL_ROWS {
            let b = bound(acc[i * PANEL_ROWS + j], q, rows.residual[j], rows.code_norm[j], rows.offset[j]);
            if b >= q.cut {
                bits |= 1 << j;
            }
        }
        passed[i] = bits;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{KG, PANEL_ROWS};
    use std::arch::x86_64::*;

    /// The sums of `R` queries from `q0` against one panel, two registers of 8 rows each.
    ///
    /// # Safety
    /// The CPU has AVX2; `panel` holds `kp / 2` groups of 32 codes, `queries` holds rows
    /// `q0..q0 + R` of `kp` codes and `acc` 16 sums for each of them.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows<const R: usize>(panel: &[i16], queries: &[i16], q0: usize, kp: usize, acc: &mut [i32]) {
        debug_assert!(panel.len() >= kp * PANEL_ROWS && queries.len() >= (q0 + R) * kp && acc.len() >= (q0 + R) * PANEL_ROWS);
        let mut c0 = [_mm256_setzero_si256(); R];
        let mut c1 = [_mm256_setzero_si256(); R];
        for g in 0..kp / KG {
            // SAFETY: group `g` of the panel is in bounds (see the contract).
            let (p0, p1) = unsafe {
                let p = panel.as_ptr().add(g * PANEL_ROWS * KG) as *const __m256i;
                (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
            };
            for i in 0..R {
                // SAFETY: the pair `g` of query `q0 + i` is in bounds (see the contract).
                let pair = unsafe { (queries.as_ptr().add((q0 + i) * kp + g * KG) as *const i32).read_unaligned() };
                let b = _mm256_set1_epi32(pair);
                c0[i] = _mm256_add_epi32(c0[i], _mm256_madd_epi16(b, p0));
                c1[i] = _mm256_add_epi32(c1[i], _mm256_madd_epi16(b, p1));
            }
        }
        for i in 0..R {
            // SAFETY: 16 sums per query in `acc` (see the contract).
            unsafe {
                let o = acc.as_mut_ptr().add((q0 + i) * PANEL_ROWS) as *mut __m256i;
                _mm256_storeu_si256(o, c0[i]);
                _mm256_storeu_si256(o.add(1), c1[i]);
            }
        }
    }

    /// [`super::screen_scalar`] eight rows at a time.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `acc` holds 16 sums per query.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn screen(acc: &[i32], queries: &[super::QueryTerms], rows: &super::PanelTerms, passed: &mut [u16]) {
        debug_assert!(acc.len() >= queries.len() * PANEL_ROWS && passed.len() >= queries.len());
        // SAFETY: each array holds 16 floats, two loads of 8.
        let (r0, r1, n0, n1, o0, o1) = unsafe {
            (
                _mm256_loadu_ps(rows.residual.as_ptr()),
                _mm256_loadu_ps(rows.residual.as_ptr().add(8)),
                _mm256_loadu_ps(rows.code_norm.as_ptr()),
                _mm256_loadu_ps(rows.code_norm.as_ptr().add(8)),
                _mm256_loadu_ps(rows.offset.as_ptr()),
                _mm256_loadu_ps(rows.offset.as_ptr().add(8)),
            )
        };
        for (i, q) in queries.iter().enumerate() {
            // SAFETY: 16 sums of query `i` (see the contract).
            let (s0, s1) = unsafe {
                let p = acc.as_ptr().add(i * PANEL_ROWS) as *const __m256i;
                (
                    _mm256_cvtepi32_ps(_mm256_loadu_si256(p)),
                    _mm256_cvtepi32_ps(_mm256_loadu_si256(p.add(1))),
                )
            };
            let (a, norm, rounding, cut) = (
                _mm256_set1_ps(q.a),
                _mm256_set1_ps(q.norm),
                _mm256_set1_ps(q.rounding),
                _mm256_set1_ps(q.cut),
            );
            let b0 = _mm256_fmadd_ps(rounding, n0, _mm256_fmadd_ps(norm, r0, _mm256_fmadd_ps(a, s0, o0)));
            let b1 = _mm256_fmadd_ps(rounding, n1, _mm256_fmadd_ps(norm, r1, _mm256_fmadd_ps(a, s1, o1)));
            let m0 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(b0, cut)) as u16;
            let m1 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(b1, cut)) as u16;
            passed[i] = m0 | m1 << 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every path gives the scalar twin's sums, bit for bit, over awkward shapes (odd `k`, a
    /// partial last panel, query counts that are not a multiple of the micro-kernel's) and at
    /// the extremes of both codes (the largest sums an `i32` must hold).
    #[test]
    fn every_path_equals_the_scalar_twin() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        for &(k, n, mq) in &[(1, 1, 1), (3, 17, 5), (50, 33, 4), (384, 40, 9), (1023, 16, 3), (1536, 20, 6)] {
            let kp = padded(k);
            let max = query_max(kp);
            for extreme in [false, true] {
                let codes: Vec<u8> = (0..n * k).map(|_| if extreme { 0 } else { rng.gen() }).collect();
                let mut queries = vec![0i16; mq * kp];
                for q in queries.chunks_mut(kp) {
                    for v in &mut q[..k] {
                        *v = if extreme { -max as i16 } else { rng.gen_range(-max..=max) as i16 };
                    }
                }
                let mut rows = PackedRows::default();
                rows.pack(&codes, k, n);
                assert_eq!((rows.rows(), rows.panels()), (n, n.div_ceil(PANEL_ROWS)));
                for p in 0..rows.panels() {
                    let mut want = vec![0i32; mq * PANEL_ROWS];
                    panel_scalar(rows.panel(p), &queries, mq, kp, &mut want);
                    // The scalar twin against plain arithmetic on the unpacked codes.
                    for i in 0..mq {
                        for j in 0..PANEL_ROWS {
                            let r = p * PANEL_ROWS + j;
                            let direct: i64 = if r < n {
                                (0..k)
                                    .map(|kk| queries[i * kp + kk] as i64 * (codes[r * k + kk] as i64 - 128))
                                    .sum()
                            } else {
                                0
                            };
                            assert_eq!(want[i * PANEL_ROWS + j] as i64, direct, "k {k} row {r} query {i}");
                        }
                    }
                    for path in WidePath::available() {
                        let mut got = vec![-1i32; mq * PANEL_ROWS];
                        path.panels(&rows, p, &queries, mq, &mut got);
                        assert_eq!(got, want, "{path:?} k {k} n {n} mq {mq} panel {p}");
                    }
                }
            }
        }
    }

    /// The screen of every path passes the same rows as its scalar twin, bit for bit, around
    /// the cut and with rows that must never pass.
    #[test]
    fn every_screen_equals_the_scalar_twin() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
        for round in 0..200 {
            let mq = 1 + round % 7;
            let acc: Vec<i32> = (0..mq * PANEL_ROWS).map(|_| rng.gen_range(-2_000_000_000..2_000_000_000)).collect();
            let mut rows = PanelTerms {
                residual: [0.0; PANEL_ROWS],
                code_norm: [0.0; PANEL_ROWS],
                offset: [0.0; PANEL_ROWS],
            };
            for j in 0..PANEL_ROWS {
                rows.residual[j] = rng.gen_range(0.0..1.0);
                rows.code_norm[j] = rng.gen_range(0.0..3000.0);
                rows.offset[j] = if rng.gen_ratio(1, 8) {
                    f32::NEG_INFINITY
                } else {
                    rng.gen_range(-2.0..0.0)
                };
            }
            let queries: Vec<QueryTerms> = (0..mq)
                .map(|i| {
                    let mut q = QueryTerms {
                        a: rng.gen_range(1e-10..1e-9),
                        norm: rng.gen_range(0.5..2.0),
                        rounding: rng.gen_range(0.0..1e-5),
                        cut: 0.0,
                    };
                    // The cut at one row's bound exactly: that row passes on every path.
                    let j = rng.gen_range(0..PANEL_ROWS);
                    q.cut = bound(acc[i * PANEL_ROWS + j], &q, rows.residual[j], rows.code_norm[j], rows.offset[j]);
                    if q.cut == f32::NEG_INFINITY {
                        q.cut = 0.0;
                    }
                    q
                })
                .collect();
            let mut want = vec![0u16; mq];
            screen_scalar(&acc, &queries, &rows, &mut want);
            assert!(
                want.iter().any(|&m| m != 0 && m != u16::MAX),
                "round {round}: the cut splits the rows"
            );
            for j in 0..PANEL_ROWS {
                if rows.offset[j] == f32::NEG_INFINITY {
                    assert!(want.iter().all(|m| m >> j & 1 == 0), "a row that must not pass passed");
                }
            }
            for path in WidePath::available() {
                let mut got = vec![0xdead; mq];
                path.screen(&acc, &queries, &rows, &mut got);
                assert_eq!(got, want, "{path:?} round {round}");
            }
        }
    }

    #[test]
    fn query_codes_never_overflow_the_sums() {
        for kp in [2, 384, 512, 514, 1536, 4096] {
            let m = query_max(kp) as i64;
            assert!(m * 128 * kp as i64 <= i32::MAX as i64 && m <= i16::MAX as i64);
        }
        assert_eq!(query_max(384), i16::MAX as i32);
    }
}
