//! One collection: the handle, open and recovery here; the write path (`write`), flush,
//! compaction and the manifest (`storage`), the read path (`read`), text and hybrid search
//! (`text`), and the index jobs and recall monitor (`index_job`) in the rooms beside it.
//!
//! Write path, under the writer mutex (one writer at a time, readers never wait on fsync):
//! 1. validate the input (dimension, finite values, payload size, batch size);
//! 2. append the operation to the WAL as one transaction, fsynced (or group-committed);
//! 3. apply it to the in-memory state under a short write lock: visible to the next search;
//! 4. when the WAL passes `WAL_FLUSH_BYTES`, flush: write the changed points as a new immutable
//!    segment, replace the manifest atomically, and start a new WAL file.
//!
//! A crash between any two steps leaves either the old or the new manifest, each naming
//! complete segments, and a WAL whose committed transactions after `flushed_seq` are replayed.

mod footprint;
pub use footprint::{ComponentBytes, Footprint};
mod groups;
mod index_job;
mod map;
pub use map::{MapPoint, MapRequest, VectorMap, MAP_SAMPLE_MAX};
mod matrix;
pub use matrix::{DistanceMatrix, MATRIX_SAMPLE_MAX};
mod named;
pub use named::{SparseExplain, SparseTerm};
mod query;
pub use groups::Group;
pub use query::{FusionKind, QueryStage, StageQuery, StageTrace, QUERY_DEPTH_MAX, QUERY_STAGES_MAX};
mod read;
mod recommend;
mod remote;
mod storage;
mod text;
pub use recommend::{Discover, Feedback, Recommend, RecommendStrategy};
pub use text::hybrid_depth;
mod write;

use storage::{commit_manifest, remove_strays, segment_path, write_manifest, write_segment};

use crate::ann::{Ann, IndexStatus, SearchPath, Work};
use crate::error::{Error, Result};
use crate::filter::{Filter, KeyPath};
use crate::payload_index::PayloadIndexType;
use crate::settings::CollectionSettings;
use crate::state::State;
use crate::store::{self, Manifest, Op};
use crate::strict_mode::{RateKind, RateLimiter, SizeStats, StrictMode};
use crate::types::*;
use parking_lot::{Mutex, RwLock};
use quiver_storage::{fsio, wal::Wal, StorageError};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// Where text collections keep a point's text (as Chroma keeps documents).
pub const DOCUMENT_KEY: &str = "document";

/// The WAL is flushed into a segment once it holds this many bytes.
pub const WAL_FLUSH_BYTES: u64 = 64 << 20;
/// A WAL this large means flushes keep failing (a full disk): writes are refused with
/// [`Error::WalFull`] until a flush succeeds, so the log cannot grow without bound.
pub const WAL_BYTES_MAX: u64 = 4 * WAL_FLUSH_BYTES;
/// Holds the last flush failure's message while it stands, so a new process reports it too.
const FLUSH_ERROR_FILE: &str = "FLUSH_ERROR";
/// An upsert whose encoding is at least this large skips the WAL and becomes a segment of its
/// own, committed by the manifest: one write of the data instead of two.
pub const BULK_SEGMENT_BYTES: usize = 16 << 20;
/// More segments than this are merged into one at the next flush.
pub const SEGMENTS_MAX: usize = 16;
/// The most rows (live and dead) a collection holds in memory; compaction frees dead rows.
pub const ROWS_MAX: usize = u32::MAX as usize - 1;

/// Which points an update applies to.
#[derive(Clone, Debug)]
pub enum PointSelector {
    /// These points (missing ids are skipped).
    Ids(Vec<PointId>),
    /// Every point the filter matches.
    Filter(Filter),
}

/// A search request. `limit` results after skipping `offset`.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// The query vector.
    pub vector: Vec<f32>,
    /// Results to return (1 to `SEARCH_LIMIT_MAX`).
    pub limit: usize,
    /// Best results to skip first (paging).
    pub offset: usize,
    /// Only points matching this filter.
    pub filter: Option<Filter>,
    /// Cosine / dot: keep scores >= threshold. Euclid / manhattan: keep distances <= threshold.
    pub score_threshold: Option<f32>,
    /// Return each hit's payload.
    pub with_payload: bool,
    /// Return each hit's vector.
    pub with_vector: bool,
    /// Score every allowed point, even when an index exists (the oracle).
    pub exact: bool,
    /// The index's search list size for this request (default: the collection's `ef`).
    pub ef: Option<usize>,
}

