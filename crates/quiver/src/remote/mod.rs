//! Collections whose home is object storage (`Database::open_url`, `quiver serve --storage`).
//!
//! The object store is the source of truth; the data folder is a cache of it, rebuilt from the
//! store whenever a collection opens. Under the bucket's prefix, each collection has:
//!
//! - `collections/<name>/log/<n>`: its log (see [`log`]), entries created only if absent.
//!   Every write is a transaction in a `Txns` entry (one group commit); a flush or compaction
//!   uploads its files, then appends a `Checkpoint` naming them with the manifest and settings.
//!   The collection is the last checkpoint plus the transactions after it.
//! - `collections/<name>/files/<writer>-<crc>-<file>`: segments, their index sidecars and index
//!   files, immutable, under names no other writer uses.
//! - `collections/<name>/lease`: the writer's heartbeat, so that a second writer is refused
//!   while the first is alive (unless it takes over).
//!
//! Fencing: a writer opening a collection appends an `Open` entry. An older writer's next
//! append finds that place taken (its create fails), sees another writer's id there, and
//! stops: it cannot commit anything after the takeover, and everything it committed before is
//! in the log the new writer replayed.

pub(crate) mod follower;
pub(crate) mod log;
pub(crate) mod snapshots;
mod writer;

pub(crate) use follower::Follower;
pub(crate) use writer::LogWriter;

use crate::error::{Error, Result};
use crate::store;
use log::{Entry, FileRef, Logged};
use quiver_storage::fill::Fill;
use quiver_storage::object::{Bucket, Created};
use quiver_storage::{fsio, StorageError};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How a database on object storage behaves.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// Serve reads only, following the writer's log (a replica).
    pub read_only: bool,
    /// Take the collections over from a writer that may still hold them (its lease is fresh).
    pub takeover: bool,
    /// How long a group commit waits for more writes before uploading them as one entry.
    pub group_commit: Duration,
    /// How often a replica looks for new log entries.
    pub poll: Duration,
    /// A writer refreshes its lease every third of this; a lease older than this is expired.
    pub lease: Duration,
    /// The most bytes the cache folder's collections may take: after an open, the folders of
    /// collections not open are removed, least recently opened first (open ones stay: their
    /// files are in use). `None`: no cap.
    pub cache_max_bytes: Option<u64>,
    /// Acknowledge a write once it is in the local WAL (fsynced as the collection's durability
    /// says) and upload it in the background: faster, but a write acknowledged and not yet
    /// uploaded is lost with the node's disk, or when another writer takes over first.
    pub wal_local: bool,
    /// A checkpoint stays the floor of the log (nothing after it is removed) until a newer one
    /// is this old: a replica that reads the log at least this often never finds entries gone.
    pub garbage_grace: Duration,
    /// Replicas: how a collection whose base segment is not in the cache opens.
    pub cold_start: ColdStart,
}

/// How a replica opens a collection whose base segment (the bulk of its data) is not in its
/// cache. Writers always download everything first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColdStart {
    /// Download every file, then open.
    Eager,
    /// Open at once: the base's pages are fetched from the store as searches read them, and
    /// the rest downloads in the background; then the vectors are placed as the settings say.
    #[default]
    Lazy,
    /// Open at once and fetch the base's pages only as searches read them, never the rest
    /// (the cache holds what was read; the vectors stay in the file). For collections much
    /// larger than the queries touch; an exact search still reads every vector.
    OnDemand,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            read_only: false,
            takeover: false,
            wal_local: false,
            cache_max_bytes: None,
            group_commit: Duration::from_millis(20),
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(10),
            garbage_grace: Duration::from_secs(60),
            cold_start: ColdStart::default(),
        }
    }
}

/// Where a collection's state is, as a reader sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteStatus {
    /// The store's URL.
    pub url: String,
    /// `writer` or `replica`.
    pub role: &'static str,
    /// The last log entry this process wrote or applied.
    pub entry: u64,
    /// Replicas: milliseconds since the log was last read whole (every commit older than this
    /// is visible here).
    pub staleness_ms: Option<u64>,
    /// Writers: acknowledgement latency of the recent writes, median (milliseconds).
    pub ack_p50_ms: Option<f64>,
    /// Writers: the same, 99th percentile.
    pub ack_p99_ms: Option<f64>,
    /// Writes acknowledged through the store since open.
    pub acked_writes: u64,
    /// The last error talking to the store, while it stands.
    pub error: Option<String>,
    /// A replica's lazy cold start: the bytes of the base segment (`None` when the base was
    /// in the cache already).
    pub base_bytes: Option<u64>,
    /// The same: the base's bytes present in the cache so far.
    pub base_present_bytes: Option<u64>,
    /// The same: the bytes fetched from the store (pages fetched twice count twice).
    pub base_fetched_bytes: Option<u64>,
}

