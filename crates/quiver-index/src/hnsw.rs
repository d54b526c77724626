//! Hierarchical navigable small world graphs (Malkov & Yashunin, 2016), over [`Codes`].
//!
//! Layout: node `i`'s level-0 list lives at `links0[i * (m0 + 1)..]` as `count, ids...` with
//! capacity `m0 = 2 m`; upper levels (about one node in `m`) have `m`-capacity lists of the same
//! shape in `upper[i]`. Lists are atomics: writers hold the node's lock and write ids before the
//! count; readers never lock and may see a list mid-rewrite, which can only cost a little
//! accuracy during a concurrent insert, never safety (every id in a list is a node that exists).
//!
//! Growth happens in two steps so that one builder can insert while others search:
//! [`Hnsw::add`] (needs `&mut self`: appends codes, draws levels, allocates lists) and
//! [`Hnsw::link`] (needs `&self`: connects one node; many run in parallel).
//!
//! Node levels come from a hash of (seed, node) so a graph's shape does not depend on thread
//! timing; the neighbour lists do (as in hnswlib), so two parallel builds are equally good but not
//! identical.

use crate::cells::Cells;
use crate::codes::{Codes, Prepared};
use parking_lot::Mutex;
use quiver_kernels::Scored;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Build parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbours kept per node on upper levels (twice that on level 0).
    pub m: usize,
    /// Candidate list size while inserting.
    pub ef_construct: usize,
    /// Seed of the level draws.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construct: 200,
            seed: 0x5157_4956_4552,
        }
    }
}

pub const M_MAX: usize = 128;
pub const LEVEL_MAX: u8 = 24;
const NO_ENTRY: u64 = u64::MAX;

/// An HNSW graph and the codes of its nodes.
pub struct Hnsw {
    pub(crate) params: HnswParams,
    pub(crate) codes: Codes,
    /// Full-precision codes kept while a quantized index is built, so that the graph is as good
    /// as a full-precision one; dropped by [`Hnsw::finish_build`]. Empty until the first
    /// [`Hnsw::add`], whose rows frame its half-precision store ([`Codes::build_copy`]).
    build: Option<Codes>,
    pub(crate) levels: Cells<u8>,
    /// Level-0 lists, `2m + 1` words a node: the count, then the neighbours.
    pub(crate) links0: Cells<AtomicU32>,
    /// The upper lists of the nodes above level 0, in node order: `level * (m + 1)` words a
    /// node (level 1 first).
    pub(crate) upper: Cells<AtomicU32>,
    /// Which nodes are above level 0 and where their lists are in `upper`.
    pub(crate) upper_spans: UpperSpans,
    /// One lock per node, made when nodes are added (an index only searched needs none).
    locks: Vec<Mutex<()>>,
    /// `(level << 32) | node` of the entry point, or `NO_ENTRY`.
    pub(crate) entry: AtomicU64,
    entry_lock: Mutex<()>,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hnsw")
            .field("params", &self.params)
            .field("nodes", &self.len())
            .finish()
    }
}

/// Which nodes have upper lists and where those start in the flat upper column: a bit per
/// node, the count of set bits before each word (a node's rank in two reads, no search), and
/// the start of each such node's lists (one more entry: the end).
#[derive(Clone, Debug)]
pub(crate) struct UpperSpans {
    bits: Vec<u64>,
    rank: Vec<u32>,
    start: Vec<usize>,
    nodes: usize,
}

impl Default for UpperSpans {
    fn default() -> Self {
        UpperSpans {
            bits: Vec::new(),
            rank: Vec::new(),
            start: vec![0],
            nodes: 0,
        }
    }
}

impl UpperSpans {
    /// Appends the next node, with `cells` upper cells (0: a node of level 0).
    pub(crate) fn push(&mut self, cells: usize) {
        let node = self.nodes;
        self.nodes += 1;
        if node.is_multiple_of(64) {
            self.rank.push((self.start.len() - 1) as u32);
            self.bits.push(0);
        }
        if cells > 0 {
            *self.bits.last_mut().expect("pushed above") |= 1 << (node % 64);
            let end = self.total() + cells;
            self.start.push(end);
        }
    }

    /// Nodes counted.
    pub(crate) fn len(&self) -> usize {
        self.nodes
    }

    /// Upper cells of every node.
    pub(crate) fn total(&self) -> usize {
        *self.start.last().expect("one entry at least")
    }

