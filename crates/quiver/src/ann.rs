//! A collection's approximate index: an HNSW graph (`quiver-index`) over the collection's
//! points, the map from graph nodes to the state's rows, and the search plan that decides
//! between the graph and an exact scan.
//!
//! Invariants:
//! * The graph is a cache. Every answer it gives is checked against the state: a node is
//!   returned only if its row is live and allowed by the filter, and quantized candidates are
//!   rescored against the state's full-precision vectors. Losing or corrupting the index file
//!   can cost a rebuild, never a wrong answer.
//! * Rows not covered by a node (the *tail*: rows added since the last build step, and rows the
//!   graph missed) are scanned exactly on every search, so a point is searchable the moment its
//!   write is acknowledged, index or not.
//! * Nodes are named by point id on disk and mapped to rows on load, after checking that the
//!   node's code is still the code of the point's vector; compaction renumbers rows and remaps
//!   nodes in the same step (under the state's write lock).
//! * Lock order: state, then `built`, then the map, then the graph. Builders never hold the
//!   state lock while they link nodes.

use crate::filter::Filter;
use crate::monitor::{self, RecallEstimate, RecallMonitor};
use crate::state::State;
use crate::store::get_id;
use crate::types::{IndexConfig, PointId};
use parking_lot::{Condvar, Mutex, RwLock};
use quiver_index::{Hnsw, HnswParams, Quantization, Scratch};
use quiver_kernels::{ScoreKind, Scored, TopK};
use quiver_storage::codec::{Decoder, Encoder};
use quiver_storage::{blob, StorageError};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NO_ROW: u32 = u32::MAX;
/// Rows the recall monitor scans per hold of the state's read lock (a multiple of 64, so each
/// step's share of the `alive` bitset starts at a word).
const CHECK_ROWS: usize = 1 << 15;
const INDEX_MAGIC: &[u8; 8] = b"QVRHNSW1";
pub(crate) const INDEX_FILE: &str = "index.hnsw";

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Candidates rescored per requested result when the vectors are on disk (see `search`).
const RESCORE_ON_DISK_PER_K: usize = 4;
/// The fewest candidates rescored when the vectors are on disk.
const RESCORE_ON_DISK_MIN: usize = 40;

/// The threads index builds run on: a pool of their own, at low priority. On rayon's global
/// pool, a search batch's tasks queued behind a build's linking tasks and waited for all of them
/// (seconds under steady writes); here the build and the searches share the cores through the
/// OS scheduler, which favours the searches. `threads` is the collection's
/// [`IndexConfig::build_threads`] (0: every core).
pub(crate) fn build_pool(threads: usize) -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    /// Smaller pools, for collections that limit their build threads: at most one per count
    /// below the core count, kept for the process's life.
    static SMALL: Mutex<Vec<(usize, &'static rayon::ThreadPool)>> = Mutex::new(Vec::new());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("quiver-build-{i}"))
            .start_handler(|_| quiver_kernels::quant::lower_thread_priority())
            .build()
            .expect("starting the index build threads")
    };
    if threads == 0 || threads >= cores {
        return POOL.get_or_init(|| start(cores));
    }
    let mut small = SMALL.lock();
    if let Some((_, pool)) = small.iter().find(|(n, _)| *n == threads) {
        return pool;
    }
    let pool: &'static rayon::ThreadPool = Box::leak(Box::new(start(threads)));
    small.push((threads, pool));
    pool
}

/// Which row each node stands for, in the state's current numbering.
struct NodeMap {
    /// Read in place from the index file after an open, until a change copies it.
    node_row: quiver_index::cells::Cells<u32>,
    /// Rows below `rows_seen` that no node covers (scanned exactly).
    tail: Vec<u32>,
    /// Every row at or above this is in the tail too.
    rows_seen: usize,
    /// The state generation this map's rows belong to.
    generation: u64,
}

struct Built {
    hnsw: RwLock<Hnsw>,
    map: RwLock<NodeMap>,
}

