//! Scans of the matrix, which is two parts: the base segment's rows read in place (when they
//! are) and the rows in `vectors`. A scan splits the allowed rows at the seam, shifting a mask
//! (a slice when the seam is on a word boundary, else a shifted copy) or a list.

use super::State;
use quiver_kernels::{Allowed, ScoreKind, Scored, TopK};

impl State {
    /// The matrix in its parts: `(first row, rows row-major)`, the base map's rows (when
    /// they are read from it) and the rows in `vectors`.
    pub(super) fn matrix_parts(&self) -> impl Iterator<Item = (usize, &[f32])> {
        let base = match self.rows.base() {
            Some(b) if self.vec_from > 0 => &b.vectors()[..self.vec_from * self.dim],
            _ => &[][..],
        };
        [(0, base), (self.vec_from, &self.vectors[..])]
            .into_iter()
            .filter(|(_, m)| !m.is_empty())
    }

    /// The `k` best allowed rows for `query` by an exact scan of every allowed row.
    pub fn scan_top_k(&self, kind: ScoreKind, query: &[f32], allowed: Allowed<'_>, k: usize) -> Vec<Scored> {
        self.scan_range(kind, query, allowed, 0..self.n_rows(), k)
    }

    /// [`State::scan_top_k`] among the rows in `range` only.
    /// A large scan of many dimensions reads int8 codes first and scores in full only the rows
    /// that can still be among the best (`prefilter.rs`); the answer is the same.
    pub fn scan_range(&self, kind: ScoreKind, query: &[f32], allowed: Allowed<'_>, range: std::ops::Range<usize>, k: usize) -> Vec<Scored> {
        let mut top = TopK::new(k);
        let range = match self.prefiltered_scan(kind, query, allowed, range.clone(), k) {
            Some((hits, rest)) => {
                for h in hits {
                    top.push(h.row, h.score);
                }
                rest
            }
            None => range,
        };
        for (first, m) in self.matrix_parts() {
            let end = first + m.len() / self.dim.max(1);
            let (from, to) = (range.start.max(first), range.end.min(end));
            if from >= to {
                continue;
            }
            let part = &m[(from - first) * self.dim..(to - first) * self.dim];
            let mut local = TopK::new(k);
            match shift(allowed, from, to) {
                Shifted::Mask(words) => quiver_kernels::scan::scan_rows(kind, query, part, self.dim, Allowed::Mask(words), &mut local),
                Shifted::Owned(words) => quiver_kernels::scan::scan_rows(kind, query, part, self.dim, Allowed::Mask(&words), &mut local),
                Shifted::List(list) => quiver_kernels::scan::scan_rows(kind, query, part, self.dim, Allowed::List(&list), &mut local),
            }
            for h in local.into_sorted() {
                top.push(h.row + from as u32, h.score);
            }
        }
        top.into_sorted()
    }

    /// [`State::scan_top_k`] for many queries (`dim` floats each) against the rows `allowed`,
    /// by matrix products where they pay.
    pub fn batch_top_k(&self, kind: ScoreKind, queries: &[f32], allowed: &[u64], k: usize) -> Vec<Vec<Scored>> {
        let n_queries = queries.len() / self.dim.max(1);
        let mut tops: Vec<TopK> = (0..n_queries).map(|_| TopK::new(k)).collect();
        // The rows the codes cover go through their integer pass (`prefilter/batch.rs`); the
        // rest through float products.
        let from = match self.prefiltered_batch(kind, queries, allowed, k) {
            Some((hits, split)) => {
                for (top, hits) in tops.iter_mut().zip(hits) {
                    for h in hits {
                        top.push(h.row, h.score);
                    }
                }
                split
            }
            None => 0,
        };
        for (first, m) in self.matrix_parts() {
            let end = first + m.len() / self.dim;
            let lo = from.max(first);
            if lo >= end {
                continue;
            }
            let m = &m[(lo - first) * self.dim..];
            let hits = match shift(Allowed::Mask(allowed), lo, end) {
                Shifted::Mask(words) => quiver_kernels::batch_top_k(kind, queries, m, self.dim, Allowed::Mask(words), k),
                Shifted::Owned(words) => quiver_kernels::batch_top_k(kind, queries, m, self.dim, Allowed::Mask(&words), k),
                Shifted::List(_) => unreachable!("a mask shifts to a mask"),
            };
            for (top, hits) in tops.iter_mut().zip(hits) {
                for h in hits {
                    top.push(h.row + lo as u32, h.score);
                }
            }
        }
        tops.into_iter().map(TopK::into_sorted).collect()
    }
}

/// An `Allowed` for rows `from..to` renumbered from 0: a mask slice when `from` is on a word
/// boundary, else a shifted copy (rows past `to` are cut off by the scan's row count).
pub(super) enum Shifted<'a> {
    Mask(&'a [u64]),
    Owned(Vec<u64>),
    List(Vec<u32>),
}

pub(super) fn shift(allowed: Allowed<'_>, from: usize, to: usize) -> Shifted<'_> {
    match allowed {
        Allowed::Mask(words) if from.is_multiple_of(64) => Shifted::Mask(words.get(from / 64..).unwrap_or(&[])),
        Allowed::Mask(words) => {
            let (w, b) = (from / 64, from % 64);
            let n = (to - from).div_ceil(64);
            let word = |i: usize| words.get(i).copied().unwrap_or(0);
            Shifted::Owned((0..n).map(|i| word(w + i) >> b | word(w + i + 1) << (64 - b)).collect())
        }
        Allowed::List(list) => Shifted::List(
            list.iter()
                .filter(|&&r| (from..to).contains(&(r as usize)))
                .map(|&r| r - from as u32)
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mask or list shifted to rows `from..to` allows exactly the rows it allowed there.
    #[test]
    fn shifted_masks_and_lists_allow_the_same_rows() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let words: Vec<u64> = (0..9)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect();
        let n = words.len() * 64;
        let bit = |r: usize| words[r / 64] >> (r % 64) & 1 == 1;
        let list: Vec<u32> = (0..n as u32).filter(|&r| bit(r as usize)).collect();
        for from in [0, 1, 63, 64, 65, 100, 128, 300, n - 1] {
            for to in [from + 1, (from + 70).min(n), n] {
                let want: Vec<usize> = (from..to).filter(|&r| bit(r)).map(|r| r - from).collect();
                let got = |s: Shifted<'_>| -> Vec<usize> {
                    match s {
                        Shifted::Mask(w) => (0..to - from)
                            .filter(|&r| w.get(r / 64).is_some_and(|w| w >> (r % 64) & 1 == 1))
                            .collect(),
                        Shifted::Owned(w) => (0..to - from)
                            .filter(|&r| w.get(r / 64).is_some_and(|w| w >> (r % 64) & 1 == 1))
                            .collect(),
                        Shifted::List(l) => l.into_iter().map(|r| r as usize).collect(),
                    }
                };
                assert_eq!(got(shift(Allowed::Mask(&words), from, to)), want, "mask {from}..{to}");
                assert_eq!(got(shift(Allowed::List(&list), from, to)), want, "list {from}..{to}");
            }
        }
    }
}