    /// Where `node`'s upper lists are, if it has any.
    #[inline]
    pub(crate) fn span(&self, node: u32) -> Option<std::ops::Range<usize>> {
        let (w, b) = (node as usize / 64, node % 64);
        let word = *self.bits.get(w)?;
        if word >> b & 1 == 0 {
            return None;
        }
        let i = self.rank[w] as usize + (word & ((1u64 << b) - 1)).count_ones() as usize;
        Some(self.start[i]..self.start[i + 1])
    }

    fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8 + self.rank.capacity() * 4 + self.start.capacity() * std::mem::size_of::<usize>()
    }
}

/// Per-search scratch space, reused across searches (one per thread).
#[derive(Default)]
pub struct Scratch {
    visited: Vec<u64>,
    touched: Vec<u32>,
    candidates: BinaryHeap<u64>,
    /// Results, worst on top (keys are bit-inverted).
    results: BinaryHeap<u64>,
    fresh: Vec<u32>,
    query: Prepared,
    other: Prepared,
    decoded: Vec<f32>,
    sorted: Vec<(f32, u32)>,
    selected: Vec<u32>,
    /// Distances computed by the last search (for `quiver explain`).
    pub distances: usize,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }

    fn reset_visited(&mut self, n: usize) {
        for &t in &self.touched {
            self.visited[t as usize / 64] = 0;
        }
        self.touched.clear();
        let words = n.div_ceil(64);
        if self.visited.len() < words {
            self.visited.resize(words, 0);
        }
    }

    /// Marks `node` visited; true when it was not visited before.
    #[inline(always)]
    fn visit(&mut self, node: u32) -> bool {
        let (w, b) = (node as usize / 64, node % 64);
        let word = self.visited[w];
        if word >> b & 1 == 1 {
            return false;
        }
        if word == 0 {
            self.touched.push(w as u32 * 64);
        }
        self.visited[w] = word | 1 << b;
        true
    }
}

/// A heap key ordering by score, then by node: `f32` bits mapped to an order-preserving `u32`.
#[inline(always)]
fn key(score: f32, node: u32) -> u64 {
    let b = score.to_bits();
    let ordered = if b >> 31 == 1 { !b } else { b | 1 << 31 };
    (ordered as u64) << 32 | node as u64
}

#[inline(always)]
fn unkey(k: u64) -> (f32, u32) {
    let ordered = (k >> 32) as u32;
    let b = if ordered >> 31 == 1 { ordered & !(1 << 31) } else { !ordered };
    (f32::from_bits(b), k as u32)
}