/// What the next build step should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    None,
    Full,
    Extend,
    /// The data drifted away from what the quantized codes were trained on: retrain them on
    /// every node's vector and re-encode (the links stay).
    Recode,
}

/// Why an index file was not used (it is then rebuilt from the vectors, never trusted).
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexFileError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("damaged graph: {0}")]
    Graph(#[from] quiver_index::persist::PersistError),
    #[error("expected 6 or 7 sections, found {0}")]
    Sections(usize),
    #[error("the index was built with other parameters")]
    OtherParameters,
    #[error("damaged node ids: {0}")]
    NodeIds(String),
}

impl From<quiver_storage::codec::DecodeError> for IndexFileError {
    fn from(e: quiver_storage::codec::DecodeError) -> Self {
        IndexFileError::NodeIds(e.reason)
    }
}

/// How a search was answered (for `quiver explain` and the tests).
#[derive(Clone, Debug, PartialEq)]
pub enum SearchPath {
    /// Every allowed point was scored.
    Exact {
        /// Points scored.
        scored: usize,
        /// Why no graph was used.
        reason: &'static str,
    },
    /// The graph was searched with list size `ef`, then `tail` uncovered points were scanned.
    Graph {
        /// The search list size used.
        ef: usize,
        /// Neighbours per node the graph was built with.
        m: usize,
        /// The codes the graph was searched with.
        quantization: Quantization,
        /// Distances computed on the codes.
        distances: usize,
        /// Candidates rescored with the full vectors.
        rescored: usize,
        /// Points not yet in the graph, scanned exactly.
        tail: usize,
    },
}

pub(crate) struct Ann {
    pub config: IndexConfig,
    kind: ScoreKind,
    dim: usize,
    path: PathBuf,
    built: RwLock<Option<Arc<Built>>>,
    running: Mutex<bool>,
    idle: Condvar,
    /// Nodes added since the index file was last written.
    unsaved: Mutex<usize>,
    /// The node count at the last recode: codes are retrained at most once per graph size, so
    /// a distribution the encoding cannot fit never loops.
    recoded_at: Mutex<usize>,
    /// Measures the graph's recall on sampled searches and picks `ef` for the target.
    pub monitor: RecallMonitor,
    pub last_error: Mutex<Option<String>>,
    /// Set when the collection is dropped. `save` holds this lock while it writes, so once
    /// `retire` returns no index file is written into the collection's folder again (a new
    /// collection of the same name may own that folder by then).
    retired: Mutex<bool>,
    /// The base segment the index file names its nodes' rows against (`None`: by id only).
    saved_base: Mutex<Option<crate::state::BaseId>>,
    /// The large sections of the index file opened in place, until they are checked.
    unverified: Mutex<Option<file::Unverified>>,
}

/// The state of the index for `quiver info`.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexStatus {
    /// Points in the graph.
    pub nodes: usize,
    /// Points not yet in the graph (scanned exactly by every search).
    pub tail: usize,
    /// True while a build or an extension runs.
    pub building: bool,
    /// Memory the graph and its codes use.
    pub memory_bytes: usize,
    /// Why the last build or load failed, if it did.
    pub error: Option<String>,
    /// The list size a search for the top 10 that names no `ef` uses now.
    pub ef: usize,
    /// The recall@10 the monitor measured at that `ef`, once it has enough checks.
    pub recall: Option<RecallEstimate>,
    /// Everything the monitor measured, smallest `ef` first.
    pub recall_by_ef: Vec<RecallEstimate>,
}

fn mask_has(mask: &[u64], row: u32) -> bool {
    mask.get(row as usize / 64).is_some_and(|w| w >> (row % 64) & 1 == 1)
}

impl Ann {
    pub fn new(config: IndexConfig, kind: ScoreKind, dim: usize, dir: &Path) -> Ann {
        Ann {
            config,
            kind,
            dim,
            path: dir.join(INDEX_FILE),
            built: RwLock::new(None),
            running: Mutex::new(false),
            idle: Condvar::new(),
            unsaved: Mutex::new(0),
            recoded_at: Mutex::new(0),
            monitor: RecallMonitor::new(),
            last_error: Mutex::new(None),
            retired: Mutex::new(false),
            saved_base: Mutex::new(None),
            unverified: Mutex::new(None),
        }
    }

