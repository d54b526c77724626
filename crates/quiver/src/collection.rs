//! One collection: the write path (validate, log, apply, flush), recovery, and the read path
//! (get, scroll, count, exact search).
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

use crate::ann::{Ann, IndexStatus, SearchPath, Work};
use crate::error::{Error, Result};
use crate::filter::{Filter, KeyPath};
use crate::payload_index::{FieldIndex, PayloadIndexType};
use crate::state::State;
use crate::store::{self, Manifest, Op};
use crate::types::*;
use parking_lot::{Mutex, RwLock};
use quiver_storage::{blob, fsio, wal::Wal, StorageError};
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
    Ids(Vec<PointId>),
    Filter(Filter),
}

/// A search request. `limit` results after skipping `offset`.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub vector: Vec<f32>,
    pub limit: usize,
    pub offset: usize,
    pub filter: Option<Filter>,
    /// Cosine / dot: keep scores >= threshold. Euclid / manhattan: keep distances <= threshold.
    pub score_threshold: Option<f32>,
    pub with_payload: bool,
    pub with_vector: bool,
    /// Score every allowed point, even when an index exists (the oracle).
    pub exact: bool,
    /// The index's search list size for this request (default: the collection's `ef`).
    pub ef: Option<usize>,
}

impl SearchRequest {
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
    pub k: f32,
    pub dense_weight: f32,
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
    pub limit: usize,
    pub filter: Option<Filter>,
    pub with_payload: bool,
    pub with_vector: bool,
}

#[derive(Clone, Debug)]
pub struct ScrollPage {
    pub points: Vec<Record>,
    /// The id to pass as `offset` for the next page; `None` at the end.
    pub next_offset: Option<PointId>,
}

/// What `info` reports.
#[derive(Clone, Debug)]
pub struct CollectionInfo {
    pub name: String,
    pub config: CollectionConfig,
    pub points: usize,
    pub dead_rows: usize,
    pub segments: usize,
    pub wal_bytes: u64,
    pub last_seq: u64,
    pub flushed_seq: u64,
    /// (key, type, points indexed, distinct values)
    pub payload_indexes: Vec<(String, PayloadIndexType, u64, usize)>,
    pub kernel_isa: &'static str,
    /// The last background flush failure, if the last flush failed (writes stay durable in
    /// the WAL; the flush is retried).
    pub flush_error: Option<String>,
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
    /// The recall monitor's thread runs.
    monitor_running: std::sync::atomic::AtomicBool,
    /// Dropping this stops the group-commit thread.
    _stop_syncer: Option<mpsc::Sender<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Group commit: make every acknowledged write durable before the handle goes away.
        let _ = self.writer.get_mut().wal.sync();
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

fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join("segments").join(format!("{no:020}.seg"))
}

pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("MANIFEST")
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    fsio::replace_file_atomic(&manifest_path(dir), &store::encode_manifest(m))?;
    Ok(())
}

/// Writes segment `no`; a failed write removes what it left (nothing names it yet).
fn write_segment(dir: &Path, no: u64, image: &[u8]) -> Result<()> {
    let path = segment_path(dir, no);
    if let Err(e) = fsio::write_new_file(&path, image) {
        let _ = fsio::remove_file_if_exists(&path);
        return Err(e.into());
    }
    Ok(())
}