/// A bucket (and prefix) holding a database's collections.
pub(crate) struct Home {
    pub bucket: Bucket,
    pub options: RemoteOptions,
    /// This process's writer id (every entry it appends carries it).
    pub writer_id: [u8; 16],
}

impl Home {
    /// `writer_id` is the node's: kept in its cache folder, so that a node restarting on the
    /// same folder is the same writer (its own lease does not stop it, and its local WAL's
    /// transactions are its own).
    pub fn new(bucket: Bucket, options: RemoteOptions, writer_id: [u8; 16]) -> Home {
        Home {
            bucket,
            options,
            writer_id,
        }
    }

    pub fn prefix(name: &str) -> String {
        format!("collections/{name}")
    }

    /// The collections in the store.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in self.bucket.list_folders("collections")? {
            if crate::types::validate_name(&name).is_ok() && self.exists(&name)? {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Whether the store holds a collection of that name (its log has an entry).
    pub fn exists(&self, name: &str) -> Result<bool> {
        Ok(!self.bucket.list(&format!("{}/log", Home::prefix(name)), None)?.is_empty())
    }

    /// Publishes a collection whose files were just created in `dir` (manifest and settings):
    /// its log's entry 0. Exactly one of racing creators wins; the others get
    /// `CollectionExists`.
    pub fn create(&self, name: &str, dir: &Path) -> Result<()> {
        let entry = Entry::Checkpoint {
            manifest: fsio::read_file(&crate::collection::manifest_path(dir))?,
            settings: read_optional(&dir.join(crate::settings::SETTINGS_FILE))?,
            files: Vec::new(),
        };
        let key = log::entry_key(&Home::prefix(name), 0);
        match self.bucket.create(&key, log::encode(&self.writer_id, &entry))? {
            Created::New => Ok(()),
            Created::Exists => Err(Error::CollectionExists(name.to_string())),
        }
    }

    /// Deletes every object of a collection (its log first, so it stops existing at once).
    pub fn delete(&self, name: &str) -> Result<()> {
        let prefix = Home::prefix(name);
        for sub in ["log", "files", "lease"] {
            for o in self.bucket.list(&format!("{prefix}/{sub}"), None)? {
                self.bucket.delete(&o.key)?;
            }
        }
        Ok(())
    }

    /// Refuses to open `name` for writing while another writer's lease is fresh (by the
    /// store's clock against ours: a lease is a hint for people, the log is the fence).
    pub fn check_lease(&self, name: &str) -> Result<()> {
        let key = format!("{}/lease", Home::prefix(name));
        let Some(l) = self.bucket.head(&key)? else {
            return Ok(());
        };
        let holder = self.bucket.get(&key)?.unwrap_or_default();
        if holder.get(..32) == Some(hex(&self.writer_id).as_bytes()) {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let age = now - l.modified_ms;
        if age < self.options.lease.as_millis() as i64 {
            return Err(Error::Fenced(format!(
                "collection {name:?} on {} is held by another writer (its lease was renewed {:.1} s ago): stop that writer, wait {} s for the lease to expire, or take over with --takeover",
                self.bucket.url(),
                age.max(0) as f64 / 1000.0,
                self.options.lease.as_secs()
            )));
        }
        Ok(())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    if path.exists() {
        Ok(Some(fsio::read_file(path)?))
    } else {
        Ok(None)
    }
}

fn file_crc(path: &Path) -> Result<(u64, u32)> {
    Ok(quiver_storage::fill::crc_of_file(path)?)
}

/// A segment's path in a collection's folder, as checkpoints name it.
pub(crate) fn segment_local(no: u64) -> String {
    format!("segments/{no:020}.seg")
}

/// Where a replica keeps the files it fills on demand until they are whole.
const WARMING_DIR: &str = "warming";

/// A file of a collection in the store, read by ranges (a [`Fill`]'s source).
struct StoreRange {
    home: Arc<Home>,
    key: String,
}

impl quiver_storage::fill::Source for StoreRange {
    fn read_ranges(&self, ranges: &[std::ops::Range<u64>]) -> quiver_storage::StorageResult<Vec<Vec<u8>>> {
        self.home.bucket.get_ranges(&self.key, ranges)
    }
    fn describe(&self) -> String {
        format!("{}/{}", self.home.bucket.url(), self.key)
    }
}

/// What [`restore`] found in the log.
pub(crate) struct Restored {
    /// The last entry's number.
    pub last: u64,
    /// With `wal_local`: transactions acknowledged from this folder's WAL that the store does
    /// not hold yet (now in the rewritten WAL; to be uploaded), and how many such transactions
    /// had to be dropped because another writer wrote the log since.
    pub pending: Vec<(u64, Vec<Vec<u8>>)>,
    pub dropped: usize,
    /// The last checkpoint's number and files (already in the folder).
    pub checkpoint: u64,
    pub files: Vec<FileRef>,
    /// The newest index file named after it.
    pub index: Option<FileRef>,
    /// The base segment, when it is fetched on demand rather than downloaded (`lazy`).
    pub base_fill: Option<Arc<Fill>>,
}

/// Makes `dir` the collection `name` as its log says: the last checkpoint's files (kept when
/// the folder holds them already, else downloaded and checked), its manifest and settings, the
/// newest index file, and a WAL holding the transactions after the checkpoint. Anything else
/// in the folder's WAL is dropped: the store is the source of truth.
///
/// With `lazy`, the manifest's first segment (the base, the bulk of the data), when the folder
/// does not hold it, is not downloaded but returned as a [`Fill`] to open in place and fetch
/// on demand: a replica answers before its data is all here.
pub(crate) fn restore(home: &Arc<Home>, name: &str, dir: &Path, lazy: bool) -> Result<Restored> {
    let prefix = Home::prefix(name);
    let listed = home.bucket.list(&format!("{prefix}/log"), None)?;
    let mut nos: Vec<u64> = listed.iter().filter_map(|l| log::entry_no(&l.key)).collect();
    nos.sort_unstable();
    let Some(&last) = nos.last() else {
        return Err(Error::CollectionNotFound(name.to_string()));
    };
    // Walk back from the end, a window at a time, to the last checkpoint.
    let mut tail: Vec<Logged> = Vec::new();
    let mut checkpoint = None;
    let mut last_writer = None;
    let mut end = nos.len();
    'walk: while end > 0 {
        let start = end.saturating_sub(32);
        let keys: Vec<String> = nos[start..end].iter().map(|&n| log::entry_key(&prefix, n)).collect();
        let got = home.bucket.get_many(&keys)?;
        for ((key, bytes), &no) in keys.iter().zip(got).zip(&nos[start..end]).rev() {
            let bytes = bytes
                .ok_or_else(|| StorageError::corrupt(key, 0, "a listed log entry is gone (removed while this replica read the log?)"))?;
            let logged = log::decode(key, &bytes)?;
            last_writer.get_or_insert(logged.writer);
            if let Entry::Checkpoint { .. } = logged.entry {
                checkpoint = Some((no, logged.entry));
                break 'walk;
            }
            tail.push(logged);
        }
        end = start;
    }
    tail.reverse();
    let Some((checkpoint_no, Entry::Checkpoint { manifest, settings, files })) = checkpoint else {
        return Err(StorageError::corrupt(format!("{prefix}/log"), 0, "the log has no checkpoint").into());
    };
    for sub in ["", "segments", "wal", WARMING_DIR] {
        fsio::create_dir_durable(&dir.join(sub))?;
    }
    // Partial files of an earlier cold start: filled again (or downloaded) below.
    for entry in std::fs::read_dir(dir.join(WARMING_DIR)).map_err(StorageError::io(dir))? {
        fsio::remove_file_if_exists(&entry.map_err(StorageError::io(dir))?.path())?;
    }
    let mpath = crate::collection::manifest_path(dir);
    let m = store::decode_manifest(&mpath, &manifest)?;
    // The index file is fetched below: the newest one, after the checkpoint or named by it.
    let (index_named, files): (Vec<FileRef>, Vec<FileRef>) = files.into_iter().partition(|f| f.local == crate::ann::INDEX_FILE);
    let base_local = m.segments.first().map(|&no| segment_local(no));
    let mut base_fill = None;
    let mut download = Vec::new();
    for f in &files {
        check_local_name(f)?;
        let path = dir.join(&f.local);
        if path.exists() && file_crc(&path)? == (f.len, f.crc) {
            continue;
        }
        if lazy && Some(&f.local) == base_local.as_ref() {
            let source = StoreRange {
                home: home.clone(),
                key: format!("{prefix}/{}", f.key),
            };
            fsio::remove_file_if_exists(&path)?;
            // A name of its own: a replica retired while filling may still hold its own.
            static FILLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = FILLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let part = dir.join(WARMING_DIR).join(format!(
                "{}.{}-{n}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            base_fill = Some(Arc::new(Fill::create(Box::new(source), &part, &path, f.len, f.crc)?));
            continue;
        }
        download.push(f);
    }
    let index = tail
        .iter()
        .rev()
        .find_map(|l| match &l.entry {
            Entry::Index(f) => Some(f.clone()),
            _ => None,
        })
        .or(index_named.into_iter().next());
    let ipath = dir.join(crate::ann::INDEX_FILE);
    match &index {
        Some(f) => download.push(f),
        None => fsio::remove_file_if_exists(&ipath)?,
    }
    fetch_all(home, &prefix, dir, &download)?;
    fsio::replace_file_atomic(&mpath, &manifest)?;
    let spath = dir.join(crate::settings::SETTINGS_FILE);
    match &settings {
        Some(s) => fsio::replace_file_atomic(&spath, s)?,
        None => fsio::remove_file_if_exists(&spath)?,
    }
    // The WAL: exactly the transactions after the checkpoint, and with `wal_local` this
    // folder's own acknowledged transactions after those, if this node wrote the log's end.
    let wal_dir = dir.join("wal");
    let local: Vec<quiver_storage::wal::WalTxn> = if home.options.wal_local && !home.options.read_only {
        quiver_storage::wal::Wal::open(&wal_dir, 0).map(|(_, t)| t).unwrap_or_default()
    } else {
        Vec::new()
    };
    for entry in std::fs::read_dir(&wal_dir).map_err(StorageError::io(&wal_dir))? {
        let p = entry.map_err(StorageError::io(&wal_dir))?.path();
        fsio::remove_file_if_exists(&p)?;
    }
    let (mut wal, _) = quiver_storage::wal::Wal::open(&wal_dir, m.flushed_seq)?;
    let mut seq = m.flushed_seq;
    for l in &tail {
        if let Entry::Txns(txns) = &l.entry {
            for (s, records) in txns {
                if *s <= seq {
                    continue;
                }
                let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
                wal.append(*s, &refs, false)?;
                seq = *s;
            }
        }
    }
    let after: Vec<_> = local.into_iter().filter(|t| t.seq > seq).collect();
    let ours = last_writer == Some(home.writer_id) && after.first().is_none_or(|t| t.seq == seq + 1);
    let (mut pending, mut dropped) = (Vec::new(), 0);
    if ours {
        for t in after {
            let refs: Vec<&[u8]> = t.records.iter().map(|r| r.as_slice()).collect();
            wal.append(t.seq, &refs, false)?;
            pending.push((t.seq, t.records));
        }
    } else {
        dropped = after.len();
    }
    wal.sync()?;
    Ok(Restored {
        pending,
        dropped,
        last,
        checkpoint: checkpoint_no,
        files,
        index,
        base_fill,
    })
}

fn check_local_name(f: &FileRef) -> Result<()> {
    if f.local.contains("..") || f.local.starts_with('/') {
        return Err(StorageError::corrupt(&f.key, 0, format!("a checkpoint names a file outside its folder: {:?}", f.local)).into());
    }
    Ok(())
}

/// Puts checkpoint files in the folder (up to four downloads at once), each unless it is there
/// already (same length and crc).
fn fetch_all(home: &Home, prefix: &str, dir: &Path, files: &[&FileRef]) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || -> Result<()> {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(f) = files.get(i) else { return Ok(()) };
            fetch(home, prefix, dir, f)?;
        }
    };
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..files.len().min(4)).map(|_| s.spawn(worker)).collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    })
}