impl SearchRequest {
    /// A search for the `limit` nearest points to `vector`, with payloads.
    pub fn new(vector: Vec<f32>, limit: usize) -> SearchRequest {
        SearchRequest {
            vector,
            limit,
            offset: 0,
            filter: None,
            score_threshold: None,
            with_payload: true,
            with_vector: false,
            exact: false,
            ef: None,
        }
    }
}

/// How `Collection::hybrid` fuses its rankings: reciprocal rank fusion, each ranking weighted
/// (`weight / (k + rank)`); weights of 1 are plain RRF.
#[derive(Clone, Debug, PartialEq)]
pub struct Fusion {
    /// The RRF constant: a rank r scores weight / (k + r).
    pub k: f32,
    /// The weight of the dense ranking.
    pub dense_weight: f32,
    /// The weight of the BM25 ranking.
    pub text_weight: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion {
            k: 60.0,
            dense_weight: 1.0,
            text_weight: 1.0,
        }
    }
}

/// A page of points in id order.
#[derive(Clone, Debug)]
pub struct ScrollRequest {
    /// Start at this id (inclusive); `None` starts at the smallest.
    pub offset: Option<PointId>,
    /// Points per page.
    pub limit: usize,
    /// Only points matching this filter.
    pub filter: Option<Filter>,
    /// Return payloads.
    pub with_payload: bool,
    /// Return vectors.
    pub with_vector: bool,
}

/// Which points an upsert writes (Qdrant's `update_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpdateMode {
    /// Insert new points and replace existing ones.
    #[default]
    Upsert,
    /// Only points whose ids do not exist yet; existing points stay as they are.
    InsertOnly,
    /// Only points whose ids exist; new ids are skipped.
    UpdateOnly,
}

/// What a read returns with each point besides its id (and score).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct With {
    /// The payload.
    pub payload: bool,
    /// The vector.
    pub vector: bool,
}

impl With {
    /// Ids (and scores) only.
    pub const NOTHING: With = With {
        payload: false,
        vector: false,
    };
    /// Payloads, not vectors.
    pub const PAYLOAD: With = With {
        payload: true,
        vector: false,
    };
    /// Payloads and vectors.
    pub const ALL: With = With {
        payload: true,
        vector: true,
    };
}

/// One page of a scroll.
#[derive(Clone, Debug)]
pub struct ScrollPage {
    /// The page's points, in id order.
    pub points: Vec<Record>,
    /// The id to pass as `offset` for the next page; `None` at the end.
    pub next_offset: Option<PointId>,
}

/// What `info` reports.
#[derive(Clone, Debug)]
pub struct CollectionInfo {
    /// The collection's name.
    pub name: String,
    /// Its configuration.
    pub config: CollectionConfig,
    /// Live points.
    pub points: usize,
    /// Rows of deleted or replaced points still in segments (compaction frees them).
    pub dead_rows: usize,
    /// Segment files.
    pub segments: usize,
    /// Bytes in the write-ahead log.
    pub wal_bytes: u64,
    /// The last write's sequence number.
    pub last_seq: u64,
    /// Writes up to this sequence number are in segments.
    pub flushed_seq: u64,
    /// (key, type, points indexed, distinct values)
    pub payload_indexes: Vec<(String, PayloadIndexType, u64, usize)>,
    /// The instruction set of the distance kernels.
    pub kernel_isa: &'static str,
    /// The last background flush failure, if the last flush failed (writes stay durable in
    /// the WAL; the flush is retried).
    pub flush_error: Option<String>,
    /// Damage found in the mapped base segment after it was opened (a checksum mismatch of
    /// its vectors, payloads or named vectors, or a payload that cannot be decoded): answers
    /// may be wrong; restore a snapshot or a copy.
    pub damage: Option<String>,
}

/// The result of an accepted write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteAck {
    /// The WAL sequence number the write committed as.
    pub seq: u64,
    /// Points the write touched.
    pub affected: usize,
}