    /// Stops this index for good: no more build steps, no more index files.
    pub fn retire(&self) {
        *self.retired.lock() = true;
    }

    pub fn is_retired(&self) -> bool {
        *self.retired.lock()
    }

    fn params(&self) -> HnswParams {
        HnswParams {
            m: self.config.m,
            ef_construct: self.config.ef_construct,
            ..HnswParams::default()
        }
    }

    /// Bytes in memory of the codes and of the graph (lists and node map), and the index
    /// file's size on disk.
    pub fn footprint(&self) -> (usize, usize, u64) {
        let file = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        match &*self.built.read() {
            Some(b) => {
                let map = b.map.read();
                let h = b.hnsw.read();
                let codes = h.codes().memory_bytes();
                (codes, h.memory_bytes() - codes + map.node_row.heap_bytes(), file)
            }
            None => (0, 0, file),
        }
    }

    pub fn status(&self, st: &State) -> IndexStatus {
        let built = self.built.read().clone();
        let (nodes, tail, memory_bytes) = match &built {
            Some(b) => {
                let map = b.map.read();
                let h = b.hnsw.read();
                (
                    h.len(),
                    map.tail.len() + st.n_rows().saturating_sub(map.rows_seen),
                    h.memory_bytes() + map.node_row.heap_bytes(),
                )
            }
            None => (0, st.n_rows(), 0),
        };
        let target = self.config.target_recall;
        IndexStatus {
            nodes,
            tail,
            building: *self.running.lock(),
            memory_bytes,
            error: self.last_error.lock().clone(),
            ef: self.monitor.choose_ef(target, self.config.ef, 10),
            recall: self
                .monitor
                .current(target, self.config.ef, 10)
                .filter(|e| e.samples >= monitor::SAMPLES_MIN),
            recall_by_ef: self.monitor.estimates(),
        }
    }

    /// What a build step would do now. `eager` absorbs any tail (used by explicit requests).
    pub fn work(&self, st: &State, eager: bool) -> Work {
        if !self.config.enabled || (st.n_alive() < self.config.full_scan_threshold && !eager) || st.n_alive() == 0 {
            return Work::None;
        }
        let Some(b) = self.built.read().clone() else { return Work::Full };
        let map = b.map.read();
        if map.generation != st.generation() {
            return Work::Full;
        }
        let nodes = map.node_row.len();
        let tail = map.tail.len() + st.n_rows().saturating_sub(map.rows_seen);
        let live_nodes = st.n_alive().saturating_sub(tail);
        if nodes > 1000 && nodes.saturating_sub(live_nodes) > nodes / 4 {
            return Work::Full;
        }
        let want = if eager { 1 } else { 1024.max(nodes / 16) };
        if tail >= want {
            Work::Extend
        } else if nodes > *self.recoded_at.lock() && b.hnsw.read().codes().drifted() {
            Work::Recode
        } else {
            Work::None
        }
    }

    /// Counts `added` new nodes; true when the index file should be written now (after a full
    /// build, when forced, or once a tenth of the graph is unsaved).
    pub fn note_added(&self, added: usize, force: bool) -> bool {
        let nodes = self.built.read().as_ref().map_or(0, |b| b.hnsw.read().len());
        let mut u = self.unsaved.lock();
        *u += added;
        if force || *u * 10 >= nodes {
            *u = 0;
            return true;
        }
        false
    }

    /// Marks a build job as running; false if one already is.
    pub fn try_start(&self) -> bool {
        let mut r = self.running.lock();
        if *r {
            return false;
        }
        *r = true;
        true
    }

    pub fn finish(&self) {
        *self.running.lock() = false;
        self.idle.notify_all();
    }

    /// Blocks until no build job runs.
    pub fn wait_idle(&self) {
        let mut r = self.running.lock();
        while *r {
            self.idle.wait(&mut r);
        }
    }