/// Puts a checkpoint's file in the folder unless it is there already (same length and crc).
fn fetch(home: &Home, prefix: &str, dir: &Path, f: &FileRef) -> Result<()> {
    check_local_name(f)?;
    let path = dir.join(&f.local);
    if path.exists() && file_crc(&path)? == (f.len, f.crc) {
        return Ok(());
    }
    let key = format!("{prefix}/{}", f.key);
    match home.bucket.download(&key, &path)? {
        None => Err(StorageError::corrupt(&key, 0, "a file the log names is missing from the store").into()),
        Some(got) if got != (f.len, f.crc) => {
            let _ = fsio::remove_file_if_exists(&path);
            Err(StorageError::corrupt(&key, 0, "a downloaded file does not match its checkpoint's length and checksum").into())
        }
        Some(_) => Ok(()),
    }
}

/// Opens collection `name` from the store into `dir`: restored from its log, then either
/// followed (a replica) or taken for writing: an `Open` entry appended after the last entry
/// read (the fence), retried a few times when another writer appends meanwhile and this one
/// takes over.
pub(crate) fn open_collection(home: &Arc<Home>, name: &str, dir: &Path) -> Result<crate::Collection> {
    use crate::collection::{Collection, Link};
    if home.options.read_only {
        let r = restore(home, name, dir, home.options.cold_start != ColdStart::Eager)?;
        mark_used(dir);
        let f = Follower::new(home.clone(), name, r.last);
        let fill = r.base_fill.map(|f| (f, home.options.cold_start == ColdStart::Lazy));
        return Collection::open_linked(name, dir, Some(Link::Replica(f)), fill);
    }
    if !home.options.takeover {
        home.check_lease(name)?;
    }
    for _ in 0..5 {
        let r = restore(home, name, dir, false)?;
        let key = log::entry_key(&Home::prefix(name), r.last + 1);
        match home.bucket.create(&key, log::encode(&home.writer_id, &Entry::Open))? {
            Created::New => {
                mark_used(dir);
                let lw = LogWriter::start(home.clone(), name, r.last + 2, &r)?;
                for (seq, records) in r.pending {
                    // Acknowledged locally before a restart: uploaded now, not waited for.
                    lw.txn(seq, records)?;
                }
                if r.dropped > 0 {
                    lw.note(format!(
                        "{} transactions acknowledged from the local WAL (--wal local) were dropped: another writer wrote the collection since",
                        r.dropped
                    ));
                }
                return Collection::open_linked(name, dir, Some(Link::Writer(lw.clone())), None).inspect_err(|_| lw.stop());
            }
            Created::Exists if !home.options.takeover => break,
            Created::Exists => continue,
        }
    }
    Err(Error::Fenced(format!(
        "another writer appended to collection {name:?} on {} while this one opened it: stop that writer, or take over with --takeover",
        home.bucket.url()
    )))
}

