//! The codes' first pass for a batch of queries: one integer matrix product
//! ([`quiver_kernels::qmm::wide`]) instead of one float-times-byte scan per query, with the same
//! proof as a single query's (see the parent module) and one more term in it.
//!
//! A row's approximation is `x^ = m + step * c'` with `m = lo + 128 step` and `c' = c - 128`, so
//! `<q, x^> = <q, m> + <u, c'>` with `u = q * step` (per dimension). The batch quantizes `u` to
//! 16-bit integers `w` with one scale per query, `u ~ s w`, and computes `s <w, c'>` exactly in
//! integers. What that misses, `<u - s w, c'>`, is at most `|u - s w| |c'|` (Cauchy-Schwarz),
//! both norms known: the query's when it is quantized, the row's when its codes are made. A
//! row's score is therefore within
//!
//! ```text
//! factor * (|q| |x - x^| + |u - s w| |c'|) + slack
//! ```
//!
//! of the estimate (`factor` 1 for dot products, 2 for squared distances). With 15-bit query
//! codes the second term is a few hundredths of the first.
//!
//! Loop order, per thread and its share of the queries: a tile of rows is packed (kept in L2),
//! then for each block of queries (also in L2) every panel of 16 rows (in L1) meets every query
//! of the block, and each query's 16 sums are turned at once into bounds and checked against
//! its floor. The rows a query's floor cannot rule out are kept as candidates (pruned as the
//! floor rises, and scored early should many tie) and scored in full at the end.

use super::{ScanCodes, State};
use quiver_kernels::qmm::wide::{self, PackedRows, PanelTerms, QueryTerms, WidePath, PANEL_ROWS};
use quiver_kernels::{ScoreKind, Scored, TopK};
use rayon::prelude::*;

/// Rows per tile: 256 rows of 384 codes are 192 KiB as packed `i16`.
const TILE_BYTES: usize = 192 << 10;
/// Queries per block: their codes stay in L2 beside the tile.
const QUERY_BLOCK: usize = 128;
/// The fewest queries a thread takes.
const SHARE_MIN: usize = 16;
/// Fewer dimensions than this: a batch multiplies floats. (A batch is bound by arithmetic, not
/// by reading rows, so the integer product pays at fewer dimensions than a single scan's codes.)
const BATCH_DIM_MIN: usize = 32;
/// Candidates a query may hold before they are pruned to its floor, or scored.
const CANDIDATES_MAX: usize = 4096;

/// One query, ready for the integer pass. Its estimate of a row's score is
/// `a * sum + b + offset` (the offset is the row's: 0 for dot products, `-|x|^2` for squared
/// distances), within `norm * residual + rounding * code_norm + slack` of the exact score.
struct Query {
    a: f32,
    b: f32,
    /// `|q|` and `|u - s w|`, each times the score's factor.
    norm: f32,
    rounding: f32,
    slack: f32,
}

impl Query {
    /// The screen's terms for a floor at `threshold`: its cut leaves out the constant terms and
    /// one more slack, so the screen passes every row the exact check below would (their
    /// rounding differs by far less than a slack).
    fn terms(&self, threshold: f32) -> QueryTerms {
        QueryTerms {
            a: self.a,
            norm: self.norm,
            rounding: self.rounding,
            cut: threshold - self.b - 2.0 * self.slack,
        }
    }
}

/// What one query keeps while the rows go by.
struct Pending {
    /// Lower bounds of the best rows seen: its threshold is a floor under the k-th best score.
    floor: TopK,
    /// Rows scored in full early (when candidates piled up): a floor too.
    exact: TopK,
    candidates: Vec<(f32, u32)>,
}

impl Pending {
    fn threshold(&self) -> f32 {
        self.floor.threshold().max(self.exact.threshold())
    }