    /// Builds a new graph over the live points of `st` (read under the caller's lock) — step one
    /// of a full build: the snapshot. Returns what `build_full` needs.
    pub fn snapshot_full(st: &State) -> Snapshot {
        let mut rows = Vec::with_capacity(st.n_alive());
        let mut vectors = Vec::with_capacity(st.n_alive() * st.dim());
        for row in 0..st.n_rows() as u32 {
            if st.is_searchable(row) {
                rows.push(row);
                vectors.extend_from_slice(st.vector(row));
            }
        }
        Snapshot {
            rows,
            vectors,
            generation: st.generation(),
            rows_seen: st.n_rows(),
            old_seen: 0,
        }
    }

    /// The rows the current graph does not cover yet (step one of an extension).
    pub fn snapshot_tail(&self, st: &State) -> Option<Snapshot> {
        let b = self.built.read().clone()?;
        let map = b.map.read();
        let mut rows = Vec::new();
        let mut vectors = Vec::new();
        for row in map.tail.iter().copied().chain(map.rows_seen as u32..st.n_rows() as u32) {
            if st.is_searchable(row) {
                rows.push(row);
                vectors.extend_from_slice(st.vector(row));
            }
        }
        Some(Snapshot {
            rows,
            vectors,
            generation: st.generation(),
            rows_seen: st.n_rows(),
            old_seen: map.rows_seen,
        })
    }

    /// Whether extending by `snap` should link with full-precision vectors: the codes are
    /// quantized, the vectors are in memory (a copy of vectors on disk would read the whole
    /// file), and the tail is at least a 64th of the graph, so that copying every node's vector
    /// costs little beside linking the tail (each link scores some 1,500 vectors; the
    /// background job's tails are a 16th; an explicit build after a few upserts links them
    /// with the codes).
    pub fn links_exactly(&self, st: &State, snap: &Snapshot) -> bool {
        let nodes = self.built.read().as_ref().map_or(0, |b| b.map.read().node_row.len());
        self.config.quantization != Quantization::None && !st.vectors_on_disk() && snap.len() * 64 >= nodes
    }

    /// Every node's vector, in node order, for retraining drifted codes (step one of a
    /// recode, under the state's read lock) or linking new nodes exactly. A node whose row is
    /// gone keeps what its code stands for.
    pub fn snapshot_nodes(&self, st: &State) -> Option<NodeVectors> {
        let b = self.built.read().clone()?;
        let map = b.map.read();
        let h = b.hnsw.read();
        let mut vectors = Vec::with_capacity(h.len() * self.dim);
        let mut decoded = Vec::new();
        for node in 0..h.len() {
            match map.node_row.get(node).copied() {
                Some(r) if r != NO_ROW && (r as usize) < st.n_rows() => vectors.extend_from_slice(st.vector(r)),
                _ => {
                    h.codes().decode(node as u32, &mut decoded);
                    vectors.extend_from_slice(&decoded);
                }
            }
        }
        Some(NodeVectors { nodes: h.len(), vectors })
    }

    /// Whether linking the tail `snap` with the current codes would leave them drifted (see
    /// `Codes::drifted_with`): then the codes are retrained first, with the tail in the sample,
    /// so the new nodes are linked with codes that tell them apart.
    pub fn tail_drifts(&self, snap: &Snapshot) -> bool {
        let Some(b) = self.built.read().clone() else { return false };
        let h = b.hnsw.read();
        h.len() > *self.recoded_at.lock() && h.codes().drifted_with(&snap.vectors)
    }

    /// Retrains the codes on `snap` and `extra` (vectors about to be added; no lock held) and
    /// installs them, unless the graph changed meanwhile. Searches go on during the work and
    /// see old or new codes, never a mix.
    pub fn recode(&self, snap: &NodeVectors, extra: &[f32]) -> bool {
        let Some(b) = self.built.read().clone() else { return false };
        let codes = b.hnsw.read().codes().retrained(&snap.vectors, extra);
        let mut h = b.hnsw.write();
        *self.recoded_at.lock() = snap.nodes;
        let done = h.len() == snap.nodes && h.replace_codes(codes);
        if done {
            self.monitor.reset();
        }
        done
    }

