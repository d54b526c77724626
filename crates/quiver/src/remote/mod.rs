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
mod writer;

pub(crate) use follower::Follower;
pub(crate) use writer::LogWriter;

use crate::error::{Error, Result};
use crate::store;
use log::{Entry, FileRef, Logged};
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
    let bytes = fsio::read_file(path)?;
    Ok((bytes.len() as u64, crc32c::crc32c(&bytes)))
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
}

/// Makes `dir` the collection `name` as its log says: the last checkpoint's files (kept when
/// the folder holds them already, else downloaded and checked), its manifest and settings, the
/// newest index file, and a WAL holding the transactions after the checkpoint. Anything else
/// in the folder's WAL is dropped: the store is the source of truth.
pub(crate) fn restore(home: &Home, name: &str, dir: &Path) -> Result<Restored> {
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
    for sub in ["", "segments", "wal"] {
        fsio::create_dir_durable(&dir.join(sub))?;
    }
    // The index file is fetched below: the newest one, after the checkpoint or named by it.
    let (index_named, files): (Vec<FileRef>, Vec<FileRef>) = files.into_iter().partition(|f| f.local == crate::ann::INDEX_FILE);
    for f in &files {
        fetch(home, &prefix, dir, f)?;
    }
    let mpath = crate::collection::manifest_path(dir);
    let m = store::decode_manifest(&mpath, &manifest)?;
    fsio::replace_file_atomic(&mpath, &manifest)?;
    let spath = dir.join(crate::settings::SETTINGS_FILE);
    match &settings {
        Some(s) => fsio::replace_file_atomic(&spath, s)?,
        None => fsio::remove_file_if_exists(&spath)?,
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
        Some(f) => fetch(home, &prefix, dir, f)?,
        None => fsio::remove_file_if_exists(&ipath)?,
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
    })
}

/// Puts a checkpoint's file in the folder unless it is there already (same length and crc).
fn fetch(home: &Home, prefix: &str, dir: &Path, f: &FileRef) -> Result<()> {
    if f.local.contains("..") || f.local.starts_with('/') {
        return Err(StorageError::corrupt(&f.key, 0, format!("a checkpoint names a file outside its folder: {:?}", f.local)).into());
    }
    let path = dir.join(&f.local);
    if path.exists() && file_crc(&path)? == (f.len, f.crc) {
        return Ok(());
    }
    let key = format!("{prefix}/{}", f.key);
    if home.bucket.download(&key, &path)?.is_none() {
        return Err(StorageError::corrupt(&key, 0, "a file the log names is missing from the store").into());
    }
    if file_crc(&path)? != (f.len, f.crc) {
        let _ = fsio::remove_file_if_exists(&path);
        return Err(StorageError::corrupt(&key, 0, "a downloaded file does not match its checkpoint's length and checksum").into());
    }
    Ok(())
}

/// Opens collection `name` from the store into `dir`: restored from its log, then either
/// followed (a replica) or taken for writing: an `Open` entry appended after the last entry
/// read (the fence), retried a few times when another writer appends meanwhile and this one
/// takes over.
pub(crate) fn open_collection(home: &Arc<Home>, name: &str, dir: &Path) -> Result<crate::Collection> {
    use crate::collection::{Collection, Link};
    if home.options.read_only {
        let r = restore(home, name, dir)?;
        mark_used(dir);
        let f = Follower::new(home.clone(), name, r.last);
        return Collection::open_linked(name, dir, Some(Link::Replica(f)));
    }
    if !home.options.takeover {
        home.check_lease(name)?;
    }
    for _ in 0..5 {
        let r = restore(home, name, dir)?;
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
                return Collection::open_linked(name, dir, Some(Link::Writer(lw.clone()))).inspect_err(|_| lw.stop());
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
