//! The build copy of a quantized graph in half precision: what new nodes are linked with (see
//! [`crate::Hnsw::resume_build`]). Never saved and never searched by users' queries.
//!
//! Linking reads rows scattered over the whole collection, so a build waits on memory more
//! than it computes; half precision halves the bytes. Each vector is stored as
//! `y = s (x - m)`: `m` the mean of the rows the copy starts from (the data's common offset,
//! which half precision would otherwise spend its bits on) and `s` a power of two that puts
//! the largest `|x - m|` between 256 and 512, far from both the largest half (65,504) and the
//! subnormals. Both are exact to undo, so the only error is the rounding of `y` to 11
//! significant bits: about 2^-12 of each coordinate's distance from the mean, where int8
//! codes have one 255th of the whole range.
//!
//! Scores are those of the decoded vectors `x^ = y / s + m`:
//! * dot: `<q, x^> = <q / s, y> + <q, m>` for a query, and for two nodes
//!   `<y_a, y_b> / s^2 + o_a + o_b + |m|^2` with `o = <y, m> / s` kept per node;
//! * squared distance: `|q - x^|^2 = |s (q - m) - y|^2 / s^2`, and `|y_a - y_b|^2 / s^2`.
//!
//! A later push with a coordinate beyond what the frame can hold (data that moved more than a
//! hundred times its first spread) is refused, and the owner keeps full precision instead.

use quiver_kernels::f16::HalfKernels;
use quiver_kernels::ScoreKind;

/// The largest `|x - m| s` a frame is trained to: 2^9, so that 2^7 times the first spread
/// still fits below the largest half.
const TRAINED_MAX: f32 = 512.0;
/// What a pushed coordinate may reach: below the largest half, 65,504.
const HALF_MAX: f32 = 65_000.0;

#[derive(Clone, Debug)]
pub(crate) struct HalfRows {
    dim: usize,
    kind: ScoreKind,
    mean: Vec<f32>,
    /// `|m|^2`.
    mean_sq: f32,
    /// `s`, a power of two.
    scale: f32,
    /// `1 / s^2`, exact.
    inv_scale_sq: f32,
    rows: Vec<u16>,
    /// Dot: `<y, m> / s` per node (empty for distances).
    offsets: Vec<f32>,
    kernels: HalfKernels,
}