    /// Builds a graph from a full snapshot (no lock held; runs on the rayon pool), renumbered
    /// in breadth-first order for cache locality; returns it with the order (new node `i` is
    /// snapshot entry `order[i]`). The codes are trained on a sample spread over every point
    /// (not the first ones: data often arrives sorted).
    pub fn build(&self, snap: &Snapshot) -> (Hnsw, Vec<u32>) {
        let codes = quiver_index::Codes::new(self.dim, self.kind, self.config.quantization, &snap.vectors);
        let mut hnsw = Hnsw::new(self.params(), codes);
        let first = hnsw.add(&snap.vectors);
        hnsw.link_range(first, &snap.vectors);
        hnsw.finish_build();
        let order = hnsw.reorder();
        (hnsw, order)
    }

    /// Installs a freshly built graph (caller holds the state's read lock). A snapshot taken
    /// before a compaction is discarded: its rows are numbered in the old way.
    pub fn install_full(&self, st: &State, (hnsw, order): (Hnsw, Vec<u32>), snap: Snapshot) -> bool {
        if snap.generation != st.generation() {
            return false;
        }
        // The graph was renumbered for locality: node `i` is snapshot entry `order[i]`.
        let map = NodeMap {
            node_row: order.iter().map(|&o| snap.rows[o as usize]).collect::<Vec<_>>().into(),
            tail: Vec::new(),
            rows_seen: snap.rows_seen,
            generation: snap.generation,
        };
        *self.built.write() = Some(Arc::new(Built {
            hnsw: RwLock::new(hnsw),
            map: RwLock::new(map),
        }));
        self.monitor.reset();
        true
    }

    /// Adds and links the snapshot's rows to the current graph (no state lock held), then maps
    /// them (under the state's read lock, taken by `relock`).
    /// With `nodes` (every node's vector, see [`Ann::snapshot_nodes`]) a quantized graph links
    /// the new points with full-precision distances, as a full build does (see
    /// `Hnsw::resume_build`); the copy lives only for this call.
    pub fn extend(&self, snap: Snapshot, nodes: Option<&NodeVectors>, relock: impl FnOnce(&dyn Fn(&State))) {
        let Some(b) = self.built.read().clone() else { return };
        let first = {
            let mut h = b.hnsw.write();
            if let Some(nodes) = nodes.filter(|n| n.nodes == h.len()) {
                h.resume_build(&nodes.vectors);
            }
            h.add(&snap.vectors)
        };
        b.hnsw.read().link_range(first, &snap.vectors);
        b.hnsw.write().finish_build();
        relock(&|st: &State| {
            let mut map = b.map.write();
            let valid = map.generation == snap.generation && st.generation() == snap.generation && map.rows_seen == snap.old_seen;
            debug_assert_eq!(map.node_row.len(), first as usize);
            if valid {
                map.node_row.to_mut().extend_from_slice(&snap.rows);
                map.tail.clear();
                map.rows_seen = snap.rows_seen;
            } else {
                // Rows were renumbered meanwhile: the new nodes stay in the graph (traversable)
                // but are never returned; their points are still in the tail.
                map.node_row.to_mut().extend(std::iter::repeat_n(NO_ROW, snap.rows.len()));
            }
        });
    }

    /// Remaps nodes after `State::compact_rows` renumbered rows; `before` is what
    /// [`Ann::before_compact`] captured from the old numbering.
    pub fn after_compact(&self, before: Option<BeforeCompact>, st: &State) {
        let (Some(before), Some(b)) = (before, self.built.read().clone()) else {
            return;
        };
        let mut map = b.map.write();
        map.node_row = before
            .node_ids
            .iter()
            .map(|id| id.and_then(|id| st.row_of(&id)).unwrap_or(NO_ROW))
            .collect();
        map.tail = before.tail_ids.iter().filter_map(|id| st.row_of(id)).collect();
        map.rows_seen = st.n_rows();
        map.generation = st.generation();
    }

