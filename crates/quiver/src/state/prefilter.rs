//! Exact scans that read a quarter of the bytes. A large scan of many dimensions is bound by
//! reading the vectors (50,000 x 384 floats are 77 MB a query); these scans first read int8
//! codes of the rows, which give every row's score within a bound proved per row, and then
//! score in full only the rows whose bound still reaches the k best. The answer is the full
//! scan's answer, not an approximation of it.
//!
//! The codes (`ScanCodes`) hold, per row, one byte per dimension (`x_i ~ lo_i + step_i c_i`,
//! ranges learned per dimension from a sample) and the Euclidean norm of what the code misses,
//! `r = |x - x^|` (clamped values included, so the bound holds for any row). For a query `q`:
//!
//! * dot product: `|<q, x> - <q, x^>| <= |q| r` (Cauchy-Schwarz);
//! * negated squared distance: `-|q - x|^2 = 2<q, x> - |x|^2 - |q|^2` with `|x|^2` stored
//!   exactly per row, so the error is at most `2 |q| r`;
//!
//! plus a margin for float rounding of both the estimate and the exact score (`slack`). The
//! k-th best lower bound `t` is a floor for the k-th best exact score (k rows score at least
//! their lower bounds); a row whose upper bound is below `t` cannot be among the k best. Every
//! other row is scored in full by `ScoreKind::score`, which is the arithmetic a full scan gives
//! that row whatever its neighbours (`Kernels::dot_one` for dot products), so the scores equal a
//! full scan's bit for bit.
//!
//! The codes are built on the first large scan (under the state's read lock, by whichever scan
//! comes first; the others wait for it) and rebuilt when rows were renumbered (the generation
//! changed) or an eighth of the rows came after them. Rows after them are scanned in full.
//! Built only for dot products and Euclidean distance, at least [`DIM_MIN`] dimensions and
//! [`ROWS_MIN`] rows, never while a cold replica's base is still filling (reading every vector
//! would fetch the whole base at once), and not for vectors kept on disk (whose owner chose to
//! spend little memory). They cost a quarter of the vectors' memory.

use super::State;

mod batch;
use quiver_kernels::scan::for_each_allowed;
use quiver_kernels::{Allowed, ScoreKind, Scored, TopK};
use rayon::prelude::*;
use std::sync::Arc;

/// Fewer dimensions than this: a row is a cache line or two and the codes would not pay. From
/// 32 they do once the scan is bound by memory: glove-50 (390,000 x 50), single queries on one
/// thread, went from 90 and 77 to 117 and 109 queries/s (AMD EPYC Zen 3, two runs each, the
/// binaries alternating; `bench/exact_vs_faiss.py` 1.10x -> 1.42x faiss `IndexFlatIP`).
pub const DIM_MIN: usize = 32;
/// Fewer rows than this in a scan: scanned in full.
pub const ROWS_MIN: usize = 8192;
/// Ranges are learned from at most this many rows, spread over all of them.
const TRAIN_ROWS: usize = 20_000;

/// Int8 codes of the rows `0..covered` of one generation of a state, with each row's residual
/// norm and squared norm.
pub(crate) struct ScanCodes {
    generation: u64,
    dim: usize,
    covered: usize,
    lo: Vec<f32>,
    step: Vec<f32>,
    /// Per dimension, the largest `|x_i|` of any covered row (for the rounding margin).
    max_abs: Vec<f32>,
    codes: Vec<u8>,
    residual: Vec<f32>,
    sq_norm: Vec<f32>,
    /// Per row, `|c - 128|` (the centred codes' norm, rounded up), for batches (`batch.rs`).
    code_norm: Vec<f32>,
    /// The largest `|x|^2` of any covered row.
    max_sq_norm: f32,
}

impl std::fmt::Debug for ScanCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanCodes")
            .field("generation", &self.generation)
            .field("covered", &self.covered)
            .field("bytes", &self.memory_bytes())
            .finish()
    }
}