/// Writes the manifest `m` that names the new segment `no`. If that fails, the segment is
/// removed unless the manifest on disk names it after all (the rename happened but the folder's
/// fsync failed): then the collection goes on with that manifest's view on the next open.
fn commit_manifest(dir: &Path, m: &Manifest, no: Option<u64>) -> Result<()> {
    let Err(e) = write_manifest(dir, m) else { return Ok(()) };
    if let Some(no) = no {
        let mpath = manifest_path(dir);
        let named = fsio::read_file(&mpath)
            .ok()
            .and_then(|bytes| store::decode_manifest(&mpath, &bytes).ok())
            .is_some_and(|on_disk| on_disk.segments.contains(&no));
        if !named {
            let _ = fsio::remove_file_if_exists(&segment_path(dir, no));
        }
    }
    Err(e)
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
        let mpath = manifest_path(dir);
        let manifest = store::decode_manifest(&mpath, &fsio::read_file(&mpath)?)?;
        let config = manifest.config.clone();
        let mut state = State::new(config.dim);
        for (key, kind) in &manifest.indexes {
            let path = KeyPath::parse(key).map_err(|e| StorageError::corrupt(&mpath, 0, format!("index key {key:?}: {e}")))?;
            if *kind == PayloadIndexType::Text {
                state.text.push((path, crate::text_index::TextIndex::new()));
            } else {
                state.indexes.fields.push(FieldIndex::new(path, *kind));
            }
        }
        for &no in &manifest.segments {
            let path = segment_path(dir, no);
            let image = blob::read(&path)?;
            let seg = store::decode_segment(&path, &image, config.dim)?;
            drop(image);
            state.apply_segment(seg);
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
        let ann = Ann::new(config.index.clone(), config.metric.score_kind(), config.dim, dir);
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
            ann,
            monitor_running: std::sync::atomic::AtomicBool::new(false),
            _stop_syncer: periodic.map(|_| stop_tx),
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
        c.kick_index();
        Ok(c)
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn config(&self) -> &CollectionConfig {
        &self.inner.config
    }

    pub fn dim(&self) -> usize {
        self.inner.config.dim
    }

    /// Validates and prepares points: dimension, finite values, payload size; normalises for
    /// cosine. Returns the points as they will be stored.
    fn prepare_points(&self, mut points: Vec<Point>) -> Result<Vec<Point>> {
        if points.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if points.len() > BATCH_POINTS_MAX {
            return Err(Error::BatchTooLarge {
                got: points.len(),
                max: BATCH_POINTS_MAX,
            });
        }
        let dim = self.dim();
        let cosine = self.inner.config.metric == Metric::Cosine;
        points.par_iter_mut().try_for_each(|p| -> Result<()> {
            validate_vector(&p.vector, dim, Some(&p.id))?;
            if let Some(payload) = &p.payload {
                let bytes = serde_json::to_vec(payload).expect("a JSON map always serialises").len();
                if bytes > PAYLOAD_BYTES_MAX {
                    return Err(Error::InvalidPayload {
                        reason: format!("{bytes} bytes exceeds the limit of {PAYLOAD_BYTES_MAX}"),
                        point: Some(p.id.to_string()),
                    });
                }
                if payload.is_empty() {
                    p.payload = None;
                }
            }
            if cosine {
                quiver_kernels::normalize(&mut p.vector);
            }
            Ok(())
        })?;
        Ok(points)
    }

    /// Inserts or replaces points, atomically: after a crash either all of them are there or
    /// none. Returns once the batch is durable (per the collection's durability).
    pub fn upsert(&self, points: Vec<Point>) -> Result<WriteAck> {
        let points = self.prepare_points(points)?;
        let mut w = self.writer()?;
        {
            let st = self.inner.state.read();
            if st.n_rows() + points.len() > ROWS_MAX {
                return Err(Error::BatchTooLarge {
                    got: points.len(),
                    max: ROWS_MAX - st.n_rows(),
                });
            }
        }
        let affected = points.len();
        let approx_bytes = points.len() * (self.dim() * 4 + 16);
        if approx_bytes >= BULK_SEGMENT_BYTES {
            return self.bulk_upsert(&mut w, points, affected);
        }
        let seq = self.commit(&mut w, Op::Upsert(points))?;
        drop(w);
        self.kick_index();
        Ok(WriteAck { seq, affected })
    }

    /// A large batch becomes a segment directly: earlier changes are flushed first so that
    /// segment order is write order, then the batch's segment and the manifest naming it are
    /// made durable, and only then is the batch applied in memory and acknowledged.
    fn bulk_upsert(&self, w: &mut Writer, points: Vec<Point>, affected: usize) -> Result<WriteAck> {
        self.flush_locked(w)?;
        let seq = w.last_seq + 1;
        let no = w.manifest.next_segment_no;
        let image = store::encode_segment(self.dim(), points.iter().map(|p| (&p.id, p.vector.as_slice(), &p.payload)), &[]);
        write_segment(&self.inner.dir, no, &image)?;
        drop(image);
        let mut m = w.manifest.clone();
        m.segments.push(no);
        m.next_segment_no = no + 1;
        m.flushed_seq = seq;
        commit_manifest(&self.inner.dir, &m, Some(no))?;
        // The manifest is durable: the batch is committed. Make it visible before anything
        // else can fail; a failure to start the new WAL file is harmless (older transactions
        // in the current file are at or below `flushed_seq` and skipped on replay).
        w.manifest = m;
        w.last_seq = seq;
        self.inner.state.write().apply(&Op::Upsert(points), false);
        if let Err(e) = w.wal.restart_at(seq + 1) {
            self.note_flush_error(w, &e.into());
        }
        self.kick_index();
        Ok(WriteAck { seq, affected })
    }

    /// Logs `op`, applies it, and flushes when the WAL is large. Holds the writer lock.
    fn commit(&self, w: &mut Writer, op: Op) -> Result<u64> {
        if w.wal.file_bytes() >= WAL_BYTES_MAX {
            // Flushes have been failing: one more try, then refuse rather than grow the log.
            if let Err(e) = self.flush_locked(w) {
                self.note_flush_error(w, &e);
                return Err(Error::WalFull {
                    bytes: w.wal.file_bytes(),
                    cause: e.to_string(),
                });
            }
        }
        let seq = w.last_seq + 1;
        let records = store::encode_op(&op, self.dim());
        let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
        let sync = self.inner.config.durability == Durability::Immediate;
        w.wal.append(seq, &refs, sync)?;
        w.last_seq = seq;
        drop(records);
        {
            let mut st = self.inner.state.write();
            st.apply(&op, true);
            if st.dead_rows() > st.n_alive.max(4096) {
                self.compact_state(&mut st);
            }
        }
        if w.wal.file_bytes() >= WAL_FLUSH_BYTES {
            // The write is durable in the WAL already; a failed flush is retried next time and
            // reported by `info`, it does not fail the acknowledged write.
            if let Err(e) = self.flush_locked(w) {
                self.note_flush_error(w, &e);
            }
        }
        Ok(seq)
    }

    /// Writes every change since the last flush into a new segment and empties the WAL.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.writer()?;
        self.flush_locked(&mut w).inspect_err(|e| self.note_flush_error(&mut w, e))
    }

    fn flush_locked(&self, w: &mut Writer) -> Result<()> {
        let dir = &self.inner.dir;
        if w.manifest.segments.len() >= SEGMENTS_MAX {
            return self.compact_locked(w);
        }
        let image = {
            let st = self.inner.state.read();
            if st.dirty.is_empty() {
                if w.manifest.flushed_seq == w.last_seq {
                    return Ok(());
                }
                None
            } else {
                let mut live = Vec::new();
                let mut tombstones = Vec::new();
                for id in &st.dirty {
                    match st.id_to_row.get(id) {
                        Some(&row) => live.push(row),
                        None => tombstones.push(*id),
                    }
                }
                Some(store::encode_segment(
                    st.dim,
                    live.iter().map(|&r| (&st.ids[r as usize], st.vector(r), &st.payloads[r as usize])),
                    &tombstones,
                ))
            }
        };
        let mut m = w.manifest.clone();
        let mut new_segment = None;
        if let Some(image) = image {
            let no = m.next_segment_no;
            write_segment(dir, no, &image)?;
            m.segments.push(no);
            m.next_segment_no = no + 1;
            new_segment = Some(no);
        }
        m.flushed_seq = w.last_seq;
        commit_manifest(dir, &m, new_segment)?;
        w.manifest = m;
        // The segment is durable and named: the dirty points are safe even if the new WAL
        // file cannot be started (replay skips what the manifest covers).
        self.inner.state.write().dirty.clear();
        w.wal.restart_at(w.last_seq + 1)?;
        self.clear_flush_error(w);
        Ok(())
    }

    /// Records a flush failure: in memory for `info`, and in `FLUSH_ERROR` (best effort: the
    /// disk may be full) so that a new process reports it too until a flush succeeds.
    fn note_flush_error(&self, w: &mut Writer, e: &Error) {
        let msg = e.to_string();
        let _ = fsio::replace_file_atomic(&self.inner.dir.join(FLUSH_ERROR_FILE), msg.as_bytes());
        w.flush_error = Some(msg);
    }

    fn clear_flush_error(&self, w: &mut Writer) {
        if w.flush_error.take().is_some() {
            let _ = fsio::remove_file_if_exists(&self.inner.dir.join(FLUSH_ERROR_FILE));
        }
    }

    /// Rewrites the collection as one segment of its live points, reclaiming the space of
    /// deleted and overwritten points on disk and in memory.
    pub fn compact(&self) -> Result<()> {
        let mut w = self.writer()?;
        self.compact_locked(&mut w).inspect_err(|e| self.note_flush_error(&mut w, e))
    }

    fn compact_locked(&self, w: &mut Writer) -> Result<()> {
        let dir = &self.inner.dir;
        let no = w.manifest.next_segment_no;
        {
            let mut st = self.inner.state.write();
            self.compact_state(&mut st);
            let image = store::encode_segment(
                st.dim,
                (0..st.n_rows()).map(|r| (&st.ids[r], st.vector(r as u32), &st.payloads[r])),
                &[],
            );
            write_segment(dir, no, &image)?;
        }
        let old = std::mem::take(&mut w.manifest.segments);
        let mut m = w.manifest.clone();
        m.segments = vec![no];
        m.next_segment_no = no + 1;
        m.flushed_seq = w.last_seq;
        if let Err(e) = commit_manifest(dir, &m, Some(no)) {
            w.manifest.segments = old;
            return Err(e);
        }
        w.manifest = m;
        // Everything is in the new segment now, and the old ones are garbage: clear the dirty
        // set and remove them before anything else can fail (one that cannot be removed now
        // is removed by the next open, which drops segments no manifest names).
        self.inner.state.write().dirty.clear();
        let mut removed: Result<()> = Ok(());
        for o in old {
            if let Err(e) = fsio::remove_file_if_exists(&segment_path(dir, o)) {
                removed = removed.and(Err(e.into()));
            }
        }
        removed?;
        fsio::fsync_dir(&dir.join("segments"))?;
        w.wal.restart_at(w.last_seq + 1)?;
        self.clear_flush_error(w);
        Ok(())
    }

    /// Resolves a selector to the ids of live points (in id order for filters).
    fn resolve(&self, selector: &PointSelector) -> Vec<PointId> {
        match selector {
            PointSelector::Ids(ids) => ids.clone(),
            PointSelector::Filter(f) => {
                let st = self.inner.state.read();
                let plan = st.plan(Some(f));
                let mut ids = Vec::with_capacity(st.plan_len(&plan));
                quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| ids.push(st.ids[r as usize]));
                ids
            }
        }
    }

    fn check_ids(ids: &[PointId]) -> Result<()> {
        if ids.len() > BATCH_POINTS_MAX {
            return Err(Error::BatchTooLarge {
                got: ids.len(),
                max: BATCH_POINTS_MAX,
            });
        }
        Ok(())
    }

    /// Runs a selector-based write: resolves the selector under the writer lock (so no write can
    /// slip between resolving and logging), then commits.
    fn write_selected(&self, selector: &PointSelector, make: impl FnOnce(Vec<PointId>) -> Op) -> Result<WriteAck> {
        let mut w = self.writer()?;
        let ids = self.resolve(selector);
        Self::check_ids(&ids)?;
        let affected = {
            let st = self.inner.state.read();
            ids.iter().filter(|id| st.id_to_row.contains_key(id)).count()
        };
        if ids.is_empty() {
            return Ok(WriteAck {
                seq: w.last_seq,
                affected: 0,
            });
        }
        let seq = self.commit(&mut w, make(ids))?;
        Ok(WriteAck { seq, affected })
    }

    /// Deletes points by id or by filter. `affected` counts points that existed.
    pub fn delete(&self, selector: &PointSelector) -> Result<WriteAck> {
        self.write_selected(selector, Op::Delete)
    }

    /// Merges `payload`'s keys into the selected points' payloads.
    pub fn set_payload(&self, selector: &PointSelector, payload: Payload) -> Result<WriteAck> {
        check_payload(&payload)?;
        self.write_selected(selector, |ids| Op::SetPayload { ids, payload })
    }

    /// Replaces the selected points' payloads with `payload`.
    pub fn overwrite_payload(&self, selector: &PointSelector, payload: Payload) -> Result<WriteAck> {
        check_payload(&payload)?;
        self.write_selected(selector, |ids| Op::OverwritePayload { ids, payload })
    }

    /// Removes keys (dotted paths reach into objects) from the selected points' payloads.
    pub fn delete_payload_keys(&self, selector: &PointSelector, keys: Vec<String>) -> Result<WriteAck> {
        self.write_selected(selector, |ids| Op::DeletePayloadKeys { ids, keys })
    }

    /// Removes every payload key of the selected points.
    pub fn clear_payload(&self, selector: &PointSelector) -> Result<WriteAck> {
        self.write_selected(selector, |ids| Op::ClearPayload { ids })
    }

    /// Creates (or replaces) a payload index on `key`; the schema change is durable on return.
    pub fn create_payload_index(&self, key: &str, kind: PayloadIndexType) -> Result<()> {
        let path = KeyPath::parse(key).map_err(|e| Error::InvalidRequest(format!("index key: {e}")))?;
        let mut w = self.writer()?;
        let mut m = w.manifest.clone();
        m.indexes.retain(|(k, t)| !(k == key && *t == kind));
        m.indexes.push((key.to_string(), kind));
        write_manifest(&self.inner.dir, &m)?;
        w.manifest = m;
        let mut st = self.inner.state.write();
        if kind == PayloadIndexType::Text {
            st.add_text_index(path);
            return Ok(());
        }
        st.indexes.fields.retain(|f| !(f.key.text == key && f.kind == kind));
        let mut index = FieldIndex::new(path, kind);
        for (row, p) in st.payloads.iter().enumerate() {
            if let Some(p) = p {
                index.insert(row as u32, p);
            }
        }
        st.indexes.fields.push(index);
        Ok(())
    }

    /// Drops every payload index on `key`.
    pub fn drop_payload_index(&self, key: &str) -> Result<()> {
        let mut w = self.writer()?;
        if !w.manifest.indexes.iter().any(|(k, _)| k == key) {
            return Err(Error::IndexNotFound(key.to_string()));
        }
        let mut m = w.manifest.clone();
        m.indexes.retain(|(k, _)| k != key);
        write_manifest(&self.inner.dir, &m)?;
        w.manifest = m;
        let mut st = self.inner.state.write();
        st.indexes.fields.retain(|f| f.key.text != key);
        st.text.retain(|(k, _)| k.text != key);
        Ok(())
    }

    /// The `limit` best points for `query` by BM25 over the full-text index on `key` (the first
    /// text index when `None`), among points matching `filter`; scores are BM25 scores.
    pub fn search_text(
        &self,
        query: &str,
        key: Option<&str>,
        limit: usize,
        filter: Option<&Filter>,
        with_payload: bool,
    ) -> Result<Vec<ScoredPoint>> {
        if limit == 0 || limit > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!("limit must be 1..={SEARCH_LIMIT_MAX}")));
        }
        let st = self.inner.state.read();
        let Some((index_key, t)) = st.text.iter().find(|(k, _)| key.is_none_or(|key| k.text == key)) else {
            return Err(Error::InvalidRequest(match key {
                Some(k) => format!("no full-text index on {k:?}; create one (payload index type text)"),
                None => "this collection has no full-text index; create one (payload index type text)".into(),
            }));
        };
        // Over-fetch when filtering, doubling until enough points pass or none are left.
        let mut fetch = if filter.is_some() { limit * 4 } else { limit };
        loop {
            let found = t.bm25(query, fetch).map_err(|reason| Error::TextIndexUnavailable {
                key: index_key.text.clone(),
                reason,
            })?;
            let exhausted = found.len() < fetch;
            let hits: Vec<ScoredPoint> = found
                .into_iter()
                .filter_map(|(id, score)| {
                    let row = *st.id_to_row.get(&id)?;
                    if filter.is_some_and(|f| !st.row_matches(row, f)) {
                        return None;
                    }
                    let r = Self::record(&st, row, with_payload, false);
                    Some(ScoredPoint {
                        id,
                        score,
                        payload: r.payload,
                        vector: None,
                    })
                })
                .take(limit)
                .collect();
            if hits.len() >= limit || exhausted {
                return Ok(hits);
            }
            fetch *= 2;
        }
    }

    /// Hybrid search: the dense ranking of `req` and the BM25 ranking of `text` (each `prefetch`
    /// deep, both under `req.filter`) fused by reciprocal rank fusion; scores are fused scores.
    /// When `text` names a rare identifier (an error code, a part number: see
    /// [`crate::text_index::TextIndex::rare_identifiers`]), the fused points that contain it
    /// come first (their fused score raised by the best one), in fused order: rank fusion alone lets the dense side's generic matches ("how
    /// do I fix") outrank the only passage with the identifier.
    pub fn hybrid(&self, req: &SearchRequest, text: &str, fusion: &Fusion, prefetch: usize) -> Result<Vec<ScoredPoint>> {
        let depth = prefetch.max(req.limit + req.offset);
        let mut dense_req = req.clone();
        dense_req.limit = depth;
        dense_req.offset = 0;
        dense_req.with_payload = false;
        dense_req.with_vector = false;
        dense_req.score_threshold = None;
        let dense: Vec<PointId> = self.search(&dense_req)?.into_iter().map(|h| h.id).collect();
        let sparse: Vec<PointId> = self
            .search_text(text, None, depth, req.filter.as_ref(), false)?
            .into_iter()
            .map(|h| h.id)
            .collect();
        let mut fused = crate::text_index::rrf(&[(fusion.dense_weight, dense), (fusion.text_weight, sparse)], fusion.k, usize::MAX);
        let st = self.inner.state.read();
        if let Some((_, t)) = st.text.first() {
            let rare = t.rare_identifiers(text);
            if !rare.is_empty() {
                let holders: std::collections::HashSet<PointId> =
                    rare.iter().filter_map(|term| t.matching(term, false)).flatten().collect();
                // Holders get the best fused score on top of their own, so they come first, in
                // fused order, and scores still fall down the list.
                let top = fused.first().map_or(0.0, |f| f.1);
                for (id, score) in fused.iter_mut() {
                    if holders.contains(id) {
                        *score += top;
                    }
                }
                fused.sort_by(|a, b| b.1.total_cmp(&a.1));
            }
        }
        fused.truncate(req.limit + req.offset);
        Ok(fused
            .into_iter()
            .skip(req.offset)
            .filter_map(|(id, score)| {
                let row = *st.id_to_row.get(&id)?;
                let r = Self::record(&st, row, req.with_payload, req.with_vector);
                Some(ScoredPoint {
                    id,
                    score,
                    payload: r.payload,
                    vector: r.vector,
                })
            })
            .collect())
    }

    fn record(st: &State, row: u32, with_payload: bool, with_vector: bool) -> Record {
        Record {
            id: st.ids[row as usize],
            payload: if with_payload {
                Some(st.payloads[row as usize].clone().unwrap_or_default())
            } else {
                None
            },
            vector: if with_vector { Some(st.vector(row).to_vec()) } else { None },
        }
    }

    /// The points with these ids, in the order asked, skipping ids that do not exist.
    pub fn get(&self, ids: &[PointId], with_payload: bool, with_vector: bool) -> Result<Vec<Record>> {
        Self::check_ids(ids)?;
        let st = self.inner.state.read();
        Ok(ids
            .iter()
            .filter_map(|id| st.id_to_row.get(id).map(|&r| Self::record(&st, r, with_payload, with_vector)))
            .collect())
    }

    /// Counts points, optionally only those matching `filter`.
    pub fn count(&self, filter: Option<&Filter>) -> usize {
        let st = self.inner.state.read();
        let plan = st.plan(filter);
        st.plan_len(&plan)
    }

    /// One page of points in id order. Pages are stable: a point that exists throughout is
    /// returned exactly once across the pages.
    pub fn scroll(&self, req: &ScrollRequest) -> Result<ScrollPage> {
        if req.limit == 0 || req.limit > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!("scroll limit must be 1..={SEARCH_LIMIT_MAX}")));
        }
        let st = self.inner.state.read();
        let mut points = Vec::with_capacity(req.limit.min(1024));
        let mut next_offset = None;
        let range = match req.offset {
            Some(start) => st.id_to_row.range(start..),
            None => st.id_to_row.range(..),
        };
        for (&id, &row) in range {
            if let Some(f) = &req.filter {
                if !st.row_matches(row, f) {
                    continue;
                }
            }
            if points.len() == req.limit {
                next_offset = Some(id);
                break;
            }
            points.push(Self::record(&st, row, req.with_payload, req.with_vector));
        }
        Ok(ScrollPage { points, next_offset })
    }

    /// Checks a search request without running it: the errors `search` would return for it.
    /// (`search_batch` refuses the whole batch if one request is bad; callers that batch
    /// requests from different sources check each first.)
    pub fn check_search(&self, req: &SearchRequest) -> Result<()> {
        validate_vector(&req.vector, self.dim(), None)?;
        let want = req.limit.saturating_add(req.offset);
        if req.limit == 0 || want > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!(
                "limit must be at least 1 and limit + offset at most {SEARCH_LIMIT_MAX}"
            )));
        }
        if let Some(ef) = req.ef.filter(|ef| !(1..=crate::types::EF_MAX).contains(ef)) {
            return Err(Error::InvalidRequest(format!(
                "ef must be between 1 and {}, got {ef}",
                crate::types::EF_MAX
            )));
        }
        Ok(())
    }

    fn prepare_query(&self, req: &SearchRequest) -> Result<Vec<f32>> {
        self.check_search(req)?;
        let mut q = req.vector.clone();
        if self.inner.config.metric == Metric::Cosine {
            quiver_kernels::normalize(&mut q);
        }
        Ok(q)
    }

    fn finish_hits(&self, st: &State, req: &SearchRequest, hits: Vec<quiver_kernels::Scored>) -> Vec<ScoredPoint> {
        let metric = self.inner.config.metric;
        hits.into_iter()
            .skip(req.offset)
            .map(|h| (h.row, metric.user_score(h.score)))
            .filter(|&(_, score)| match req.score_threshold {
                None => true,
                Some(t) if metric.higher_is_better() => score >= t,
                Some(t) => score <= t,
            })
            .map(|(row, score)| {
                let r = Self::record(st, row, req.with_payload, req.with_vector);
                ScoredPoint {
                    id: r.id,
                    score,
                    payload: r.payload,
                    vector: r.vector,
                }
            })
            .collect()
    }

    fn search_in(&self, st: &State, req: &SearchRequest, query: &[f32]) -> Vec<ScoredPoint> {
        self.search_traced(st, req, query).0
    }

    fn search_traced(&self, st: &State, req: &SearchRequest, query: &[f32]) -> (Vec<ScoredPoint>, SearchPath) {
        let k = req.limit + req.offset;
        let mut path = None;
        if req.exact {
            path = Some(SearchPath::Exact {
                scored: 0,
                reason: "the request asked for exact search",
            });
        } else {
            let (hits, sampled) = self.inner.ann.search(st, req.filter.as_ref(), query, k, req.ef, &mut path);
            if sampled {
                self.kick_monitor();
            }
            if let Some(hits) = hits {
                return (self.finish_hits(st, req, hits), path.expect("the index names its path"));
            }
        }
        let plan = st.plan(req.filter.as_ref());
        let hits = quiver_kernels::scan_top_k(
            self.inner.config.metric.score_kind(),
            query,
            &st.vectors,
            st.dim,
            plan.allowed(st),
            k,
        );
        let scored = st.plan_len(&plan);
        let reason = match path {
            Some(SearchPath::Exact { reason, .. }) => reason,
            _ => "exact",
        };
        (self.finish_hits(st, req, hits), SearchPath::Exact { scored, reason })
    }

    /// Searches like [`Collection::search`] and also says how the answer was found.
    pub fn search_explained(&self, req: &SearchRequest) -> Result<(Vec<ScoredPoint>, SearchPath)> {
        let query = self.prepare_query(req)?;
        let st = self.inner.state.read();
        Ok(self.search_traced(&st, req, &query))
    }

    /// Measures the index's recall@`k` on `queries` now, on this thread, as the recall monitor
    /// does in the background on sampled searches (each query answered exactly and at every
    /// `ef` of the monitor's ladder), and records the measurements: searches that name no `ef`
    /// use them at once. For operators who know their typical queries, and for tests.
    pub fn calibrate_recall(&self, queries: &[Vec<f32>], k: usize) -> Result<Vec<crate::RecallEstimate>> {
        for q in queries {
            let query = self.prepare_query(&SearchRequest::new(q.clone(), k))?;
            let recalls = self.inner.ann.check_recall(&self.inner.state, &crate::monitor::Sample { query, k });
            self.inner.ann.monitor.record(&recalls, Duration::ZERO);
        }
        Ok(self.inner.ann.monitor.estimates())
    }

    /// How good an approximate answer to `req` is: recall@k of `hits` against an exact scan
    /// (by score, so ties between equal vectors count as found). What `quiver explain` reports
    /// for a search that ran on the graph.
    pub fn recall_of(&self, req: &SearchRequest, hits: &[ScoredPoint]) -> Result<f64> {
        let mut exact = req.clone();
        exact.exact = true;
        let want = self.search(&exact)?;
        let higher = self.inner.config.metric.higher_is_better();
        // Scores as "higher is better" for the shared recall rule.
        let key = |s: f32| if higher { s } else { -s };
        let want: Vec<f32> = want.iter().map(|h| key(h.score)).collect();
        let got: Vec<f32> = hits.iter().map(|h| key(h.score)).collect();
        Ok(crate::monitor::recall(&want, &got))
    }

    /// Exact nearest neighbours of one query: every allowed point is scored.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        let query = self.prepare_query(req)?;
        let st = self.inner.state.read();
        Ok(self.search_in(&st, req, &query))
    }

    /// Exact search for many queries at once. Unfiltered queries with one `limit` share a
    /// matrix product; the others run in parallel, one scan each.
    pub fn search_batch(&self, reqs: &[SearchRequest]) -> Result<Vec<Vec<ScoredPoint>>> {
        let queries: Vec<Vec<f32>> = reqs.iter().map(|r| self.prepare_query(r)).collect::<Result<_>>()?;
        let st = self.inner.state.read();
        let shared_k = reqs.first().map(|r| r.limit + r.offset);
        let indexed = st.n_alive >= self.inner.config.index.full_scan_threshold && self.inner.ann.status(&st).nodes > 0;
        let gemm_ok = !indexed && reqs.iter().all(|r| r.filter.is_none() && Some(r.limit + r.offset) == shared_k);
        if !gemm_ok {
            // One search per query, each under its own hold of the state's read lock: a writer
            // waits for one search, not for the whole batch (and readers queued behind it wait
            // no longer either).
            drop(st);
            return Ok(reqs
                .par_iter()
                .zip(queries.par_iter())
                .map(|(r, q)| {
                    let st = self.inner.state.read();
                    self.search_in(&st, r, q)
                })
                .collect());
        }
        if !reqs.is_empty() {
            let flat: Vec<f32> = queries.concat();
            let hits = quiver_kernels::batch_top_k(
                self.inner.config.metric.score_kind(),
                &flat,
                &st.vectors,
                st.dim,
                quiver_kernels::Allowed::Mask(&st.alive),
                shared_k.unwrap_or(0),
            );
            return Ok(hits.into_iter().zip(reqs).map(|(h, r)| self.finish_hits(&st, r, h)).collect());
        }
        Ok(Vec::new())
    }

    pub fn info(&self) -> CollectionInfo {
        let w = self.inner.writer.lock();
        let st = self.inner.state.read();
        CollectionInfo {
            name: self.inner.name.clone(),
            config: self.inner.config.clone(),
            points: st.n_alive,
            dead_rows: st.dead_rows(),
            segments: w.manifest.segments.len(),
            wal_bytes: w.wal.file_bytes(),
            last_seq: w.last_seq,
            flushed_seq: w.manifest.flushed_seq,
            payload_indexes: st
                .indexes
                .fields
                .iter()
                .map(|f| (f.key.text.clone(), f.kind, f.points(), f.distinct_values()))
                .chain(
                    st.text
                        .iter()
                        .map(|(k, t)| (k.text.clone(), PayloadIndexType::Text, t.len() as u64, 0)),
                )
                .collect(),
            kernel_isa: quiver_kernels::isa().name(),
            flush_error: w.flush_error.clone(),
        }
    }

    /// The approximate index: nodes, points not covered yet, whether a build runs.
    pub fn index_status(&self) -> IndexStatus {
        let st = self.inner.state.read();
        self.inner.ann.status(&st)
    }

    /// Builds or extends the index now, on this thread (and the rayon pool), until it covers
    /// every point, even below the full-scan threshold. Waits for a background build first.
    pub fn build_index(&self) -> Result<()> {
        if !self.inner.config.index.enabled {
            return Err(Error::InvalidRequest("the index of this collection is disabled".into()));
        }
        loop {
            self.inner.ann.wait_idle();
            if self.inner.ann.try_start() {
                break;
            }
        }
        let result = (|| {
            while self.index_step(true)? {}
            Ok(())
        })();
        self.inner.ann.finish();
        result
    }

    /// Blocks until no background index build runs (for tests and tools; searches never need
    /// to wait, they are exact for points the index does not cover yet).
    pub fn wait_for_index(&self) {
        self.inner.ann.wait_idle();
    }

    /// The writer, unless the collection was dropped.
    fn writer(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
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
    }

    /// Starts the recall monitor's thread when sampled queries wait and it does not run. The
    /// thread checks them one at a time (see `monitor.rs`) and ends when none is left.
    fn kick_monitor(&self) {
        if self.inner.monitor_running.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("quiver-recall-{}", self.inner.name))
            .spawn(move || loop {
                quiver_kernels::quant::lower_thread_priority();
                let ann = &inner.ann;
                while let Some(sample) = ann.monitor.take() {
                    if ann.is_retired() {
                        break;
                    }
                    let start = std::time::Instant::now();
                    let recalls = ann.check_recall(&inner.state, &sample);
                    ann.monitor.record(&recalls, start.elapsed());
                }
                inner.monitor_running.store(false, std::sync::atomic::Ordering::Release);
                // A sample offered after the last `take` but before the flag dropped would
                // wait for the next offer; look once more.
                if !ann.monitor.has_pending() || inner.monitor_running.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    return;
                }
            });
        if spawned.is_err() {
            self.inner.monitor_running.store(false, std::sync::atomic::Ordering::Release);
        }
    }

    /// Starts a background build step when the index needs one and none runs.
    fn kick_index(&self) {
        let work = {
            let st = self.inner.state.read();
            self.inner.ann.work(&st, false)
        };
        if work == Work::None || !self.inner.ann.try_start() {
            return;
        }
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("quiver-index-{}", self.inner.name))
            .spawn(move || {
                quiver_kernels::quant::lower_thread_priority();
                let c = Collection { inner };
                loop {
                    match crate::ann::build_pool().install(|| c.index_step(false)) {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            *c.inner.ann.last_error.lock() = Some(e.to_string());
                            break;
                        }
                    }
                }
                c.inner.ann.finish();
            });
        if spawned.is_err() {
            self.inner.ann.finish();
        }
    }

    /// One build step: a full build or an extension by the uncovered points. False when there
    /// was nothing to do.
    fn index_step(&self, eager: bool) -> Result<bool> {
        let ann = &self.inner.ann;
        if ann.is_retired() {
            return Ok(false);
        }
        let (work, snap, recode_first) = {
            let st = self.inner.state.read();
            match ann.work(&st, eager) {
                Work::None => return Ok(false),
                Work::Recode => {
                    let Some(nodes) = ann.snapshot_nodes(&st) else { return Ok(false) };
                    drop(st);
                    let done = ann.recode(nodes, &[]);
                    if done && ann.note_added(0, true) {
                        ann.save()?;
                    }
                    return Ok(done);
                }
                Work::Full => (Work::Full, Ann::snapshot_full(&st), None),
                Work::Extend => match ann.snapshot_tail(&st) {
                    Some(s) => {
                        // New points the codes cannot tell apart: retrain the codes first.
                        let nodes = if ann.tail_drifts(&s) { ann.snapshot_nodes(&st) } else { None };
                        (Work::Extend, s, nodes)
                    }
                    None => (Work::Full, Ann::snapshot_full(&st), None),
                },
            }
        };
        if let Some(nodes) = recode_first {
            ann.recode(nodes, snap.vectors());
        }
        let added = snap.len();
        if work == Work::Full {
            let hnsw = ann.build(&snap);
            let st = self.inner.state.read();
            if !ann.install_full(&st, hnsw, snap) {
                return Ok(true);
            }
        } else {
            ann.extend(snap, |f| f(&self.inner.state.read()));
        }
        if ann.note_added(added, work == Work::Full || eager) {
            ann.save()?;
        }
        Ok(true)
    }

    /// Compacts the in-memory rows, remapping the index's nodes in the same step.
    fn compact_state(&self, st: &mut State) {
        let before = self.inner.ann.before_compact(st);
        st.compact_rows();
        self.inner.ann.after_compact(before, st);
    }

    /// Points currently stored.
    pub fn len(&self) -> usize {
        self.inner.state.read().n_alive
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check_payload(p: &Payload) -> Result<()> {
    let bytes = serde_json::to_vec(p).expect("a JSON map always serialises").len();
    if bytes > PAYLOAD_BYTES_MAX {
        return Err(Error::InvalidPayload {
            reason: format!("{bytes} bytes exceeds the limit of {PAYLOAD_BYTES_MAX}"),
            point: None,
        });
    }
    Ok(())
}

/// Removes files a crash left behind: segments the manifest does not name (written before the
/// manifest that would have named them) and temporary files.
fn remove_strays(dir: &Path, m: &Manifest) -> Result<()> {
    let segdir = dir.join("segments");
    let mut removed = false;
    for entry in std::fs::read_dir(&segdir).map_err(StorageError::io(&segdir))? {
        let entry = entry.map_err(StorageError::io(&segdir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let known = name
            .strip_suffix(".seg")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|no| m.segments.contains(&no));
        if !known {
            fsio::remove_file_if_exists(&entry.path())?;
            removed = true;
        }
    }
    if removed {
        fsio::fsync_dir(&segdir)?;
    }
    fsio::remove_file_if_exists(&dir.join("MANIFEST.tmp"))?;
    Ok(())
}