struct Writer {
    wal: Wal,
    manifest: Manifest,
    last_seq: u64,
    flush_error: Option<String>,
    /// The collection was dropped: handles that outlive the drop get `CollectionNotFound`
    /// instead of writing into files that are gone.
    dropped: bool,
}

struct Inner {
    name: String,
    dir: PathBuf,
    config: CollectionConfig,
    writer: Mutex<Writer>,
    state: RwLock<State>,
    ann: Ann,
    /// Metadata, strict mode and storage hints (`SETTINGS`, see `crate::settings`).
    settings: RwLock<CollectionSettings>,
    /// Strict mode's read and write buckets (built from the settings, reset when they change).
    rates: Mutex<Rates>,
    /// The recall monitor's thread runs.
    monitor_running: std::sync::atomic::AtomicBool,
    /// Dropping this stops the group-commit thread.
    _stop_syncer: Option<mpsc::Sender<()>>,
    /// The collection's home on object storage, when it has one (see `crate::remote`).
    remote: Option<Link>,
}

/// How a collection on object storage is tied to its log.
pub(crate) enum Link {
    /// This process writes it: commits wait for their group commit.
    Writer(Arc<crate::remote::LogWriter>),
    /// This process follows the writer's log and refuses writes.
    Replica(Arc<crate::remote::Follower>),
}

/// The token buckets of strict mode's rate limits.
#[derive(Default)]
struct Rates {
    read: Option<RateLimiter>,
    write: Option<RateLimiter>,
}

impl Rates {
    fn of(s: &CollectionSettings) -> Rates {
        match &s.strict_mode {
            Some(sm) if sm.is_enabled() => Rates {
                read: sm.read_rate_limit.map(RateLimiter::new),
                write: sm.write_rate_limit.map(RateLimiter::new),
            },
            _ => Rates::default(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Group commit: make every acknowledged write durable before the handle goes away.
        let _ = self.writer.get_mut().wal.sync();
        if let Some(Link::Writer(lw)) = &self.remote {
            lw.stop();
        }
    }
}

/// A handle to one open collection; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Collection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection").field("name", &self.inner.name).finish()
    }
}

pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("MANIFEST")
}

/// Creates the files of a new, empty collection in `dir` (which must not exist yet).
pub(crate) fn create_files(dir: &Path, config: &CollectionConfig) -> Result<()> {
    fsio::create_dir_durable(dir)?;
    fsio::create_dir_durable(&dir.join("segments"))?;
    fsio::create_dir_durable(&dir.join("wal"))?;
    let m = Manifest {
        config: config.clone(),
        flushed_seq: 0,
        next_segment_no: 1,
        segments: Vec::new(),
        // A text collection keeps its texts under `document`: they get a full-text index.
        indexes: if config.embedder.is_some() {
            vec![(DOCUMENT_KEY.to_string(), PayloadIndexType::Text)]
        } else {
            Vec::new()
        },
    };
    write_manifest(dir, &m)
}

impl Collection {
    /// Opens and recovers the collection stored in `dir`.
    pub(crate) fn open(name: &str, dir: &Path) -> Result<Collection> {
        Collection::open_linked(name, dir, None, None)
    }