    /// Keeps candidates bounded: drops those the floor rules out, and scores the rest in full
    /// if that is not enough (many near-equal rows).
    fn prune(&mut self, exact: &impl Fn(u32) -> f32) {
        let t = self.threshold();
        self.candidates.retain(|&(upper, _)| upper >= t);
        if self.candidates.len() * 2 >= CANDIDATES_MAX {
            for (_, r) in self.candidates.drain(..) {
                self.exact.push(r, exact(r));
            }
        }
    }

    fn finish(mut self, exact: &impl Fn(u32) -> f32) -> Vec<Scored> {
        let t = self.threshold();
        for &(upper, r) in &self.candidates {
            if upper >= t {
                self.exact.push(r, exact(r));
            }
        }
        self.exact.into_sorted()
    }
}

impl ScanCodes {
    /// Per dimension, the value of the centre code 128 (`lo + 128 step`).
    fn mid(&self) -> Vec<f32> {
        self.lo.iter().zip(&self.step).map(|(l, s)| l + 128.0 * s).collect()
    }

    /// Quantizes `query` for the integer pass into `codes` (`kp` of them).
    /// `mid` is `lo + 128 step`, the rows' value at the centre code.
    fn quantize_query(&self, kind: ScoreKind, query: &[f32], mid: &[f32], max_code: i32, codes: &mut [i16]) -> Query {
        let dim = self.dim;
        let u: Vec<f64> = query.iter().zip(&self.step).map(|(&q, &s)| q as f64 * s as f64).collect();
        let top = u.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let s = if top > 0.0 && top.is_finite() {
            (top / max_code as f64) as f32
        } else {
            1.0
        };
        let mut miss2 = 0.0f64;
        for (d, &ud) in u.iter().enumerate() {
            let w = (ud / s as f64).round().clamp(-max_code as f64, max_code as f64);
            codes[d] = w as i16;
            let m = ud - s as f64 * w;
            miss2 += m * m;
        }
        codes[dim..].fill(0);
        let bias: f32 = query.iter().zip(mid).map(|(q, m)| q * m).sum();
        let q_sq: f32 = query.iter().map(|q| q * q).sum();
        // Every magnitude either score sums, for their rounding errors (as a single query's,
        // plus the estimate's parts).
        let magnitude: f32 = query.iter().zip(&self.max_abs).map(|(q, m)| q.abs() * m).sum::<f32>()
            + query.iter().zip(mid).map(|(q, m)| (q * m).abs()).sum::<f32>()
            + 256.0 * u.iter().map(|v| v.abs()).sum::<f64>() as f32;
        let (factor, magnitude) = match kind {
            ScoreKind::Dot => (1.0f32, magnitude),
            _ => (2.0, 2.0 * magnitude + self.max_sq_norm + q_sq),
        };
        // Rounded up: the margins must hold after f32 rounding.
        let up = 1.0 + 1e-5;
        let (a, b) = match kind {
            ScoreKind::Dot => (s, bias),
            _ => (2.0 * s, 2.0 * bias - q_sq),
        };
        Query {
            a,
            b,
            norm: factor * q_sq.sqrt() * up,
            rounding: factor * (miss2.sqrt() * (1.0 + 1e-6)) as f32 * up,
            slack: 4.0 * (dim as f32 + 16.0) * f32::EPSILON * magnitude,
        }
    }

    /// The `k` best rows below `end` (at most `covered`) that `allowed` (a mask over rows from
    /// 0) lets through, for every query of `queries` (row-major), scored exactly by
    /// `exact(query, row)`.
    pub(super) fn batch_top_k(
        &self,
        kind: ScoreKind,
        queries: &[f32],
        allowed: &[u64],
        end: usize,
        k: usize,
        exact: impl Fn(&[f32], u32) -> f32 + Sync,
    ) -> Vec<Vec<Scored>> {
        debug_assert!(end <= self.covered && matches!(kind, ScoreKind::Dot | ScoreKind::NegL2Squared));
        let dim = self.dim;
        let n_queries = queries.len() / dim;
        let threads = rayon::current_num_threads().max(1);
        let share = n_queries.div_ceil(threads).max(SHARE_MIN);
        let parts: Vec<Vec<Vec<Scored>>> = queries
            .par_chunks(share * dim)
            .map(|part| self.batch_share(kind, part, allowed, end, k, &exact))
            .collect();
        parts.into_iter().flatten().collect()
    }