    pub fn before_compact(&self, st: &State) -> Option<BeforeCompact> {
        let b = self.built.read().clone()?;
        let map = b.map.read();
        let node_ids = map
            .node_row
            .iter()
            .map(|&r| (r != NO_ROW && st.is_searchable(r)).then(|| st.id_at(r as usize)))
            .collect();
        let tail_ids = map
            .tail
            .iter()
            .copied()
            .chain(map.rows_seen as u32..st.n_rows() as u32)
            .filter(|&r| st.is_searchable(r))
            .map(|r| st.id_at(r as usize))
            .collect();
        Some(BeforeCompact { node_ids, tail_ids })
    }

    /// Searches with the graph when the plan makes that cheaper than an exact scan; `None`
    /// means "scan exactly" (with the reason in `path`). With no `ef`, the recall monitor picks
    /// the smallest one that reaches the collection's target; unfiltered graph searches offer
    /// their query to the monitor (true in the second value when one waits for a check).
    pub fn search(
        &self,
        st: &State,
        filter: Option<&Filter>,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        path: &mut Option<SearchPath>,
    ) -> (Option<Vec<Scored>>, bool) {
        let ef = ef.unwrap_or_else(|| self.monitor.choose_ef(self.config.target_recall, self.config.ef, k));
        let hits = self.search_at(st, filter, query, k, ef, path);
        let sampled = hits.is_some() && filter.is_none() && self.monitor.offer(query, k);
        (hits, sampled)
    }

    /// One check of the recall monitor: `query`'s exact top `k` against the answer at every
    /// ladder `ef` (what users get there: the graph, or the exact scan the plan prefers). The
    /// exact scan takes the state's read lock for `CHECK_ROWS` rows at a time and each ladder
    /// search takes it once, so a writer never waits for more than one such step (a waiting
    /// writer holds up new readers too). Empty when rows were renumbered meanwhile.
    pub fn check_recall(&self, state: &RwLock<State>, sample: &monitor::Sample) -> Vec<f64> {
        let mut top = TopK::new(sample.k);
        let mut start = 0usize;
        let generation = state.read().generation();
        loop {
            let st = state.read();
            if st.generation() != generation {
                return Vec::new();
            }
            let end = (start + CHECK_ROWS).min(st.n_rows());
            if start >= end {
                break;
            }
            let allowed = quiver_kernels::Allowed::Mask(st.searchable_mask());
            for h in st.scan_range(self.kind, &sample.query, allowed, start..end, sample.k) {
                top.push(h.row, h.score);
            }
            start = end;
        }
        let want: Vec<f32> = top.into_sorted().iter().map(|h| h.score).collect();
        monitor::LADDER
            .iter()
            .map(|&ef| {
                let st = state.read();
                let mut path = None;
                match self.search_at(&st, None, &sample.query, sample.k, ef, &mut path) {
                    Some(hits) => monitor::recall(&want, &hits.iter().map(|h| h.score).collect::<Vec<_>>()),
                    None => 1.0,
                }
            })
            .collect()
    }