impl ScanCodes {
    /// Codes of `n` rows of `dim` floats, `row(i)` giving row `i`.
    fn build<'a>(generation: u64, dim: usize, n: usize, row: impl Fn(usize) -> &'a [f32] + Sync) -> ScanCodes {
        let take = n.min(TRAIN_ROWS);
        let sample: Vec<f32> = (0..take).flat_map(|i| row(i * n / take).iter().copied()).collect();
        let quiver_index::codes::Int8Params { lo, step } = quiver_index::codes::train_int8(dim, &sample);
        drop(sample);
        let mut codes = vec![0u8; n * dim];
        let mut residual = vec![0.0f32; n];
        let mut sq_norm = vec![0.0f32; n];
        let mut code_norm = vec![0.0f32; n];
        const CHUNK: usize = 1024;
        let max_abs = codes
            .par_chunks_mut(CHUNK * dim)
            .zip(residual.par_chunks_mut(CHUNK))
            .zip(sq_norm.par_chunks_mut(CHUNK))
            .zip(code_norm.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(chunk, (((codes, residual), sq_norm), code_norm))| {
                let mut max_abs = vec![0.0f32; dim];
                for (j, ((code, cn), (res, sq))) in codes
                    .chunks_exact_mut(dim)
                    .zip(code_norm.iter_mut())
                    .zip(residual.iter_mut().zip(sq_norm.iter_mut()))
                    .enumerate()
                {
                    let x = row(chunk * CHUNK + j);
                    let (mut r2, mut n2, mut c2) = (0.0f64, 0.0f64, 0i64);
                    for d in 0..dim {
                        let c = ((x[d] - lo[d]) / step[d]).round().clamp(0.0, 255.0);
                        code[d] = c as u8;
                        let miss = x[d] as f64 - (lo[d] + step[d] * c) as f64;
                        r2 += miss * miss;
                        n2 += x[d] as f64 * x[d] as f64;
                        c2 += (c as i64 - 128) * (c as i64 - 128);
                        max_abs[d] = max_abs[d].max(x[d].abs());
                    }
                    // Rounded up a little: the bound must hold after f32 rounding too.
                    *res = (r2.sqrt() * (1.0 + 1e-6)) as f32;
                    *sq = n2 as f32;
                    *cn = ((c2 as f64).sqrt() * (1.0 + 1e-6)) as f32;
                }
                max_abs
            })
            .reduce(|| vec![0.0f32; dim], |a, b| a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect());
        let max_sq_norm = sq_norm.iter().copied().fold(0.0f32, f32::max);
        ScanCodes {
            generation,
            dim,
            covered: n,
            lo,
            step,
            max_abs,
            codes,
            residual,
            sq_norm,
            code_norm,
            max_sq_norm,
        }
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.codes.len() + (self.residual.len() + self.sq_norm.len() + self.code_norm.len() + 3 * self.dim) * 4
    }

    /// The `k` best rows of `range` (all below `covered`) that `allowed` lets through, scored
    /// exactly by `exact(row)` (see the module's note).
    fn top_k(
        &self,
        kind: ScoreKind,
        query: &[f32],
        allowed: Allowed<'_>,
        range: std::ops::Range<usize>,
        k: usize,
        exact: impl Fn(u32) -> f32,
    ) -> Vec<Scored> {
        debug_assert!(range.end <= self.covered);
        let dim = self.dim;
        let scaled: Vec<f32> = query.iter().zip(&self.step).map(|(q, s)| q * s).collect();
        let bias: f32 = query.iter().zip(&self.lo).map(|(q, l)| q * l).sum();
        let q_sq: f32 = query.iter().map(|q| q * q).sum();
        let q_norm = q_sq.sqrt();
        // A bound on the magnitudes summed by either score, for its rounding error.
        let magnitude: f32 = query.iter().zip(&self.max_abs).map(|(q, m)| q.abs() * m).sum::<f32>() + bias.abs();
        let (factor, magnitude) = match kind {
            ScoreKind::Dot => (1.0f32, magnitude),
            _ => (2.0, 2.0 * magnitude + self.max_sq_norm + q_sq),
        };
        let slack = 4.0 * (dim as f32 + 16.0) * f32::EPSILON * magnitude;
        let dot_u8 = quiver_kernels::quant::QuantKernels::best().dot_u8;
        let mut floor = TopK::new(k);
        let mut candidates: Vec<(f32, u32)> = Vec::new();
        let from = range.start;
        let visit = |r: u32, floor: &mut TopK, candidates: &mut Vec<(f32, u32)>| {
            let r = r as usize + from;
            let a = dot_u8(&scaled, &self.codes[r * dim..(r + 1) * dim]) + bias;
            let estimate = match kind {
                ScoreKind::Dot => a,
                _ => 2.0 * a - self.sq_norm[r] - q_sq,
            };
            let margin = factor * q_norm * self.residual[r] + slack;
            let upper = estimate + margin;
            if upper >= floor.threshold() {
                candidates.push((upper, r as u32));
                floor.push(r as u32, estimate - margin);
            }
        };
        match super::matrix::shift(allowed, range.start, range.end) {
            super::matrix::Shifted::Mask(w) => for_each_allowed(Allowed::Mask(w), range.len(), |r| visit(r, &mut floor, &mut candidates)),
            super::matrix::Shifted::Owned(w) => for_each_allowed(Allowed::Mask(&w), range.len(), |r| visit(r, &mut floor, &mut candidates)),
            super::matrix::Shifted::List(l) => for_each_allowed(Allowed::List(&l), range.len(), |r| visit(r, &mut floor, &mut candidates)),
        }
        let floor = floor.threshold();
        let mut top = TopK::new(k);
        for (upper, r) in candidates {
            if upper >= floor {
                top.push(r, exact(r));
            }
        }
        top.into_sorted()
    }
}

