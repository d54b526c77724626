//! The inverted index of one sparse vector space: for each index (term), the rows holding it
//! and their weights, in row order. Derived state like the payload indexes: built from the
//! points as they are applied, rebuilt on open and after compaction.
//!
//! A search is exact: its answer equals scoring every point with a sparse dot product (tested
//! against that brute force). It accumulates term at a time, the terms with the largest
//! possible contribution first (MaxScore): once the k-th best score so far reaches what the
//! unprocessed terms could still add at most, no point outside the current candidates can
//! enter the top k, and the remaining terms only update those candidates that could still
//! make it, by binary search in their posting lists instead of a full pass.
//!
//! Deleted rows stay in the posting lists until the next compaction (`allowed` hides them);
//! document frequencies count live points only, so IDF is always that of the live collection.

use crate::vector_model::{idf, SparseVector};
use quiver_storage::codec::{DecodeError, Decoder, Encoder};
use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Debug, Default)]
struct Posting {
    rows: Vec<u32>,
    values: Vec<f32>,
    max: f32,
    min: f32,
    /// Live points holding this index.
    df: u32,
}

/// One sparse space's posting lists.
#[derive(Debug, Default)]
pub struct SparseIndex {
    postings: HashMap<u32, Posting>,
    /// Live points holding a vector of this space.
    docs: usize,
}

/// What a search did, for `explain` and the benchmark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseStats {
    /// Posting entries read in full passes.
    pub scanned: usize,
    /// Terms answered by lookups for surviving candidates only.
    pub pruned_terms: usize,
    /// The indices read in full, in the order they were read.
    pub full: Vec<u32>,
    /// Candidates left for the lookups (0 when every term was read in full).
    pub candidates: usize,
}

thread_local! {
    /// Per-thread accumulator (one float per row) and the rows it touched.
    static SCRATCH: RefCell<(Vec<f32>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl SparseIndex {
    /// Adds a row (rows arrive in increasing order).
    pub fn insert(&mut self, row: u32, v: &SparseVector) {
        for (&i, &x) in v.indices.iter().zip(&v.values) {
            let p = self.postings.entry(i).or_insert_with(|| Posting {
                max: f32::NEG_INFINITY,
                min: f32::INFINITY,
                ..Posting::default()
            });
            debug_assert!(p.rows.last().is_none_or(|&r| r < row), "rows are appended in order");
            p.rows.push(row);
            p.values.push(x);
            p.max = p.max.max(x);
            p.min = p.min.min(x);
            p.df += 1;
        }
        self.docs += 1;
    }

    /// Forgets a live point's vector for the frequencies (its entries stay until compaction).
    pub fn remove(&mut self, v: &SparseVector) {
        for i in &v.indices {
            if let Some(p) = self.postings.get_mut(i) {
                p.df = p.df.saturating_sub(1);
            }
        }
        self.docs = self.docs.saturating_sub(1);
    }

    /// Live points holding a vector of this space.
    pub fn docs(&self) -> usize {
        self.docs
    }

    /// The live points holding `index`, and the entries of its posting list (dead rows
    /// included until compaction).
    pub fn term(&self, index: u32) -> (usize, usize) {
        self.postings.get(&index).map_or((0, 0), |p| (p.df as usize, p.rows.len()))
    }

    /// The weight each query index gets: its value, times its IDF when `use_idf`.
    pub fn query_weights(&self, query: &SparseVector, use_idf: bool) -> Vec<(u32, f32)> {
        query
            .indices
            .iter()
            .zip(&query.values)
            .map(|(&i, &w)| {
                let df = self.postings.get(&i).map_or(0, |p| p.df as usize);
                (i, if use_idf { w * idf(self.docs, df) } else { w })
            })
            .collect()
    }

    /// The `k` best rows by dot product with the weighted query, among rows `allowed` accepts
    /// (ties broken by the lower row). Rows scoring nothing (holding none of the query's
    /// indices) are never returned, as in Qdrant.
    pub fn search(&self, weights: &[(u32, f32)], k: usize, n_rows: usize, allowed: impl Fn(u32) -> bool) -> (Vec<(u32, f32)>, SparseStats) {
        let mut stats = SparseStats::default();
        if k == 0 {
            return (Vec::new(), stats);
        }
        // (weight, posting, the most this term can add to one row's score, index)
        let mut terms: Vec<(f32, &Posting, f32, u32)> = weights
            .iter()
            .filter_map(|&(i, w)| {
                let p = self.postings.get(&i)?;
                (w != 0.0 && !p.rows.is_empty()).then(|| (w, p, (w * p.max).max(w * p.min).max(0.0), i))
            })
            .collect();
        terms.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.1.rows.len().cmp(&b.1.rows.len())));
        let mut rest: Vec<f32> = vec![0.0; terms.len() + 1];
        for t in (0..terms.len()).rev() {
            rest[t] = rest[t + 1] + terms[t].2;
        }
        SCRATCH.with(|s| {
            let (acc, touched) = &mut *s.borrow_mut();
            if acc.len() < n_rows {
                acc.resize(n_rows, f32::NAN);
            }
            let mut t = 0;
            let mut threshold = f32::NEG_INFINITY;
            while t < terms.len() {
                let (w, p, _, index) = terms[t];
                stats.full.push(index);
                for (&r, &x) in p.rows.iter().zip(&p.values) {
                    let a = &mut acc[r as usize];
                    if a.is_nan() {
                        *a = 0.0;
                        touched.push(r);
                    }
                    *a += w * x;
                }
                stats.scanned += p.rows.len();
                t += 1;
                // Enough allowed candidates whose k-th score beats all that is left: stop.
                if t < terms.len() && rest[t] < f32::INFINITY {
                    threshold = kth_best(acc, touched, k, &allowed);
                    if threshold > rest[t] {
                        break;
                    }
                }
            }
            let mut candidates: Vec<(u32, f32)> = touched
                .iter()
                .filter(|&&r| allowed(r))
                .map(|&r| (r, acc[r as usize]))
                .filter(|&(_, score)| t == terms.len() || score + rest[t] >= threshold)
                .collect();
            for &r in touched.iter() {
                acc[r as usize] = f32::NAN;
            }
            touched.clear();
            if t < terms.len() {
                stats.candidates = candidates.len();
                candidates.sort_unstable_by_key(|c| c.0);
                for &(w, p, _, _) in &terms[t..] {
                    stats.pruned_terms += 1;
                    let mut from = 0;
                    for c in candidates.iter_mut() {
                        // Candidates ascend by row: each lookup starts where the last stopped.
                        let i = from + p.rows[from..].partition_point(|&r| r < c.0);
                        if i < p.rows.len() && p.rows[i] == c.0 {
                            c.1 += w * p.values[i];
                        }
                        from = i;
                    }
                }
            }
            candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            candidates.truncate(k);
            (candidates, stats)
        })
    }
}