    /// Opens the collection in `dir`, tied to its log on object storage when `remote` says so
    /// (the folder was just restored from that log). `fill`: the manifest's first segment is
    /// not in the folder yet but fetched on demand (a replica's cold start), and whether the
    /// rest of it is fetched in the background.
    pub(crate) fn open_linked(
        name: &str,
        dir: &Path,
        remote: Option<Link>,
        fill: Option<(Arc<quiver_storage::fill::Fill>, bool)>,
    ) -> Result<Collection> {
        let (base_fill, warm) = match fill {
            Some((f, warm)) => (Some(f), warm),
            None => (None, false),
        };
        let mpath = manifest_path(dir);
        let manifest = store::decode_manifest(&mpath, &fsio::read_file(&mpath)?)?;
        let config = manifest.config.clone();
        let settings = crate::settings::load(dir)?;
        let mut state = State::new(config.dim, &config.vectors);
        let on_disk = settings.main_vectors_on_disk(&config.vectors.main);
        if on_disk {
            state.keep_vectors_on_disk(dir);
        }
        state.set_payloads_on_disk(settings.payloads_on_disk());
        for (key, kind) in &manifest.indexes {
            let path = KeyPath::parse(key).map_err(|e| StorageError::corrupt(&mpath, 0, format!("index key {key:?}: {e}")))?;
            state.declare_index(path, *kind);
        }
        let mut verify_later = None;
        let mut filling = None;
        for (i, &no) in manifest.segments.iter().enumerate() {
            let path = segment_path(dir, no);
            if i == 0 {
                // The first segment, if it is a sorted one (compaction writes them), is used in
                // place: opening reads its header and small sections only.
                if let Some(base) = crate::segment::BaseSegment::open_filled(&path, no, config.dim, base_fill.clone())? {
                    let base = Arc::new(base);
                    if base_fill.is_some() {
                        // Read in place while it fills; placed as the settings say once whole.
                        filling = Some(base.clone());
                    } else if on_disk {
                        verify_later = Some(base.clone());
                    } else {
                        // Its vectors are copied into memory, read whole anyway: check first.
                        base.verify_large()?;
                    }
                    let persisted = crate::segment::read_index_sidecar(&base).unwrap_or_default();
                    if state.attach_base(base.clone(), !on_disk && base_fill.is_none(), persisted) {
                        // Built from the payloads: keep them for the next open (a cache; a
                        // failure only costs the next open the same work).
                        let _ = crate::segment::write_index_sidecar(&base, &state.base_index_bytes());
                    }
                    continue;
                }
                if let Some(f) = &base_fill {
                    // Not a base: it is read whole below, so it must be whole first.
                    f.warm()?;
                }
            }
            // Mapped, not read: a segment may be larger than the memory the process may use.
            let image = quiver_storage::map::MappedFile::open(&path)?;
            let seg = crate::segment::decode_segment(&path, &image, config.dim)?;
            state.apply_segment(seg);
            if i == 0 {
                state.set_base(crate::state::BaseId {
                    segment: no,
                    checksum: crate::segment::segment_checksum(&image),
                    rows: state.n_rows(),
                });
            }
            drop(image);
        }
        remove_strays(dir, &manifest)?;
        let wal_dir = dir.join("wal");
        let (wal, txns) = Wal::open(&wal_dir, manifest.flushed_seq)?;
        let mut last_seq = manifest.flushed_seq;
        for txn in txns {
            for record in &txn.records {
                let op = store::decode_op(record, config.dim)
                    .map_err(|e| StorageError::corrupt(&wal_dir, e.offset as u64, format!("transaction {}: {}", txn.seq, e.reason)))?;
                state.apply(&op, true);
            }
            last_seq = txn.seq;
        }
        // A collection without a main vector has nothing for the graph to index.
        let index = IndexConfig {
            enabled: config.index.enabled && config.dim > 0,
            ..config.index.clone()
        };
        let ann = Ann::new(index, config.metric.score_kind(), config.dim, dir);
        ann.load(&state);
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let periodic = match config.durability {
            Durability::Periodic { interval_ms } => Some(interval_ms),
            Durability::Immediate => None,
        };
        let inner = Arc::new(Inner {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            config,
            writer: Mutex::new(Writer {
                wal,
                manifest,
                last_seq,
                flush_error: std::fs::read_to_string(dir.join(FLUSH_ERROR_FILE)).ok(),
                dropped: false,
            }),
            state: RwLock::new(state),
            rates: Mutex::new(Rates::of(&settings)),
            settings: RwLock::new(settings),
            ann,
            monitor_running: std::sync::atomic::AtomicBool::new(false),
            _stop_syncer: periodic.map(|_| stop_tx),
            remote,
        });
        if let Some(interval_ms) = periodic {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name(format!("quiver-sync-{name}"))
                .spawn(move || loop {
                    // Wakes every interval; ends when the collection (the sender) is dropped.
                    match stop_rx.recv_timeout(Duration::from_millis(interval_ms as u64)) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let Some(inner) = weak.upgrade() else { return };
                    let mut w = inner.writer.lock();
                    if let Err(e) = w.wal.sync() {
                        w.flush_error = Some(e.to_string());
                    }
                })
                .map_err(|e| StorageError::Io {
                    path: dir.to_path_buf(),
                    cause: e,
                })?;
        }
        let c = Collection { inner };
        if let Some(Link::Replica(f)) = &c.inner.remote {
            c.follow(f.clone())?;
        }
        if let Some(base) = verify_later {
            c.verify_in_background(base);
        }
        if let Some(base) = filling.filter(|_| warm) {
            c.warm_in_background(base, !on_disk);
        }
        if c.inner.ann.has_unverified() {
            c.verify_index_in_background();
        }
        c.kick_index();
        Ok(c)
    }