/// Records in a collection's cache folder when it was last opened (its `LAST_USED` file's
/// time), for [`trim_cache`].
fn mark_used(dir: &Path) {
    let _ = std::fs::write(dir.join("LAST_USED"), b"");
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The bytes of every collection folder in a cache.
pub(crate) fn cache_bytes(collections: &Path) -> u64 {
    dir_bytes(collections)
}

/// Removes the cache folders of collections not in `keep`, least recently opened first, until
/// the cache holds at most `cap` bytes (or only kept folders are left).
pub(crate) fn trim_cache(collections: &Path, cap: u64, keep: &std::collections::HashSet<String>) -> Result<()> {
    let mut total = 0u64;
    let mut candidates = Vec::new();
    for e in std::fs::read_dir(collections).map_err(StorageError::io(collections))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if crate::types::validate_name(&name).is_err() || !e.path().is_dir() {
            continue;
        }
        let bytes = dir_bytes(&e.path());
        total += bytes;
        if !keep.contains(&name) {
            let used = std::fs::metadata(e.path().join("LAST_USED")).and_then(|m| m.modified()).ok();
            candidates.push((used, bytes, e.path()));
        }
    }
    // Never-marked folders first, then the oldest.
    candidates.sort_by_key(|c| c.0);
    for (_, bytes, path) in candidates {
        if total <= cap {
            break;
        }
        std::fs::remove_dir_all(&path).map_err(StorageError::io(&path))?;
        total -= bytes;
    }
    Ok(())
}