    fn batch_share(
        &self,
        kind: ScoreKind,
        queries: &[f32],
        allowed: &[u64],
        end: usize,
        k: usize,
        exact: &(impl Fn(&[f32], u32) -> f32 + Sync),
    ) -> Vec<Vec<Scored>> {
        let dim = self.dim;
        let kp = wide::padded(dim);
        let max_code = wide::query_max(kp);
        let n_queries = queries.len() / dim;
        let mut codes = vec![0i16; n_queries * kp];
        let mid = self.mid();
        let prepared: Vec<Query> = queries
            .chunks_exact(dim)
            .zip(codes.chunks_exact_mut(kp))
            .map(|(q, c)| self.quantize_query(kind, q, &mid, max_code, c))
            .collect();
        let mut pending: Vec<Pending> = (0..n_queries)
            .map(|_| Pending {
                floor: TopK::new(k),
                exact: TopK::new(k),
                candidates: Vec::new(),
            })
            .collect();
        let mut terms: Vec<QueryTerms> = prepared.iter().map(|q| q.terms(f32::NEG_INFINITY)).collect();
        let path = WidePath::best();
        let tile_rows = (TILE_BYTES / (kp * 2)).clamp(PANEL_ROWS, 1024) / PANEL_ROWS * PANEL_ROWS;
        let mut packed = PackedRows::default();
        let mut panel_terms: Vec<PanelTerms> = Vec::new();
        let mut acc = vec![0i32; QUERY_BLOCK * PANEL_ROWS];
        let mut passed = vec![0u16; QUERY_BLOCK];
        let l2 = kind == ScoreKind::NegL2Squared;
        let row_allowed = |r: usize| allowed.get(r / 64).is_some_and(|w| w >> (r % 64) & 1 == 1);
        let mut start = 0;
        while start < end {
            let n = tile_rows.min(end - start);
            if !(start..start + n).any(row_allowed) {
                start += n;
                continue;
            }
            packed.pack(&self.codes[start * dim..(start + n) * dim], dim, n);
            panel_terms.clear();
            panel_terms.extend((0..packed.panels()).map(|p| {
                let mut t = PanelTerms {
                    residual: [0.0; PANEL_ROWS],
                    code_norm: [0.0; PANEL_ROWS],
                    offset: [f32::NEG_INFINITY; PANEL_ROWS],
                };
                for j in 0..PANEL_ROWS {
                    let r = start + p * PANEL_ROWS + j;
                    if r < start + n && row_allowed(r) {
                        t.residual[j] = self.residual[r];
                        t.code_norm[j] = self.code_norm[r];
                        t.offset[j] = if l2 { -self.sq_norm[r] } else { 0.0 };
                    }
                }
                t
            }));
            let mut q0 = 0;
            while q0 < n_queries {
                let mq = QUERY_BLOCK.min(n_queries - q0);
                for (p, rows) in panel_terms.iter().enumerate() {
                    path.panels(&packed, p, &codes[q0 * kp..(q0 + mq) * kp], mq, &mut acc);
                    path.screen(&acc, &terms[q0..q0 + mq], rows, &mut passed);
                    for (i, &bits) in passed[..mq].iter().enumerate() {
                        if bits == 0 {
                            continue;
                        }
                        let qi = q0 + i;
                        let (q, st) = (&prepared[qi], &mut pending[qi]);
                        let mut bits = bits;
                        while bits != 0 {
                            let j = bits.trailing_zeros() as usize;
                            bits &= bits - 1;
                            let sum = acc[i * PANEL_ROWS + j];
                            let estimate = q.a.mul_add(sum as f32, rows.offset[j]) + q.b;
                            let margin = q.rounding.mul_add(rows.code_norm[j], q.norm * rows.residual[j]) + q.slack;
                            let upper = estimate + margin;
                            if upper >= st.threshold() {
                                let r = (start + p * PANEL_ROWS + j) as u32;
                                st.candidates.push((upper, r));
                                st.floor.push(r, estimate - margin);
                            }
                        }
                        if st.candidates.len() >= CANDIDATES_MAX {
                            let query = &queries[qi * dim..(qi + 1) * dim];
                            st.prune(&|r| exact(query, r));
                        }
                        terms[qi] = q.terms(st.threshold());
                    }
                }
                q0 += mq;
            }
            start += n;
        }
        pending
            .into_iter()
            .zip(queries.chunks_exact(dim))
            .map(|(st, query)| st.finish(&|r| exact(query, r)))
            .collect()
    }
}