    /// Checks now every checksum of the sections read in place from the base segment (its
    /// vectors, payloads and named vectors: the check a collection with vectors on disk runs
    /// in the background after it opens). Damage found is kept and reported by `info`. Also
    /// does now what follows an open of the index file in the background: placing it in
    /// memory (or not) and checking it (damage there starts a rebuild, not an error).
    pub fn verify_data(&self) -> Result<()> {
        let base = self.inner.state.read().base_segment().cloned();
        if let Some(base) = base {
            if let Err(e) = base.verify_large() {
                self.inner.state.read().note_damage(&e);
                return Err(e.into());
            }
        }
        // The index file is a cache: damage there is repaired by a rebuild, not an error.
        self.settle_index();
        Ok(())
    }

    /// Runs `job` on a thread of low priority named after the collection, which holds only a
    /// weak reference to it (a dropped collection ends what its thread could still do).
    fn in_background(&self, what: &str, job: impl FnOnce(std::sync::Weak<Inner>) + Send + 'static) {
        let weak = Arc::downgrade(&self.inner);
        let _ = std::thread::Builder::new()
            .name(format!("quiver-{what}-{}", self.inner.name))
            .spawn(move || {
                quiver_kernels::quant::lower_thread_priority();
                job(weak)
            });
    }

    /// Places the index file opened in place and checks it ([`Collection::settle_index`]) on
    /// a background thread.
    fn verify_index_in_background(&self) {
        self.in_background("verify-index", |weak| {
            if let Some(inner) = weak.upgrade() {
                Collection { inner }.settle_index();
            }
        });
    }

    /// Puts an index file opened in place where the settings want it (graph and codes
    /// copied into memory unless `hnsw_config.on_disk` / `always_ram` keep them on disk), then
    /// checks its large sections; damage drops the graph and starts its rebuild.
    fn settle_index(&self) {
        let inner = &self.inner;
        let (graph, codes) = {
            let (settings, main) = (inner.settings.read(), &inner.config.vectors.main);
            (!settings.graph_on_disk(main), settings.codes_in_memory(main))
        };
        inner.ann.place(graph, codes);
        if inner.ann.verify_mapped().is_err() && !inner.ann.is_retired() {
            self.kick_index();
        }
    }