impl HalfRows {
    /// A frame for `rows` (row-major, `dim` columns, at least one row): their mean and the
    /// scale of their spread. `None` when a value is not finite or the spread is beyond what a
    /// power-of-two scale of an `f32` can express.
    pub(crate) fn for_rows(dim: usize, kind: ScoreKind, rows: &[f32]) -> Option<HalfRows> {
        if kind == ScoreKind::NegL1 || rows.is_empty() || !rows.iter().all(|x| x.is_finite()) {
            return None;
        }
        let n = rows.len() / dim;
        let mut sum = vec![0.0f64; dim];
        for row in rows.chunks_exact(dim) {
            for (s, &x) in sum.iter_mut().zip(row) {
                *s += x as f64;
            }
        }
        let mean: Vec<f32> = sum.iter().map(|s| (s / n as f64) as f32).collect();
        let spread = rows
            .chunks_exact(dim)
            .flat_map(|row| row.iter().zip(&mean).map(|(x, m)| (x - m).abs()))
            .fold(0.0f32, f32::max);
        // s = 2^e with spread * s in [256, 512); an all-equal sample keeps s = 1.
        let e = if spread > 0.0 {
            TRAINED_MAX.log2().floor() as i32 - 1 - spread.log2().floor() as i32
        } else {
            0
        };
        // s^2 and 1 / s^2 must be normal floats too.
        if !(-60..=60).contains(&e) {
            return None;
        }
        Some(HalfRows {
            dim,
            kind,
            mean_sq: mean.iter().map(|m| m * m).sum(),
            mean,
            scale: 2.0f32.powi(e),
            inv_scale_sq: 2.0f32.powi(-2 * e),
            rows: Vec::new(),
            offsets: Vec::new(),
            kernels: *HalfKernels::best(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len() / self.dim
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.rows.capacity() * 2 + self.offsets.capacity() * 4 + self.mean.len() * 4
    }

    /// Appends `rows`; false, and nothing is appended, when one of their coordinates does not
    /// fit the frame (or is not finite).
    #[must_use]
    pub(crate) fn push(&mut self, rows: &[f32]) -> bool {
        let fits = rows
            .chunks_exact(self.dim)
            .all(|row| row.iter().zip(&self.mean).all(|(x, m)| ((x - m) * self.scale).abs() <= HALF_MAX));
        if !fits {
            return false;
        }
        self.rows.reserve(rows.len());
        quiver_kernels::quant::advise_huge_spare(&self.rows);
        let mut y = Vec::with_capacity(self.dim);
        for row in rows.chunks_exact(self.dim) {
            y.clear();
            y.extend(row.iter().zip(&self.mean).map(|(x, m)| (x - m) * self.scale));
            let start = self.rows.len();
            (self.kernels.encode)(&y, &mut self.rows);
            if self.kind == ScoreKind::Dot {
                let o = (self.kernels.dot)(&self.mean, &self.rows[start..]) / self.scale;
                self.offsets.push(o);
            }
        }
        true
    }

    /// The same frame with no rows.
    pub(crate) fn emptied(&self) -> HalfRows {
        HalfRows {
            rows: Vec::new(),
            offsets: Vec::new(),
            mean: self.mean.clone(),
            ..*self
        }
    }

    pub(crate) fn row(&self, node: u32) -> &[u16] {
        let n = node as usize;
        &self.rows[n * self.dim..(n + 1) * self.dim]
    }

    /// The query as the kernels take it, and the constant to add (see the module
    /// documentation).
    pub(crate) fn prepare(&self, query: &[f32], f: &mut Vec<f32>) -> f32 {
        f.clear();
        match self.kind {
            ScoreKind::Dot => {
                f.extend(query.iter().map(|q| q / self.scale));
                query.iter().zip(&self.mean).map(|(q, m)| q * m).sum()
            }
            _ => {
                f.extend(query.iter().zip(&self.mean).map(|(q, m)| (q - m) * self.scale));
                0.0
            }
        }
    }

    pub(crate) fn score(&self, f: &[f32], bias: f32, node: u32) -> f32 {
        let row = self.row(node);
        match self.kind {
            ScoreKind::Dot => (self.kernels.dot)(f, row) + bias,
            _ => -(self.kernels.l2_squared)(f, row) * self.inv_scale_sq,
        }
    }

    pub(crate) fn score_nodes(&self, a: u32, b: u32) -> f32 {
        let (ra, rb) = (self.row(a), self.row(b));
        let s2 = self.scale * self.scale;
        match self.kind {
            ScoreKind::Dot => (self.kernels.dot_halves)(ra, rb) / s2 + self.offsets[a as usize] + self.offsets[b as usize] + self.mean_sq,
            _ => -(self.kernels.l2_squared_halves)(ra, rb) / s2,
        }
    }

    /// `x^ = y / s + m`, written into `out`.
    pub(crate) fn decode(&self, node: u32, out: &mut Vec<f32>) {
        out.clear();
        out.extend(
            self.row(node)
                .iter()
                .zip(&self.mean)
                .map(|(&h, m)| quiver_kernels::f16::to_f32(h) / self.scale + m),
        );
    }

    pub(crate) fn permute(&mut self, order: &[u32]) {
        let mut rows = Vec::with_capacity(self.rows.len());
        for &o in order {
            rows.extend_from_slice(self.row(o));
        }
        self.rows = rows;
        if !self.offsets.is_empty() {
            self.offsets = order.iter().map(|&o| self.offsets[o as usize]).collect();
        }
    }

    pub(crate) fn prefetch(&self, node: u32) {
        let n = node as usize;
        if let Some(row) = self.rows.get(n * self.dim..(n + 1) * self.dim) {
            quiver_kernels::quant::prefetch(row)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::codes::{Codes, Prepared, Store};
    use quiver_kernels::ScoreKind;

    /// Rows far from the origin (an offset of 100 in every coordinate, a spread of about 1),
    /// the case half precision without the mean would get wrong (steps of 1/16 at 100).
    fn rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut x = seed;
        (0..n * dim)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                100.0 + ((x >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0
            })
            .collect()
    }

    fn exact(kind: ScoreKind, a: &[f32], b: &[f32]) -> f32 {
        kind.score_scalar(a, b)
    }

    /// Every score of the half-precision copy is within rounding of the exact score, pairs of
    /// nodes as well as queries, for dot and distance; decoding gives the rows back to within
    /// 2^-11 of their distance from the mean.
    #[test]
    fn half_scores_are_the_exact_scores_within_rounding() {
        let dim = 37;
        let data = rows(40, dim, 1);
        for kind in [ScoreKind::Dot, ScoreKind::NegL2Squared] {
            let codes = Codes::build_copy(dim, kind, &data);
            assert!(matches!(codes.store, Store::Half(_)), "{kind:?}");
            assert_eq!(codes.len(), 40);
            let (mut out, mut p) = (Vec::new(), Prepared::default());
            for a in 0..40u32 {
                let ra = &data[a as usize * dim..(a as usize + 1) * dim];
                codes.decode(a, &mut out);
                for (x, y) in ra.iter().zip(&out) {
                    assert!((x - y).abs() <= 1.0 / 1024.0, "{kind:?} decode {x} {y}");
                }
                codes.prepare(ra, &mut p);
                for b in 0..40u32 {
                    let rb = &data[b as usize * dim..(b as usize + 1) * dim];
                    let want = exact(kind, ra, rb);
                    // Dot products of about 370,000 with coordinates off by 2^-11 of 1: a few
                    // units in the sixth digit; distances of about 25, off by about 0.02.
                    let tol = if kind == ScoreKind::Dot { 2.0 } else { 0.05 };
                    let by_query = codes.score(&p, b);
                    let by_nodes = codes.score_nodes(a, b).unwrap();
                    assert!((by_query - want).abs() <= tol, "{kind:?} {a} {b}: {by_query} vs {want}");
                    assert!((by_nodes - want).abs() <= tol, "{kind:?} {a} {b}: {by_nodes} vs {want}");
                }
            }
        }
    }

    /// The copy in half precision ranks as full precision does where full precision tells
    /// neighbours apart: the nearest of 300 rows to each of 50 others is the same.
    #[test]
    fn half_copies_rank_neighbours_as_full_precision() {
        let dim = 64;
        let data = rows(300, dim, 2);
        for kind in [ScoreKind::Dot, ScoreKind::NegL2Squared] {
            let codes = Codes::build_copy(dim, kind, &data);
            let mut p = Prepared::default();
            for a in 0..50usize {
                let ra = &data[a * dim..(a + 1) * dim];
                codes.prepare(ra, &mut p);
                let best = |score: &dyn Fn(usize) -> f32| (50..300).max_by(|&x, &y| score(x).total_cmp(&score(y))).unwrap();
                let want = best(&|b| exact(kind, ra, &data[b * dim..(b + 1) * dim]));
                assert_eq!(best(&|b| codes.score(&p, b as u32)), want, "{kind:?} {a}");
                assert_eq!(best(&|b| codes.score_nodes(a as u32, b as u32).unwrap()), want, "{kind:?} {a}");
            }
        }
    }

    /// A row far beyond the first rows' spread turns the copy into full precision; every row
    /// is still there (the new one exactly), in order. Rows that cannot be framed (Manhattan,
    /// values that are not finite) are kept in full precision from the start.
    #[test]
    fn rows_beyond_the_frame_widen_the_copy() {
        let dim = 8;
        let data = rows(10, dim, 3);
        let mut codes = Codes::build_copy(dim, ScoreKind::Dot, &data);
        let near = vec![101.0f32; dim];
        codes.push(&near);
        assert!(matches!(codes.store, Store::Half(_)));
        let far = vec![1e6f32; dim];
        codes.push(&far);
        assert!(matches!(codes.store, Store::F32(_)));
        assert_eq!(codes.len(), 12);
        let mut out = Vec::new();
        codes.decode(11, &mut out);
        assert_eq!(out, far);
        codes.decode(10, &mut out);
        assert!(out.iter().all(|&x| (x - 101.0).abs() < 1e-3), "{out:?}");
        codes.decode(3, &mut out);
        assert!(out.iter().zip(&data[3 * dim..4 * dim]).all(|(x, y)| (x - y).abs() < 1e-3));

        assert!(matches!(Codes::build_copy(dim, ScoreKind::NegL1, &data).store, Store::F32(_)));
        let mut bad = data.clone();
        bad[5] = f32::INFINITY;
        assert!(matches!(Codes::build_copy(dim, ScoreKind::Dot, &bad).store, Store::F32(_)));
        // A spread too small or too large for a power-of-two scale whose square is a float.
        let tiny: Vec<f32> = data.iter().map(|x| (x - 100.0) * 1e-25).collect();
        assert!(matches!(Codes::build_copy(dim, ScoreKind::Dot, &tiny).store, Store::F32(_)));
        let huge: Vec<f32> = data.iter().map(|x| (x - 100.0) * 1e25).collect();
        assert!(matches!(Codes::build_copy(dim, ScoreKind::Dot, &huge).store, Store::F32(_)));
        let small: Vec<f32> = data.iter().map(|x| (x - 100.0) * 1e-9).collect();
        let c = Codes::build_copy(dim, ScoreKind::NegL2Squared, &small);
        assert!(matches!(c.store, Store::Half(_)));
        let want = ScoreKind::NegL2Squared.score_scalar(&small[..dim], &small[dim..2 * dim]);
        assert!((c.score_nodes(0, 1).unwrap() - want).abs() <= 1e-3 * want.abs(), "{want}");
        // All rows equal: a spread of zero still frames (scale 1).
        let same = vec![3.5f32; dim * 4];
        let c = Codes::build_copy(dim, ScoreKind::NegL2Squared, &same);
        assert!(matches!(c.store, Store::Half(_)));
        assert_eq!(c.score_nodes(0, 3), Some(0.0));
    }

    /// Renumbering moves each node's row and its dot offset together; `matches` recognises a
    /// node's own vector and nothing else.
    #[test]
    fn permute_and_matches_follow_the_nodes() {
        let dim = 16;
        let data = rows(6, dim, 4);
        let mut codes = Codes::build_copy(dim, ScoreKind::Dot, &data);
        let before: Vec<f32> = (0..6).map(|b| codes.score_nodes(0, b).unwrap()).collect();
        let order = [5u32, 4, 3, 2, 1, 0];
        codes.permute(&order);
        for (new, &old) in order.iter().enumerate() {
            assert_eq!(codes.score_nodes(5, new as u32).unwrap(), before[old as usize]);
            assert!(codes.matches(new as u32, &data[old as usize * dim..(old as usize + 1) * dim]));
        }
        assert!(!codes.matches(0, &data[..dim]));
    }
}