impl State {
    /// The first `split` rows' part of [`State::batch_top_k`] through the codes, where they
    /// pay: `None` to compute the whole batch with float products. `split` is where the rows
    /// the codes do not cover begin.
    pub(in crate::state) fn prefiltered_batch(
        &self,
        kind: ScoreKind,
        queries: &[f32],
        allowed: &[u64],
        k: usize,
    ) -> Option<(Vec<Vec<Scored>>, usize)> {
        let rows = self.n_rows();
        if k == 0 || k * 64 > rows || queries.is_empty() {
            return None;
        }
        let codes = self.scan_codes(kind, rows, BATCH_DIM_MIN)?;
        let split = rows.min(codes.covered);
        if split < super::ROWS_MIN {
            return None;
        }
        let hits = codes.batch_top_k(kind, queries, allowed, split, k, |q, r| kind.score(q, self.vector(r)));
        Some((hits, split))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        tests::{assert_same_answer, oracle, rows},
        DIM_MIN, ROWS_MIN,
    };
    use super::*;
    use crate::store::Op;
    use crate::types::Point;
    use crate::vector_model::VectorSchema;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A batch through the codes answers every query as a full scan of the same rows: the same
    /// scores to float rounding and the same rows but for ties at the k-th score. The data
    /// comes in the orders that hurt codes, plus one where every row is the same (every row
    /// stays a candidate: the pile is scored early), with rows past the codes (scanned in
    /// float) and a filter mask.
    #[test]
    fn batches_answer_as_full_scans() {
        let n = ROWS_MIN * 2 + 321;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        // Odd dimensions: a padded lane. Few (a batch's smallest) and many.
        for (dim, order) in [BATCH_DIM_MIN + 1, DIM_MIN + 3]
            .into_iter()
            .flat_map(|d| (0..5).map(move |o| (d, o)))
        {
            for kind in [ScoreKind::Dot, ScoreKind::NegL2Squared] {
                let mut data = if order == 4 {
                    vec![rows(0, 1, dim, &mut rng)[0].clone(); n]
                } else {
                    rows(order, n, dim, &mut rng)
                };
                let mut st = State::new(dim, &VectorSchema::default());
                let upsert = |st: &mut State, data: &[Vec<f32>], from: usize| {
                    let points: Vec<Point> = data
                        .iter()
                        .enumerate()
                        .map(|(i, v)| Point::new((from + i) as u64, v.clone()))
                        .collect();
                    st.apply(&Op::Upsert(points), false);
                };
                upsert(&mut st, &data, 0);
                // Codes for these rows, then a sixteenth more rows that they do not cover.
                let probe = vec![u64::MAX; n.div_ceil(64)];
                st.batch_top_k(kind, &data[0], &probe, 1);
                assert!(st.scan_codes_bytes() > 0, "the codes were made");
                let extra = rows(order.min(3), n / 16, dim, &mut rng);
                upsert(&mut st, &extra, n);
                data.extend(extra);
                let total = data.len();
                let flat: Vec<f32> = data.concat();
                let all = vec![u64::MAX; total.div_ceil(64)];
                let third: Vec<u64> = (0..total.div_ceil(64))
                    .map(|w| (0..64).filter(|b| (w * 64 + b) % 3 != 1).fold(0u64, |m, b| m | 1 << b))
                    .collect();
                let queries: Vec<f32> = (0..37)
                    .flat_map(|i| {
                        let row = &data[rng.gen_range(0..total)];
                        if i % 4 == 0 {
                            row.clone() // a stored row: ties at the top for duplicates
                        } else {
                            row.iter().map(|x| x + rng.gen_range(-0.1f32..0.1)).collect()
                        }
                    })
                    .collect();
                for k in [1usize, 10, 100, 250] {
                    for mask in [&all, &third] {
                        let got = st.batch_top_k(kind, &queries, mask, k);
                        assert_eq!(got.len(), queries.len() / dim);
                        for (qi, (q, got)) in queries.chunks(dim).zip(&got).enumerate() {
                            let want = oracle(kind, q, &flat, dim, mask, 0..total, k);
                            assert_same_answer(got, &want, &format!("dim {dim} order {order} {kind:?} k {k} query {qi}"));
                            assert!(
                                got.iter().all(|g| mask[g.row as usize / 64] >> (g.row % 64) & 1 == 1),
                                "a masked-out row came back"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The bound is what makes the answers exact: with it shrunk to nothing, the integer pass
    /// alone would miss rows (this checks that the test above can fail).
    #[test]
    fn estimates_alone_are_not_exact() {
        let dim = DIM_MIN;
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let data = rows(1, ROWS_MIN * 2, dim, &mut rng);
        let mut st = State::new(dim, &VectorSchema::default());
        let points: Vec<Point> = data.iter().enumerate().map(|(i, v)| Point::new(i as u64, v.clone())).collect();
        st.apply(&Op::Upsert(points), false);
        let mask = vec![u64::MAX; data.len().div_ceil(64)];
        st.batch_top_k(ScoreKind::Dot, &data[0], &mask, 1);
        let codes = st.scan_codes.lock().clone().unwrap();
        let kp = wide::padded(dim);
        let mut misses = 0;
        for qi in 0..20 {
            let q: Vec<f32> = data[qi * 97].iter().map(|x| x + rng.gen_range(-0.3f32..0.3)).collect();
            let mut w = vec![0i16; kp];
            let prepared = codes.quantize_query(ScoreKind::Dot, &q, &codes.mid(), wide::query_max(kp), &mut w);
            let mut by_estimate = TopK::new(10);
            let mut by_score = TopK::new(10);
            for (r, x) in data.iter().enumerate() {
                let c = &codes.codes[r * dim..(r + 1) * dim];
                let sum: i64 = w.iter().zip(c).map(|(&w, &c)| w as i64 * (c as i64 - 128)).sum();
                by_estimate.push(r as u32, prepared.a * sum as f32 + prepared.b);
                by_score.push(r as u32, ScoreKind::Dot.score_scalar(&q, x));
                // The proof itself: every exact score lies within the margin of its estimate.
                let estimate = prepared.a * sum as f32 + prepared.b;
                let margin = prepared.norm * codes.residual[r] + prepared.rounding * codes.code_norm[r] + prepared.slack;
                assert!(
                    (ScoreKind::Dot.score_scalar(&q, x) - estimate).abs() <= margin,
                    "row {r} outside its bound"
                );
            }
            let a: Vec<u32> = by_estimate.into_sorted().iter().map(|h| h.row).collect();
            let b: Vec<u32> = by_score.into_sorted().iter().map(|h| h.row).collect();
            misses += b.iter().filter(|r| !a.contains(r)).count();
        }
        assert!(
            misses > 0,
            "the estimates alone found every row: the data is too easy to test the bound"
        );
    }
}