    /// Checks the large sections of a base segment read in place (vectors, payloads, named
    /// vectors) on a background thread of low priority; damage is reported by `info`.
    fn verify_in_background(&self, base: Arc<crate::segment::BaseSegment>) {
        self.in_background("verify", move |weak| {
            if let Err(e) = base.verify_large() {
                if let Some(inner) = weak.upgrade() {
                    // Only about the base still in use: a compaction may have replaced
                    // (and removed) this one meanwhile.
                    let st = inner.state.read();
                    if st.base_segment().is_some_and(|b| Arc::ptr_eq(b, &base)) {
                        st.note_damage(e);
                    }
                }
            }
        });
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its configuration.
    pub fn config(&self) -> &CollectionConfig {
        &self.inner.config
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.inner.config.dim
    }

    /// Counts, sizes and settings, for `info` screens and metrics.
    pub fn info(&self) -> CollectionInfo {
        let w = self.inner.writer.lock();
        let st = self.inner.state.read();
        CollectionInfo {
            name: self.inner.name.clone(),
            config: w.manifest.config.clone(),
            points: st.n_alive(),
            dead_rows: st.dead_rows(),
            segments: w.manifest.segments.len(),
            wal_bytes: w.wal.file_bytes(),
            last_seq: w.last_seq,
            flushed_seq: w.manifest.flushed_seq,
            payload_indexes: st.index_summary(),
            kernel_isa: quiver_kernels::isa().name(),
            flush_error: w.flush_error.clone(),
            damage: st.damage().map(str::to_string),
        }
    }

    /// The writer, unless the collection was dropped, is a read-only replica, or lost its
    /// object storage to another writer.
    fn writer(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
        match &self.inner.remote {
            Some(Link::Replica(_)) => return Err(Error::ReadOnly(format!("collection {:?}", self.inner.name))),
            Some(Link::Writer(lw)) => lw.check()?,
            None => {}
        }
        let w = self.inner.writer.lock();
        if w.dropped {
            return Err(Error::CollectionNotFound(self.inner.name.clone()));
        }
        Ok(w)
    }

    /// Called by `Database::drop_collection` before the folder goes: later writes through
    /// handles still held fail with `CollectionNotFound`, the background index job stops, and
    /// no index file is written again.
    pub(crate) fn retire(&self) {
        self.inner.writer.lock().dropped = true;
        self.inner.ann.retire();
        self.close_remote();
    }

    /// On object storage, stops the writer's uploader after it has written what is queued (its
    /// lease is released); later writes through this handle fail.
    pub(crate) fn close_remote(&self) {
        if let Some(Link::Writer(lw)) = &self.inner.remote {
            lw.stop();
        }
    }

    /// The collection's settings (metadata, strict mode, storage hints).
    pub fn settings(&self) -> CollectionSettings {
        self.inner.settings.read().clone()
    }

    /// Changes the settings durably: `f` edits a copy, which is checked, written and only then
    /// made visible (a failed write changes nothing). Strict mode's buckets start full again.
    pub fn update_settings(&self, f: impl FnOnce(&mut CollectionSettings) -> Result<()>) -> Result<()> {
        let w = self.writer()?;
        let mut next = self.inner.settings.read().clone();
        f(&mut next)?;
        if let Some(sm) = &next.strict_mode {
            sm.validate()?;
        }
        crate::settings::save(&self.inner.dir, &next)?;
        self.publish(&w.manifest)?;
        *self.inner.rates.lock() = Rates::of(&next);
        self.inner.state.write().set_payloads_on_disk(next.payloads_on_disk());
        *self.inner.settings.write() = next;
        Ok(())
    }

    /// The strict mode in force (disabled when none was set).
    pub fn strict_mode(&self) -> StrictMode {
        self.inner.settings.read().strict_mode.clone().unwrap_or_default()
    }

    /// Takes `cost` tokens from strict mode's read or write bucket, or refuses with
    /// [`Error::RateLimited`]. Free when no rate limit is set.
    pub fn charge(&self, kind: RateKind, cost: usize) -> Result<()> {
        let mut rates = self.inner.rates.lock();
        let bucket = match kind {
            RateKind::Read => rates.read.as_mut(),
            RateKind::Write => rates.write.as_mut(),
        };
        match bucket {
            Some(b) => b.take_at(cost, std::time::Instant::now(), kind),
            None => Ok(()),
        }
    }

    /// What the payload index on `key` answers, with its options (strict mode's check).
    pub fn payload_index_caps(&self, key: &str) -> Option<crate::strict_mode::IndexCaps> {
        let kind = self.payload_index_kind(key)?;
        let settings = self.inner.settings.read();
        let opts = settings.index_options.get(key);
        let flag = |name: &str, default: bool| {
            opts.and_then(|o| o.get(name))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(default)
        };
        Some(crate::strict_mode::IndexCaps {
            kind,
            lookup: flag("lookup", true),
            range: flag("range", true),
            prefix: flag("prefix", false),
        })
    }

    /// The payload index on `key`, if any (what strict mode's filter check asks).
    pub fn payload_index_kind(&self, key: &str) -> Option<PayloadIndexType> {
        self.inner
            .state
            .read()
            .index_summary()
            .into_iter()
            .find(|(k, ..)| k == key)
            .map(|(_, t, ..)| t)
    }

    /// Points, vector bytes and payload bytes, for strict mode's size limits. Payload bytes
    /// are measured by encoding every live payload: a scan, run only when such a limit is set.
    pub fn size_stats(&self) -> SizeStats {
        let st = self.inner.state.read();
        let (vector_bytes, payload_bytes) = st.byte_sizes();
        SizeStats {
            points: st.n_alive(),
            vector_bytes,
            payload_bytes,
        }
    }

    /// Points currently stored.
    pub fn len(&self) -> usize {
        self.inner.state.read().n_alive()
    }

    /// True when the collection holds no points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