impl State {
    /// The codes for an exact scan of `rows` rows with `kind` (of at least `dim_min`
    /// dimensions), built or rebuilt now if they are missing or stale; `None` where they do not
    /// pay (see the module's note).
    fn scan_codes(&self, kind: ScoreKind, rows: usize, dim_min: usize) -> Option<Arc<ScanCodes>> {
        if kind == ScoreKind::NegL1 || self.dim < dim_min || rows < ROWS_MIN || self.base_filling() || self.vectors_on_disk() {
            return None;
        }
        let mut slot = self.scan_codes.lock();
        let n = self.n_rows();
        let fresh = slot
            .as_ref()
            .is_some_and(|c| c.generation == self.generation && c.covered <= n && (n - c.covered) * 8 <= c.covered);
        if !fresh {
            *slot = None; // the old codes' memory goes before the new is taken
            *slot = Some(Arc::new(ScanCodes::build(self.generation, self.dim, n, |r| self.vector(r as u32))));
        }
        slot.clone()
    }

    /// Bytes held by the exact scans' codes (0 until a large scan made them).
    pub fn scan_codes_bytes(&self) -> usize {
        self.scan_codes.lock().as_ref().map_or(0, |c| c.memory_bytes())
    }

    /// [`State::scan_range`] through the codes where they pay: `None` to scan in full. Rows
    /// past the codes are left to the caller (returned as the range still to scan).
    pub(super) fn prefiltered_scan(
        &self,
        kind: ScoreKind,
        query: &[f32],
        allowed: Allowed<'_>,
        range: std::ops::Range<usize>,
        k: usize,
    ) -> Option<(Vec<Scored>, std::ops::Range<usize>)> {
        // Many results keep many rows above the floor: the codes stop paying.
        if k == 0 || k * 64 > range.len() || !matches!(allowed, Allowed::Mask(_)) {
            return None;
        }
        let codes = self.scan_codes(kind, range.len(), DIM_MIN)?;
        let split = range.end.min(codes.covered).max(range.start);
        if split - range.start < ROWS_MIN {
            return None;
        }
        let hits = codes.top_k(kind, query, allowed, range.start..split, k, |r| kind.score(query, self.vector(r)));
        Some((hits, split..range.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Op;
    use crate::types::Point;
    use crate::vector_model::VectorSchema;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Rows of `dim` floats in the orders that hurt per-dimension codes: clustered, sorted by
    /// one column, drifting, duplicate-heavy, with outliers far outside the trained ranges (their
    /// values clamp), and all-equal columns.
    pub(super) fn rows(order: usize, n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        let centres: Vec<Vec<f32>> = (0..20).map(|_| (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()).collect();
        let dups: Vec<Vec<f32>> = centres.iter().take(5).cloned().collect();
        (0..n)
            .map(|i| {
                let t = i as f32 / n as f32;
                let c = &centres[rng.gen_range(0..centres.len())];
                let mut v: Vec<f32> = c.iter().map(|x| x + rng.gen_range(-0.3f32..0.3)).collect();
                match order {
                    0 => {}
                    1 => v[0] = 10.0 * t,
                    2 => v.iter_mut().enumerate().for_each(|(d, x)| *x += 3.0 * t * (d % 3) as f32),
                    3 if i % 2 == 0 => v = dups[i % dups.len()].clone(),
                    _ => {}
                }
                if i % 997 == 0 {
                    v[i % dim] = 50.0; // an outlier: clamped, its residual carries it
                }
                v[dim - 1] = 0.25; // one column holds a single value
                v
            })
            .collect()
    }

    /// The `k` best rows of `range` that `mask` allows, scored by the scalar oracle.
    pub(super) fn oracle(
        kind: ScoreKind,
        q: &[f32],
        flat: &[f32],
        dim: usize,
        mask: &[u64],
        range: std::ops::Range<usize>,
        k: usize,
    ) -> Vec<Scored> {
        let mut want = TopK::new(k);
        for r in range.filter(|r| mask[r / 64] >> (r % 64) & 1 == 1) {
            want.push(r as u32, kind.score_scalar(q, &flat[r * dim..(r + 1) * dim]));
        }
        want.into_sorted()
    }

    /// `got` answers as `want` does: as many rows, the same scores to float rounding, and every
    /// row clearly above the k-th score (ties at the k-th may differ).
    pub(super) fn assert_same_answer(got: &[Scored], want: &[Scored], context: &str) {
        assert_eq!(got.len(), want.len(), "{context}");
        let Some(kth) = want.last().map(|w| w.score) else { return };
        let tol = 1e-4 * kth.abs().max(1.0);
        for (g, w) in got.iter().zip(want) {
            assert!((g.score - w.score).abs() <= tol, "{context}: {g:?} against {w:?}");
            if (w.score - kth).abs() > tol {
                assert!(got.iter().any(|h| h.row == w.row), "{context}: row {} missing", w.row);
            }
        }
    }

    /// Every prefiltered scan answers as a full scan of the same rows: the same scores (bit for
    /// bit: both score a row with the scan's arithmetic, `ScoreKind::score`) and the same
    /// rows but for ties at the k-th score.
    #[test]
    fn prefiltered_scans_answer_as_full_scans() {
        let dim = DIM_MIN;
        let n = ROWS_MIN * 2 + 321;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for order in 0..4 {
            for kind in [ScoreKind::Dot, ScoreKind::NegL2Squared] {
                let data = rows(order, n, dim, &mut rng);
                let mut st = State::new(dim, &VectorSchema::default());
                let points: Vec<Point> = data.iter().enumerate().map(|(i, v)| Point::new(i as u64, v.clone())).collect();
                st.apply(&Op::Upsert(points), false);
                let flat: Vec<f32> = data.concat();
                // Every third row allowed in one mask (a filter), all in the other.
                let all = vec![u64::MAX; n.div_ceil(64)];
                let third: Vec<u64> = (0..n.div_ceil(64))
                    .map(|w| (0..64).filter(|b| (w * 64 + b) % 3 == 0).fold(0u64, |m, b| m | 1 << b))
                    .collect();
                for (q_no, k) in [(0usize, 1usize), (1, 10), (2, 100)] {
                    let q: Vec<f32> = if q_no == 0 {
                        data[n - 1].clone() // a stored row: a tie at the top for duplicates
                    } else {
                        data[rng.gen_range(0..n)].iter().map(|x| x + rng.gen_range(-0.1f32..0.1)).collect()
                    };
                    for mask in [&all, &third] {
                        let range = 17..n - 5; // not on word boundaries
                        let got = st.scan_range(kind, &q, Allowed::Mask(mask), range.clone(), k);
                        assert!(st.scan_codes_bytes() > 0, "the codes were used");
                        let want = oracle(kind, &q, &flat, dim, mask, range.clone(), k);
                        assert_same_answer(&got, &want, &format!("order {order} {kind:?} k {k}"));
                        for h in &got {
                            let row = &data[h.row as usize];
                            assert_eq!(h.score.to_bits(), kind.score(&q, row).to_bits(), "a full scan's score");
                        }
                    }
                }
            }
        }
    }

    /// Codes follow the rows: rows added after them are scanned in full until an eighth of the
    /// rows are new, then the codes are rebuilt; renumbered rows (a new generation) rebuild them
    /// too. Small scans, few dimensions and Manhattan distance never make codes.
    #[test]
    fn codes_are_rebuilt_when_rows_grow_or_are_renumbered() {
        let dim = DIM_MIN;
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let data = rows(0, ROWS_MIN * 2, dim, &mut rng);
        let mut st = State::new(dim, &VectorSchema::default());
        let upsert = |st: &mut State, from: usize, to: usize| {
            let points: Vec<Point> = (from..to).map(|i| Point::new(i as u64, data[i % data.len()].clone())).collect();
            st.apply(&Op::Upsert(points), false);
        };
        upsert(&mut st, 0, ROWS_MIN - 1);
        let q = data[3].clone();
        let mask = vec![u64::MAX; ROWS_MIN.div_ceil(64) * 4];
        st.scan_top_k(ScoreKind::Dot, &q, Allowed::Mask(&mask), 10);
        assert_eq!(st.scan_codes_bytes(), 0, "too few rows");
        st.scan_top_k(ScoreKind::NegL1, &q, Allowed::Mask(&mask), 10);
        assert_eq!(st.scan_codes_bytes(), 0, "manhattan");
        upsert(&mut st, ROWS_MIN - 1, ROWS_MIN * 2);
        let best = |st: &State| {
            (0..st.n_rows() as u32)
                .map(|r| ScoreKind::Dot.score(&q, st.vector(r)))
                .fold(f32::MIN, f32::max)
        };
        let top = st.scan_top_k(ScoreKind::Dot, &q, Allowed::Mask(&mask), 1);
        let covered = |st: &State| st.scan_codes.lock().as_ref().map(|c| c.covered);
        assert_eq!(covered(&st), Some(ROWS_MIN * 2));
        assert_eq!(top[0].score, best(&st));
        // A sixteenth more: scanned in full beside the codes, which stay.
        upsert(&mut st, ROWS_MIN * 2, ROWS_MIN * 2 + ROWS_MIN / 8);
        let top = st.scan_top_k(ScoreKind::Dot, &q, Allowed::Mask(&mask), 1);
        assert_eq!(covered(&st), Some(ROWS_MIN * 2));
        assert_eq!(top[0].score, best(&st));
        // Past an eighth: rebuilt over every row.
        upsert(&mut st, ROWS_MIN * 2 + ROWS_MIN / 8, ROWS_MIN * 2 + ROWS_MIN / 2);
        st.scan_top_k(ScoreKind::Dot, &q, Allowed::Mask(&mask), 1);
        assert_eq!(covered(&st), Some(ROWS_MIN * 2 + ROWS_MIN / 2));
        // Renumbered: rebuilt for the new generation.
        st.compact_rows();
        st.scan_top_k(ScoreKind::Dot, &q, Allowed::Mask(&mask), 1);
        let c = st.scan_codes.lock().clone().unwrap();
        assert_eq!((c.generation, c.covered), (st.generation(), st.n_rows()));
    }
}