    fn search_at(
        &self,
        st: &State,
        filter: Option<&Filter>,
        query: &[f32],
        k: usize,
        ef: usize,
        path: &mut Option<SearchPath>,
    ) -> Option<Vec<Scored>> {
        let exact = |path: &mut Option<SearchPath>, reason: &'static str| {
            *path = Some(SearchPath::Exact { scored: 0, reason });
            None
        };
        if !self.config.enabled {
            return exact(path, "the index is disabled");
        }
        if st.n_alive() < self.config.full_scan_threshold {
            return exact(path, "the collection is below the full-scan threshold");
        }
        let Some(b) = self.built.read().clone() else {
            return exact(path, "the index is not built yet");
        };
        let map = b.map.read();
        if map.generation != st.generation() {
            return exact(path, "the index is being rebuilt");
        }
        // How many points the filter lets through, estimated from a sample without evaluating
        // it on every point (see `State::estimate`).
        let matches = filter.map_or(st.n_alive(), |f| st.estimate(f));
        let ef = ef.max(k);
        let tail_len = map.tail.len() + st.n_rows().saturating_sub(map.rows_seen);
        // Cost in "sequential distance" units: an exact scan scores every match; the graph
        // visits about ef * 2m nodes at random (about 6x the cost each) divided by the share of
        // points the filter lets through, plus the tail.
        let selectivity = matches as f64 / st.n_alive().max(1) as f64;
        let graph_cost = (ef * 2 * self.config.m) as f64 * 6.0 / selectivity.max(1e-9) + tail_len as f64;
        if matches as f64 <= graph_cost {
            return exact(path, "an exact scan of the matching points is cheaper");
        }
        // The filter is evaluated lazily, only on rows the walk would return.
        let row_ok = |r: u32| st.is_searchable(r) && filter.is_none_or(|f| st.row_matches(r, f));
        let node_ok = |node: u32| {
            let r = map.node_row.get(node as usize).copied().unwrap_or(NO_ROW);
            r != NO_ROW && row_ok(r)
        };
        let hnsw = b.hnsw.read();
        let (cands, distances) = SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let c = hnsw.search(query, ef, Some(&node_ok), &mut s);
            (c, s.distances)
        });
        let exact_codes = hnsw.codes().is_exact();
        // With the vectors on disk every rescoring read may be a page fault: rescore only the
        // best candidates by code score (as Qdrant rescores `limit x oversampling`), at least
        // `RESCORE_ON_DISK_MIN` and `RESCORE_ON_DISK_PER_K` per requested result. In memory
        // the reads are cheap and every candidate is rescored.
        let rescored = if exact_codes || !st.vectors_on_disk() {
            cands.len()
        } else {
            (k * RESCORE_ON_DISK_PER_K).max(RESCORE_ON_DISK_MIN).min(cands.len())
        };
        if !exact_codes && st.vectors_on_disk() {
            // Every read of a row not in memory is a wait on the disk: ask for all of them
            // first, so they are in flight together, then score.
            for c in &cands[..rescored] {
                quiver_storage::map::will_need(bytemuck::cast_slice(st.vector(map.node_row[c.row as usize])));
            }
        }
        let mut top = TopK::new(k);
        for c in &cands[..rescored] {
            let row = map.node_row[c.row as usize];
            let score = if exact_codes {
                c.score
            } else {
                self.kind.score(query, st.vector(row))
            };
            top.push(row, score);
        }
        let mut tail = 0;
        for row in map.tail.iter().copied().chain(map.rows_seen as u32..st.n_rows() as u32) {
            if row_ok(row) {
                tail += 1;
                top.push(row, self.kind.score(query, st.vector(row)));
            }
        }
        if top.len() < k {
            // Fewer than k found: perhaps fewer match at all, perhaps the walk missed them. The
            // exact scan tells, so a filtered search never comes back short.
            return exact(path, "the graph found fewer than k matching points");
        }
        *path = Some(SearchPath::Graph {
            ef,
            m: self.config.m,
            distances,
            quantization: hnsw.codes().quantization(),
            rescored: if exact_codes { 0 } else { cands.len() },
            tail,
        });
        Some(top.into_sorted())
    }
}

#[path = "ann_file.rs"]
mod file;

#[cfg(test)]
#[path = "ann_load_tests.rs"]
mod load_tests;

/// Rows, ids and vectors copied out of the state for a build step.
pub(crate) struct Snapshot {
    rows: Vec<u32>,
    vectors: Vec<f32>,
    generation: u64,
    rows_seen: usize,
    old_seen: usize,
}

impl Snapshot {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }
}

/// Every node's vector, in node order (see [`Ann::snapshot_nodes`]).
pub(crate) struct NodeVectors {
    nodes: usize,
    vectors: Vec<f32>,
}

/// The ids of live nodes and tail rows, captured before rows are renumbered.
pub(crate) struct BeforeCompact {
    node_ids: Vec<Option<PointId>>,
    tail_ids: Vec<PointId>,
}