/// splitmix64: the level draw's hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Hnsw {
    /// An empty graph over `codes` (which must be empty too).
    pub fn new(params: HnswParams, codes: Codes) -> Hnsw {
        assert!((2..=M_MAX).contains(&params.m), "m must be in 2..={M_MAX}");
        assert!(codes.is_empty());
        Hnsw {
            params: HnswParams {
                ef_construct: params.ef_construct.max(params.m),
                ..params
            },
            build: (!codes.is_exact()).then(|| Codes::new(codes.dim(), codes.kind(), crate::Quantization::None, &[])),
            codes,
            levels: Cells::default(),
            links0: Cells::default(),
            upper: Cells::default(),
            upper_spans: UpperSpans::default(),
            locks: Vec::new(),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
        }
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    pub fn codes(&self) -> &Codes {
        &self.codes
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Counts vectors in the codes' drift statistics (see [`Codes::observe`]): a loaded index
    /// counts the vectors its nodes stand for.
    pub fn observe(&mut self, rows: &[f32]) {
        self.codes.observe(rows);
    }

    /// Replaces the codes with `codes` of the same encoding, dimension and node count (retrained
    /// ones, see [`Codes::retrained`]); the links stay. False, and nothing changes, if they do
    /// not fit.
    pub fn replace_codes(&mut self, codes: Codes) -> bool {
        let fits = codes.len() == self.len()
            && codes.dim() == self.codes.dim()
            && codes.kind() == self.codes.kind()
            && codes.quantization() == self.codes.quantization();
        if fits {
            self.codes = codes;
        }
        fits
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// The codes distances are measured with while linking.
    fn graph_codes(&self) -> &Codes {
        self.build.as_ref().unwrap_or(&self.codes)
    }

    /// Renumbers nodes in breadth-first order of the bottom level from the entry point, so that
    /// neighbours sit near each other in memory and a search touches fewer cache lines and
    /// pages. Returns `order`: new node `i` is old node `order[i]`. Needs exclusive access.
    pub fn reorder(&mut self) -> Vec<u32> {
        let n = self.len();
        let Some((entry, top)) = self.entry() else { return Vec::new() };
        let mut order = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        seen[entry as usize] = true;
        order.push(entry);
        let mut head = 0;
        let mut start = 0usize;
        while order.len() < n {
            if head == order.len() {
                // A node no search reaches from the entry (possible after deletes): start anew.
                while seen[start] {
                    start += 1;
                }
                seen[start] = true;
                order.push(start as u32);
            }
            let x = order[head];
            head += 1;
            for nb in self.neighbours(x, 0) {
                if !std::mem::replace(&mut seen[nb as usize], true) {
                    order.push(nb);
                }
            }
        }
        let mut new_of = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            new_of[old as usize] = new as u32;
        }
        let stride0 = self.m0() + 1;
        let mut links0 = Vec::with_capacity(self.links0.len());
        quiver_kernels::quant::advise_huge_spare(&links0);
        for &old in &order {
            let list = &self.links0[old as usize * stride0..(old as usize + 1) * stride0];
            let cnt = list[0].load(Relaxed);
            links0.push(AtomicU32::new(cnt));
            links0.extend(
                list[1..]
                    .iter()
                    .enumerate()
                    .map(|(i, a)| AtomicU32::new(if (i as u32) < cnt { new_of[a.load(Relaxed) as usize] } else { 0 })),
            );
        }
        self.links0 = links0.into();
        let stride = self.params.m + 1;
        let mut upper = Vec::with_capacity(self.upper.len());
        let mut spans = UpperSpans::default();
        let mut levels = Vec::with_capacity(n);
        for (new, &old) in order.iter().enumerate() {
            let lists = self.upper_lists(old);
            for list in lists.chunks(stride) {
                let cnt = list[0].load(Relaxed);
                upper.push(AtomicU32::new(cnt));
                for (i, a) in list[1..].iter().enumerate() {
                    let v = if (i as u32) < cnt { new_of[a.load(Relaxed) as usize] } else { 0 };
                    upper.push(AtomicU32::new(v));
                }
            }
            debug_assert_eq!(spans.len(), new);
            spans.push(lists.len());
            levels.push(self.levels[old as usize]);
        }
        self.upper = upper.into();
        self.upper_spans = spans;
        self.levels = levels.into();
        self.codes.permute(&order);
        if let Some(b) = &mut self.build {
            b.permute(&order);
        }
        self.entry.store((top as u64) << 32 | new_of[entry as usize] as u64, Relaxed);
        order
    }

    /// Keeps a full-precision copy again, from `vectors` (every node's vector, in node order;
    /// in half precision around their mean where they fit, see [`Codes::build_copy`]), so
    /// that the nodes added next are linked as well as in a full build: with quantized
    /// distances, neighbours of data packed into a few int8 steps are chosen almost at random
    /// (drifting data lost 0.08 of recall@10 at ef 64 against a full build). False, and nothing
    /// changes, when the codes are exact or `vectors` does not hold one vector per node.
    /// [`Hnsw::finish_build`] drops the copy again.
    pub fn resume_build(&mut self, vectors: &[f32]) -> bool {
        let dim = self.codes.dim();
        if self.codes.is_exact() || vectors.len() != self.len() * dim {
            return false;
        }
        self.build = Some(Codes::build_copy(dim, self.codes.kind(), vectors));
        true
    }

    /// Drops the full-precision copy kept for building a quantized index; later inserts link
    /// with the quantized codes.
    pub fn finish_build(&mut self) {
        self.build = None;
    }

    /// Every upper list of `node` (empty for a node of level 0, or one that is not a node).
    fn upper_lists(&self, node: u32) -> &[AtomicU32] {
        self.upper_spans.span(node).and_then(|r| self.upper.get(r)).unwrap_or(&[])
    }

    fn m0(&self) -> usize {
        2 * self.params.m
    }

    /// Bytes held by the graph and the codes.
    pub fn memory_bytes(&self) -> usize {
        self.codes.memory_bytes()
            + self.build.as_ref().map_or(0, |b| b.memory_bytes())
            + self.links0.heap_bytes()
            + self.upper.heap_bytes()
            + self.levels.heap_bytes()
            + self.upper_spans.heap_bytes()
            + self.locks.capacity() * std::mem::size_of::<Mutex<()>>()
    }

    /// Bytes of the graph and the codes read in place from a mapped index file.
    pub fn mapped_bytes(&self) -> usize {
        self.codes.mapped_bytes() + self.links0.mapped_bytes() + self.upper.mapped_bytes() + self.levels.mapped_bytes()
    }

    fn draw_level(&self, node: u32) -> u8 {
        let u = (mix(self.params.seed ^ (node as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)) >> 11) as f64 / (1u64 << 53) as f64;
        let ml = 1.0 / (self.params.m as f64).ln();
        let level = (-(1.0 - u).ln() * ml).floor();
        (level as u64).min(LEVEL_MAX as u64) as u8
    }

    /// Appends `rows` (row-major) as new, not yet linked nodes; returns the first new node.
    pub fn add(&mut self, rows: &[f32]) -> u32 {
        let first = self.len() as u32;
        let n = rows.len() / self.codes.dim;
        self.codes.push(rows);
        if let Some(b) = &mut self.build {
            if b.is_empty() {
                // The first rows of a build frame its half-precision copy.
                *b = Codes::build_copy(b.dim(), b.kind(), rows);
            } else {
                b.push(rows);
            }
        }
        let stride = self.m0() + 1;
        let links0 = self.links0.to_mut();
        links0.reserve(n * stride);
        quiver_kernels::quant::advise_huge_spare(links0);
        links0.extend((0..n * stride).map(|_| AtomicU32::new(0)));
        for i in 0..n as u32 {
            let level = self.draw_level(first + i);
            self.levels.to_mut().push(level);
            let cells = level as usize * (self.params.m + 1);
            if cells > 0 {
                self.upper.to_mut().extend((0..cells).map(|_| AtomicU32::new(0)));
            }
            self.upper_spans.push(cells);
        }
        // Locks for every node, the loaded ones too (a loaded index has none until now).
        let len = self.len();
        self.locks.resize_with(len, || Mutex::new(()));
        first
    }

    #[inline(always)]
    fn list(&self, node: u32, level: u8) -> &[AtomicU32] {
        if level == 0 {
            let s = self.m0() + 1;
            &self.links0[node as usize * s..(node as usize + 1) * s]
        } else {
            // A node below `level` (only in a damaged file: lists name nodes of their level)
            // has an empty list there, never a panic.
            static NONE: [AtomicU32; 1] = [AtomicU32::new(0)];
            let s = self.params.m + 1;
            let l = level as usize - 1;
            self.upper_lists(node).get(l * s..(l + 1) * s).unwrap_or(&NONE)
        }
    }

    /// The current neighbours of `node` on `level` (for tests and tools).
    pub fn neighbours(&self, node: u32, level: u8) -> Vec<u32> {
        let list = self.list(node, level);
        let n = (list[0].load(Relaxed) as usize).min(list.len() - 1);
        list[1..=n].iter().map(|a| a.load(Relaxed)).collect()
    }

    fn set_list(&self, node: u32, level: u8, ids: &[u32]) {
        let list = self.list(node, level);
        debug_assert!(ids.len() < list.len());
        for (cell, &id) in list[1..].iter().zip(ids) {
            cell.store(id, Relaxed);
        }
        list[0].store(ids.len() as u32, Relaxed);
    }

    fn entry(&self) -> Option<(u32, u8)> {
        let e = self.entry.load(Relaxed);
        (e != NO_ENTRY).then_some((e as u32, (e >> 32) as u8))
    }

    pub fn level(&self, node: u32) -> u8 {
        self.levels[node as usize]
    }

    /// Greedy descent on one upper level from `cur`.
    fn greedy(&self, codes: &Codes, q: &Prepared, mut cur: u32, mut cur_s: f32, level: u8, count: &mut usize) -> (u32, f32) {
        loop {
            let mut changed = false;
            let list = self.list(cur, level);
            let n = (list[0].load(Relaxed) as usize).min(list.len() - 1);
            *count += n;
            let nodes = self.len() as u32;
            for cell in &list[1..=n] {
                let nb = cell.load(Relaxed);
                if nb >= nodes {
                    // Only a damaged file names a node that does not exist (a mapped index is
                    // checked after it opens, not before): skipped, never a panic.
                    continue;
                }
                let s = codes.score(q, nb);
                if s > cur_s {
                    cur_s = s;
                    cur = nb;
                    changed = true;
                }
            }
            if !changed {
                return (cur, cur_s);
            }
        }
    }

    /// The best-first search of one level from `entry` keeping `ef` results in
    /// `scratch.results`; only nodes `allowed` accepts enter the results (all are traversed).
    #[allow(clippy::too_many_arguments)]
    fn search_level(
        &self,
        codes: &Codes,
        entry: (u32, f32),
        ef: usize,
        level: u8,
        scratch: &mut Scratch,
        allowed: Option<&dyn Fn(u32) -> bool>,
    ) {
        let n = self.len();
        scratch.reset_visited(n);
        scratch.candidates.clear();
        scratch.results.clear();
        let (ep, ep_s) = entry;
        scratch.visit(ep);
        scratch.candidates.push(key(ep_s, ep));
        if allowed.is_none_or(|f| f(ep)) {
            scratch.results.push(!key(ep_s, ep));
        }
        let mut worst = if scratch.results.len() >= ef { ep_s } else { f32::NEG_INFINITY };
        while let Some(k) = scratch.candidates.pop() {
            let (c_s, c) = unkey(k);
            if c_s < worst && scratch.results.len() >= ef {
                break;
            }
            // The next candidate's list is needed soon: start fetching it now.
            if let Some(&next) = scratch.candidates.peek() {
                let list = self.list(next as u32, level);
                quiver_kernels::quant::prefetch(list);
            }
            let list = self.list(c, level);
            let cnt = (list[0].load(Relaxed) as usize).min(list.len() - 1);
            scratch.fresh.clear();
            for cell in &list[1..=cnt] {
                let nb = cell.load(Relaxed);
                if nb as usize >= n {
                    continue; // a damaged file's list (see `greedy`)
                }
                if scratch.visit(nb) {
                    codes.prefetch(nb);
                    scratch.fresh.push(nb);
                }
            }
            scratch.distances += scratch.fresh.len();
            for i in 0..scratch.fresh.len() {
                let nb = scratch.fresh[i];
                let s = codes.score(&scratch.query, nb);
                if scratch.results.len() < ef || s > worst {
                    scratch.candidates.push(key(s, nb));
                    if allowed.is_none_or(|f| f(nb)) {
                        scratch.results.push(!key(s, nb));
                        if scratch.results.len() > ef {
                            scratch.results.pop();
                        }
                        if scratch.results.len() >= ef {
                            worst = unkey(!*scratch.results.peek().expect("non-empty")).0;
                        }
                    }
                }
            }
        }
    }

    /// Moves the results heap into `scratch.sorted`, best first.
    fn take_sorted(scratch: &mut Scratch) {
        scratch.sorted.clear();
        scratch.sorted.extend(scratch.results.drain().map(|k| unkey(!k)));
        scratch.sorted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    }

    /// Descends the upper levels to the best entry for level `to` (exclusive lower bound).
    fn descend(&self, codes: &Codes, q: &Prepared, to: u8, count: &mut usize) -> Option<(u32, f32)> {
        let (ep, top) = self.entry()?;
        let mut cur = (ep, codes.score(q, ep));
        *count += 1;
        let mut l = top;
        while l > to {
            cur = self.greedy(codes, q, cur.0, cur.1, l, count);
            l -= 1;
        }
        Some(cur)
    }

    /// Searches for the `ef` best nodes for `query` (at least `k` are asked for), among nodes
    /// `allowed` accepts. Scores are those of the codes (approximate when quantized); best
    /// first.
    pub fn search(&self, query: &[f32], ef: usize, allowed: Option<&dyn Fn(u32) -> bool>, scratch: &mut Scratch) -> Vec<Scored> {
        let mut q = std::mem::take(&mut scratch.query);
        self.codes.prepare(query, &mut q);
        scratch.query = q;
        scratch.distances = 0;
        let Some(entry) = self.descend(&self.codes, &scratch.query, 0, &mut scratch.distances) else {
            return Vec::new();
        };
        self.search_level(&self.codes, entry, ef.max(1), 0, scratch, allowed);
        Self::take_sorted(scratch);
        scratch.sorted.iter().map(|&(score, row)| Scored { row, score }).collect()
    }

    /// The neighbour-selection heuristic (the paper's algorithm 4): walk candidates best first
    /// and keep one unless it is strictly closer to a neighbour kept so far than to the base.
    /// (A tie keeps it: with the paper's "closer to the base than to every kept neighbour", a
    /// node with exact duplicates links to one copy only, since a copy ties with the base for
    /// every candidate, and duplicate-heavy data loses recall.) `cands` is sorted best first;
    /// the kept ids go to `scratch.selected`.
    fn select(&self, cands: &[(f32, u32)], m: usize, scratch: &mut Scratch) {
        scratch.selected.clear();
        let codes = self.graph_codes();
        for &(s_base, c) in cands {
            if scratch.selected.len() >= m {
                break;
            }
            // Full-precision rows (and the half-precision build copy) score two nodes straight
            // from their rows.
            if codes.scores_nodes() {
                let good = scratch
                    .selected
                    .iter()
                    .all(|&s| codes.score_nodes(c, s).is_some_and(|x| x <= s_base));
                if good {
                    scratch.selected.push(c);
                }
                continue;
            }
            self.graph_codes().decode(c, &mut scratch.decoded);
            let mut p = std::mem::take(&mut scratch.other);
            self.graph_codes().prepare(&scratch.decoded, &mut p);
            let good = scratch.selected.iter().all(|&s| self.graph_codes().score(&p, s) <= s_base);
            scratch.other = p;
            if good {
                scratch.selected.push(c);
            }
        }
    }

    /// Links node `node` (added by [`Hnsw::add`]) into the graph; `vector` is its full-precision
    /// vector. Safe to run for many nodes in parallel, and while others search.
    pub fn link(&self, node: u32, vector: &[f32], scratch: &mut Scratch) {
        let level = self.levels[node as usize];
        let mut q = std::mem::take(&mut scratch.query);
        self.graph_codes().prepare(vector, &mut q);
        scratch.query = q;
        let Some((_, top)) = self.entry() else {
            let _g = self.entry_lock.lock();
            if self.entry().is_none() {
                self.entry.store((level as u64) << 32 | node as u64, Relaxed);
                return;
            }
            drop(_g);
            return self.link(node, vector, scratch);
        };
        let mut cur = self
            .descend(self.graph_codes(), &scratch.query, level, &mut scratch.distances)
            .expect("entry exists");
        let mut l = level.min(top);
        loop {
            self.search_level(self.graph_codes(), cur, self.params.ef_construct, l, scratch, None);
            Self::take_sorted(scratch);
            // The node may meet itself when it is reachable already (never on a first insert).
            let cands: Vec<(f32, u32)> = scratch.sorted.iter().copied().filter(|&(_, c)| c != node).collect();
            if let Some(&(s, c)) = cands.first() {
                cur = (c, s);
            }
            let cap = if l == 0 { self.m0() } else { self.params.m };
            self.select(&cands, self.params.m, scratch);
            let chosen = scratch.selected.clone();
            {
                let _g = self.locks[node as usize].lock();
                self.set_list(node, l, &chosen);
            }
            for &nb in &chosen {
                self.add_link(nb, node, l, cap, scratch);
            }
            if l == 0 {
                break;
            }
            l -= 1;
        }
        if level > top {
            let _g = self.entry_lock.lock();
            if self.entry().is_none_or(|(_, t)| level > t) {
                self.entry.store((level as u64) << 32 | node as u64, Relaxed);
            }
        }
    }

    /// Adds `new` to `node`'s list on `level`; a full list is pruned with the heuristic.
    fn add_link(&self, node: u32, new: u32, level: u8, cap: usize, scratch: &mut Scratch) {
        let _g = self.locks[node as usize].lock();
        let current = self.neighbours(node, level);
        if current.contains(&new) {
            return;
        }
        if current.len() < cap {
            let list = self.list(node, level);
            list[current.len() + 1].store(new, Relaxed);
            list[0].store(current.len() as u32 + 1, Relaxed);
            return;
        }
        let codes = self.graph_codes();
        let mut cands: Vec<(f32, u32)> = if codes.scores_nodes() {
            current
                .iter()
                .chain(std::iter::once(&new))
                .filter_map(|&c| Some((codes.score_nodes(node, c)?, c)))
                .collect()
        } else {
            codes.decode(node, &mut scratch.decoded);
            let mut p = std::mem::take(&mut scratch.other);
            codes.prepare(&scratch.decoded, &mut p);
            let cands = current
                .iter()
                .chain(std::iter::once(&new))
                .map(|&c| (codes.score(&p, c), c))
                .collect();
            scratch.other = p;
            cands
        };
        cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.select(&cands, cap, scratch);
        let chosen = std::mem::take(&mut scratch.selected);
        self.set_list(node, level, &chosen);
        scratch.selected = chosen;
    }
}