/// The k-th best accumulated score among allowed touched rows (−inf when there are fewer).
fn kth_best(acc: &[f32], touched: &[u32], k: usize, allowed: &impl Fn(u32) -> bool) -> f32 {
    if touched.len() < k {
        return f32::NEG_INFINITY;
    }
    let mut scores: Vec<f32> = touched.iter().filter(|&&r| allowed(r)).map(|&r| acc[r as usize]).collect();
    if scores.len() < k {
        return f32::NEG_INFINITY;
    }
    let (_, kth, _) = scores.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    *kth
}

impl SparseIndex {
    /// The index as bytes, for the sidecar of a base segment: postings in index order (the
    /// same index makes the same bytes), little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u64(self.docs as u64);
        let mut keys: Vec<u32> = self.postings.keys().copied().collect();
        keys.sort_unstable();
        e.u64(keys.len() as u64);
        for k in keys {
            let p = &self.postings[&k];
            e.u32(k);
            e.u32(p.df);
            e.u32(p.max.to_bits());
            e.u32(p.min.to_bits());
            e.u64(p.rows.len() as u64);
            for (&r, &v) in p.rows.iter().zip(&p.values) {
                e.u32(r);
                e.u32(v.to_bits());
            }
        }
        e.buf
    }

    /// An index from [`SparseIndex::encode`]'s bytes over `rows` rows, checked: rows ascending
    /// within each list and below `rows`, counts within the bytes.
    pub fn decode(bytes: &[u8], rows: usize) -> Result<SparseIndex, DecodeError> {
        let mut d = Decoder::new(bytes);
        let docs = d.u64()? as usize;
        let n = d.u64()? as usize;
        if n > d.remaining() / 24 {
            return Err(d.error(format!("{n} posting lists cannot fit")));
        }
        let mut postings = HashMap::with_capacity(n);
        for _ in 0..n {
            let (index, df) = (d.u32()?, d.u32()?);
            let (max, min) = (f32::from_bits(d.u32()?), f32::from_bits(d.u32()?));
            let len = d.u64()? as usize;
            if len > d.remaining() / 8 {
                return Err(d.error(format!("a posting list of {len} entries cannot fit")));
            }
            let mut p = Posting {
                rows: Vec::with_capacity(len),
                values: Vec::with_capacity(len),
                max,
                min,
                df,
            };
            for _ in 0..len {
                let (r, v) = (d.u32()?, f32::from_bits(d.u32()?));
                if r as usize >= rows || p.rows.last().is_some_and(|&last| last >= r) {
                    return Err(d.error(format!("posting list of index {index}: row {r} is out of order or range")));
                }
                p.rows.push(r);
                p.values.push(v);
            }
            if postings.insert(index, p).is_some() {
                return Err(d.error(format!("index {index} is listed twice")));
            }
        }
        d.finish()?;
        Ok(SparseIndex { postings, docs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn zipf_vector(rng: &mut StdRng, vocab: u32, len: usize) -> SparseVector {
        let mut m = std::collections::BTreeMap::new();
        for _ in 0..len {
            // Term i with probability about 1/i: a few very common terms, a long tail.
            let u: f64 = rng.gen_range(0.0..1.0);
            let term = ((vocab as f64).powf(u) as u32).min(vocab - 1);
            *m.entry(term).or_insert(0.0f32) += 1.0;
        }
        SparseVector {
            indices: m.keys().copied().collect(),
            values: m.values().copied().collect(),
        }
    }

    fn brute(docs: &[Option<SparseVector>], w: &[(u32, f32)], k: usize, allowed: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let q = SparseVector {
            indices: w.iter().map(|x| x.0).collect(),
            values: w.iter().map(|x| x.1).collect(),
        };
        let mut all: Vec<(u32, f32)> = docs
            .iter()
            .enumerate()
            .filter_map(|(r, d)| {
                let d = d.as_ref()?;
                let touches = d.indices.iter().any(|i| q.indices.contains(i));
                (touches && allowed(r as u32)).then(|| (r as u32, d.dot(&q)))
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    /// Every pruning path (full passes only, early stop, filters, deletions, IDF, negative
    /// weights) against the brute-force dot product: the same rows, scores within rounding.
    #[test]
    fn search_equals_brute_force() {
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..40 {
            let n = rng.gen_range(1..3000);
            let vocab = rng.gen_range(5..2000);
            let mut idx = SparseIndex::default();
            let mut docs = Vec::new();
            for r in 0..n {
                if rng.gen_range(0..10) == 0 {
                    docs.push(None);
                    continue;
                }
                let len = rng.gen_range(1..40);
                let mut v = zipf_vector(&mut rng, vocab, len);
                if round % 4 == 3 {
                    for x in &mut v.values {
                        *x *= rng.gen_range(-1.0..1.0);
                    }
                }
                idx.insert(r as u32, &v);
                docs.push(Some(v));
            }
            let dead: Vec<bool> = (0..n).map(|_| rng.gen_range(0..8) == 0).collect();
            for (r, d) in docs.iter_mut().enumerate() {
                if dead[r] {
                    if let Some(v) = d.take() {
                        idx.remove(&v);
                    }
                }
            }
            // Half the rounds search the index as a sidecar gives it back.
            let bytes = idx.encode();
            let back = SparseIndex::decode(&bytes, n).unwrap();
            assert_eq!(back.encode(), bytes, "round {round}");
            assert!(SparseIndex::decode(&bytes, 0).is_err() || idx.postings.is_empty());
            for cut in [1, bytes.len() / 2, bytes.len() - 1] {
                assert!(SparseIndex::decode(&bytes[..cut], n).is_err(), "round {round}: truncated at {cut}");
            }
            if round % 2 == 0 {
                idx = back;
            }
            let every_third = round % 2 == 1;
            let allowed = |r: u32| !dead[r as usize] && (!every_third || r.is_multiple_of(3));
            for _ in 0..10 {
                let len = rng.gen_range(1..8);
                let q = zipf_vector(&mut rng, vocab, len);
                let w = idx.query_weights(&q, round % 3 == 0);
                let k = rng.gen_range(1..30);
                let (got, _) = idx.search(&w, k, n, allowed);
                let want = brute(&docs, &w, k, allowed);
                assert_eq!(got.len(), want.len(), "round {round}");
                for (g, w) in got.iter().zip(&want) {
                    assert!((g.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0), "round {round}: {got:?} vs {want:?}");
                }
                // Rows may differ only among equal scores.
                let got_rows: std::collections::BTreeSet<u32> =
                    got.iter().filter(|g| g.1 > want.last().unwrap().1 + 1e-3).map(|g| g.0).collect();
                let want_rows: std::collections::BTreeSet<u32> =
                    want.iter().filter(|g| g.1 > want.last().unwrap().1 + 1e-3).map(|g| g.0).collect();
                assert_eq!(got_rows, want_rows, "round {round}");
            }
        }
    }

    /// A rare term with a high weight beside very common terms: the common terms are pruned,
    /// and the answer is still exact.
    #[test]
    fn common_terms_are_pruned() {
        let mut idx = SparseIndex::default();
        let mut docs = Vec::new();
        for r in 0..5000u32 {
            let mut v = SparseVector {
                indices: vec![0, 1],
                values: vec![1.0, 1.0],
            };
            if r % 1000 == 7 {
                v.indices.push(99);
                v.values.push(1.0);
            }
            idx.insert(r, &v);
            docs.push(Some(v));
        }
        let q = SparseVector {
            indices: vec![0, 1, 99],
            values: vec![1.0, 1.0, 1.0],
        };
        let w = idx.query_weights(&q, true);
        let (got, stats) = idx.search(&w, 3, 5000, |_| true);
        let want = brute(&docs, &w, 3, |_| true);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0);
            assert!((g.1 - w.1).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![7, 1007, 2007]);
        assert!(stats.pruned_terms > 0, "{stats:?}");
        assert!(stats.scanned < 10_000, "{stats:?}");
    }
}
